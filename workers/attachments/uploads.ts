/**
 * The upload life cycle behind POST /v1/attachments/presign and its follow-ups, for both paths:
 *
 * - S3 keys configured (production): the client PUTs straight to R2's S3 endpoint on presigned
 *   URLs; the server creates and completes multipart uploads with signed S3 calls.
 * - No keys (local default): the client PUTs to this Worker's blob routes on HMAC-signed URLs,
 *   which stream into the R2 binding (blob-routes.ts).
 *
 * Either way the channel's row is the truth about an upload, and an upload is "complete" only
 * after the server saw its size and SHA-256 (measured, or checked by R2 against the declared one).
 */
import { bucketOfAttachment, jurisdictionOfAttachment } from "../../shared/bindings.js";
import { fail, failureFromException, type Failure, type Result } from "../../shared/errors.js";
import { channelStub } from "../../shared/routing.js";
import type { PartRow, UploadRow, UploadView } from "../../durable-objects/channel/attachments.js";
import { attachmentConfig, checkDeclaredUpload, partLength, uploadPlan, type AttachmentConfig, type DeclaredUpload } from "../../shared/attachments/config.js";
import { channelOfAttachment, newAttachmentId } from "../../shared/attachments/ids.js";
import { parseId } from "../../shared/ids.js";
import * as s3 from "../../shared/attachments/s3.js";
import { signBlobUrl } from "./signed-urls.js";
import { deleteBlob } from "../../shared/attachments/blobs.js";
import { hexToBase64, sha256Of } from "./streams.js";

export interface UploadTarget {
  part_number: number;
  size_bytes: number;
  method: "PUT";
  url: string;
  /** Send exactly these (content-length is the body's length; HTTP clients set it themselves). */
  headers: Record<string, string>;
}

export interface UploadTargets {
  /** ms since the epoch; ask GET /v1/attachments/{id}/upload for fresh URLs after it. */
  expires_at: number;
  mode: "single" | "multipart";
  part_size: number;
  part_count: number;
  /** Single uploads: PUT the whole file here. */
  upload_url?: string;
  upload_method?: "PUT";
  upload_headers?: Record<string, string>;
  /** Multipart uploads: the parts still to send (all of them at first), each PUT to its own URL. */
  parts?: UploadTarget[];
  /** Parts already received (multipart), so a client can resume where it stopped. */
  parts_done?: PartRow[];
}

/** What presign answers. */
export interface PresignAnswer extends UploadTargets {
  attachment_id: string;
  channel_id: string;
  attachment: UploadView;
}

/** Content-Disposition for a stored file: media inline, anything else as a download. */
export function contentDisposition(fileName: string, contentType: string): string {
  const inline = /^(image|video|audio)\//.test(contentType) && contentType !== "image/svg+xml";
  const ascii = fileName.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  return `${inline ? "inline" : "attachment"}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(fileName)}`;
}

function httpMetadata(row: { file_name: string; content_type: string }): R2HTTPMetadata {
  return { contentType: row.content_type, contentDisposition: contentDisposition(row.file_name, row.content_type) };
}

/**
 * Checks the declaration, has the channel record it (members only), opens a multipart upload
 * for large files, and answers where to send the bytes. Nothing is uploaded before all checks pass.
 */
export async function presign(
  env: Env, origin: string, userId: string, channelId: string, declared: DeclaredUpload,
): Promise<Result<PresignAnswer>> {
  const config = attachmentConfig(env, parseId(channelId)?.jurisdiction);
  const refused = checkDeclaredUpload(config, declared);
  if (refused) return refused;
  const plan = uploadPlan(config, declared.size_bytes);
  const attachmentId = newAttachmentId(channelId);
  const channel = channelStub(env, channelId);
  const created = await channel.createUpload(userId, {
    attachment_id: attachmentId, file_name: declared.filename, content_type: declared.content_type,
    size_bytes: declared.size_bytes, sha256: declared.sha256, part_size: plan.partSize,
  });
  if (!created.ok) return created;
  let row: UploadView = created.upload;
  let uploadId = "";
  if (plan.multipart) {
    try {
      uploadId = config.s3
        ? await s3.createMultipartUpload(config.s3, attachmentId, declared.content_type)
        : (await bucketOfAttachment(env, attachmentId).createMultipartUpload(attachmentId, { httpMetadata: httpMetadata(row) })).uploadId;
    } catch (err) {
      console.error("opening a multipart upload failed", err);
      return fail("unavailable", "Storage did not open the upload; try again shortly.", 1000);
    }
    await channel.setUploadId(attachmentId, uploadId);
    row = { ...row, multipart: true };
  }
  const targets = await uploadTargets(env, config, origin, toRow(row, uploadId), []);
  return { ok: true, attachment_id: attachmentId, channel_id: channelId, attachment: row, ...targets };
}

function toRow(view: UploadView, uploadId: string): UploadRow {
  return {
    attachment_id: view.attachment_id, uploader_user_id: "", file_name: view.file_name, content_type: view.content_type,
    size_bytes: view.size_bytes, sha256: view.sha256, sha256_verified: 0, state: view.state, upload_id: uploadId,
    part_size: view.part_size, created_at: view.created_at, completed_at: null, attached_seq: null,
  };
}

/** Fresh URLs for whatever of the upload is still missing. */
async function uploadTargets(env: Env, config: AttachmentConfig, origin: string, row: UploadRow, done: PartRow[]): Promise<UploadTargets> {
  const now = Date.now();
  const expires = Math.floor(now / 1000) + config.uploadUrlTtlSeconds;
  const base = { expires_at: expires * 1000, part_size: row.part_size, part_count: row.upload_id === "" ? 1 : Math.ceil(row.size_bytes / row.part_size) };
  if (row.upload_id === "") {
    if (row.state !== "pending") return { ...base, mode: "single" };
    if (config.s3) {
      const sha = row.sha256 !== "" ? hexToBase64(row.sha256) : undefined;
      const put = await s3.presignPut(config.s3, row.attachment_id, { contentType: row.content_type, size: row.size_bytes, sha256Base64: sha, expiresIn: config.uploadUrlTtlSeconds });
      return { ...base, mode: "single", upload_url: put.url, upload_method: "PUT", upload_headers: put.headers };
    }
    const url = await signBlobUrl(env, origin, { action: "put", attachmentId: row.attachment_id, part: 0, expires });
    return { ...base, mode: "single", upload_url: url, upload_method: "PUT", upload_headers: { "content-type": row.content_type, "content-length": String(row.size_bytes) } };
  }
  if (row.state !== "pending") return { ...base, mode: "multipart", parts: [], parts_done: [] };
  const have = new Set(done.map((p) => p.part_number));
  const parts: UploadTarget[] = [];
  for (let n = 1; n <= base.part_count; n++) {
    if (have.has(n)) continue;
    const size = partLength(row.size_bytes, row.part_size, n);
    if (config.s3) {
      const put = await s3.presignUploadPart(config.s3, row.attachment_id, { uploadId: row.upload_id, partNumber: n, size, expiresIn: config.uploadUrlTtlSeconds });
      parts.push({ part_number: n, size_bytes: size, method: "PUT", url: put.url, headers: put.headers });
    } else {
      const url = await signBlobUrl(env, origin, { action: "part", attachmentId: row.attachment_id, part: n, expires });
      parts.push({ part_number: n, size_bytes: size, method: "PUT", url, headers: { "content-length": String(size) } });
    }
  }
  return { ...base, mode: "multipart", parts, parts_done: done };
}

function notAnAttachment(): Failure {
  return fail("not_found", "No such attachment.");
}

/** Where an unfinished upload stands, with fresh URLs for what is missing (resume). Uploader only. */
export async function uploadStatus(env: Env, origin: string, userId: string, attachmentId: string): Promise<Result<UploadTargets & { attachment: UploadView }>> {
  const channelId = channelOfAttachment(attachmentId);
  if (!channelId) return notAnAttachment();
  const config = attachmentConfig(env, jurisdictionOfAttachment(attachmentId));
  const found = await channelStub(env, channelId).upload(userId, attachmentId);
  if (!found.ok) return found;
  const row = found.upload;
  let done = found.parts;
  if (config.s3 && row.upload_id !== "" && row.state === "pending") {
    try {
      done = (await s3.listParts(config.s3, attachmentId, row.upload_id)).map((p) => ({ part_number: p.part_number, etag: p.etag, size_bytes: p.size ?? 0 }));
    } catch (err) {
      return failureFromException(err);
    }
  }
  const targets = await uploadTargets(env, config, origin, row, done);
  return { ok: true, attachment: viewOf(channelId, row), ...targets };
}

function viewOf(channelId: string, row: UploadRow): UploadView {
  return {
    attachment_id: row.attachment_id, channel_id: channelId, file_name: row.file_name, content_type: row.content_type,
    size_bytes: row.size_bytes, sha256: row.sha256, state: row.state, multipart: row.upload_id !== "", part_size: row.part_size,
    created_at: row.created_at, attached_seq: row.attached_seq ?? 0,
  };
}

/**
 * Finishes an upload: assembles a multipart upload, checks the stored size and SHA-256 against
 * the declaration, and marks it complete in the channel. A file that does not match is deleted
 * and its upload marked failed. Idempotent: completing a complete upload answers it again.
 */
export async function completeUpload(
  env: Env, userId: string, attachmentId: string, clientParts: { part_number: number; etag: string }[] | undefined,
): Promise<Result<{ attachment: UploadView }>> {
  const channelId = channelOfAttachment(attachmentId);
  if (!channelId) return notAnAttachment();
  const config = attachmentConfig(env, jurisdictionOfAttachment(attachmentId));
  const channel = channelStub(env, channelId);
  const found = await channel.upload(userId, attachmentId);
  if (!found.ok) return found;
  const row = found.upload;
  if (row.state === "complete") return { ok: true, attachment: viewOf(channelId, row) };
  if (row.state === "failed") return fail("invalid_argument", "This upload failed its size or sha256 check; upload the file again.");
  try {
    if (row.upload_id !== "") {
      const parts = config.s3 ? clientParts ?? (await s3.listParts(config.s3, attachmentId, row.upload_id)) : found.parts;
      const count = Math.ceil(row.size_bytes / row.part_size);
      const have = new Set(parts.map((p) => p.part_number));
      const missing: number[] = [];
      for (let n = 1; n <= count; n++) if (!have.has(n)) missing.push(n);
      if (missing.length > 0 || parts.length !== count) {
        return fail("conflict", `The upload is missing part${missing.length === 1 ? "" : "s"} ${missing.slice(0, 20).join(", ")}; send ${missing.length === 1 ? "it" : "them"}, then complete again.`);
      }
      const sorted = [...parts].sort((a, b) => a.part_number - b.part_number);
      if (config.s3) await s3.completeMultipartUpload(config.s3, attachmentId, row.upload_id, sorted);
      else await bucketOfAttachment(env, attachmentId).resumeMultipartUpload(attachmentId, row.upload_id).complete(sorted.map((p) => ({ partNumber: p.part_number, etag: p.etag })));
    } else if (!config.s3) {
      return fail("conflict", "The file has not been uploaded yet: PUT it to upload_url first.");
    }
    const head = await bucketOfAttachment(env, attachmentId).head(attachmentId);
    if (!head) return fail("conflict", "The file has not been uploaded yet: PUT it to upload_url first.");
    // A single PUT with a declared sha256 was checked by R2 (x-amz-checksum-sha256 is signed).
    const measured = row.upload_id === "" && row.sha256 !== "" ? row.sha256 : await sha256Of(bucketOfAttachment(env, attachmentId), attachmentId);
    return await finishUpload(env, channelId, row, head.size, measured ?? "");
  } catch (err) {
    console.error("completing an upload failed", err);
    return failureFromException(err);
  }
}

/**
 * The last step of every upload path: the stored bytes against the declaration. A mismatch
 * deletes the blob and fails the upload, so it can never be attached.
 */
export async function finishUpload(env: Env, channelId: string, row: UploadRow, size: number, sha256: string): Promise<Result<{ attachment: UploadView }>> {
  const channel = channelStub(env, channelId);
  let problem: string | undefined;
  if (size !== row.size_bytes) problem = `The upload has ${size} bytes but ${row.size_bytes} were declared.`;
  else if (row.sha256 !== "" && sha256 !== row.sha256) problem = "The uploaded file's sha256 does not match the declared one.";
  if (problem) {
    await channel.failUpload(row.attachment_id);
    await deleteBlob(env, { attachment_id: row.attachment_id, upload_id: row.upload_id, completed_at: Date.now() });
    return fail("invalid_argument", `${problem} Upload the file again.`);
  }
  const done = await channel.completeUpload(row.attachment_id, sha256);
  if (!done.ok) return done;
  return { ok: true, attachment: done.upload };
}

/** Cancels an upload nobody sent yet; its blob goes with the channel's next sweep. Uploader only. */
export async function cancelUpload(env: Env, userId: string, attachmentId: string): Promise<Result> {
  const channelId = channelOfAttachment(attachmentId);
  if (!channelId) return notAnAttachment();
  return channelStub(env, channelId).cancelUpload(userId, attachmentId);
}

/** A short-lived URL to fetch an attachment, for a member of its channel. */
export async function downloadUrl(env: Env, origin: string, userId: string, attachmentId: string): Promise<Result<{ url: string; expires_at: number; attachment: UploadView }>> {
  const channelId = channelOfAttachment(attachmentId);
  if (!channelId) return notAnAttachment();
  const config = attachmentConfig(env, jurisdictionOfAttachment(attachmentId));
  const found = await channelStub(env, channelId).attachmentFor(userId, attachmentId);
  if (!found.ok) return found;
  const a = found.upload;
  const expires = Math.floor(Date.now() / 1000) + config.downloadUrlTtlSeconds;
  const url = config.s3
    ? (await s3.presignGet(config.s3, attachmentId, { contentType: a.content_type, disposition: contentDisposition(a.file_name, a.content_type), expiresIn: config.downloadUrlTtlSeconds })).url
    : await signBlobUrl(env, origin, { action: "get", attachmentId, part: 0, expires });
  return { ok: true, url, expires_at: expires * 1000, attachment: a };
}

export { httpMetadata };
