/**
 * The Worker's own blob routes, used when no S3 keys are configured (local development): the
 * short-lived signed URLs that presign and download hand out point here.
 *
 *   PUT  /v1/blobs/{id}?action=put&exp=&sig=            the whole file (files up to one part)
 *   PUT  /v1/blobs/{id}/parts/{n}?action=part&exp=&sig= part n of a multipart upload
 *   GET  /v1/blobs/{id}?action=get&exp=&sig=            download; Range, If-None-Match
 *
 * Bodies stream into the R2 binding and are never held whole: a Worker's request body is capped
 * (100 MB on Free/Pro), so large files come in parts of ATTACHMENT_PART_BYTES. The signature is
 * the permission (it was issued to the uploader, or to a member after a membership check).
 */
import { bucketOfAttachment, jurisdictionOfAttachment } from "../../shared/bindings.js";
import { errorResponse, fail, failureFromException, type Failure } from "../../shared/errors.js";
import { channelStub } from "../../shared/routing.js";
import { partLength } from "../../shared/attachments/config.js";
import { channelOfAttachment } from "../../shared/attachments/ids.js";
import { HSTS } from "../security-headers.js";
import { verifyBlobUrl, type BlobAction } from "./signed-urls.js";
import { hashedStream, parseRange } from "./streams.js";
import { finishUpload, httpMetadata } from "./uploads.js";

const BLOB_PATH = /^\/v1\/blobs\/([^/]+)(?:\/parts\/(\d{1,5}))?$/;

/**
 * Headers on every blob answer, in place of the API's (workers/security-headers.ts): the bytes
 * are user content, never a page of this origin, never framed, and only this origin's pages may
 * embed them.
 */
const SAFE_HEADERS = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
  "cross-origin-resource-policy": "same-origin",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

export function isBlobPath(pathname: string): boolean {
  return pathname.startsWith("/v1/blobs/");
}

/** A refusal as the API words it ({code, message, retryable}); blobRoute adds the headers. */
function refuse(f: Failure): Response {
  return errorResponse(f);
}

/** Every answer of the blob routes, with SAFE_HEADERS (and no caching but for downloads). */
export async function blobRoute(request: Request, env: Env): Promise<Response> {
  const res = await route(request, env);
  for (const [k, v] of Object.entries(SAFE_HEADERS)) res.headers.set(k, v);
  if (!res.headers.has("cache-control")) res.headers.set("cache-control", "no-store");
  if (new URL(request.url).protocol === "https:") res.headers.set("strict-transport-security", HSTS);
  return res;
}

async function route(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const m = BLOB_PATH.exec(url.pathname);
  const attachmentId = m?.[1];
  const channelId = channelOfAttachment(attachmentId);
  if (!m || !channelId || !attachmentId) return refuse(fail("not_found", "No such blob."));
  const part = m[2] === undefined ? 0 : Number(m[2]);
  let action: BlobAction;
  if (request.method === "PUT") action = part > 0 ? "part" : "put";
  else if ((request.method === "GET" || request.method === "HEAD") && part === 0) action = "get";
  else return refuse(fail("invalid_argument", `${request.method} is not supported here.`));

  const verdict = await verifyBlobUrl(env, { action, attachmentId, part }, url.searchParams);
  if (verdict === "invalid") return refuse(fail("forbidden", "This URL's signature is not valid."));
  if (verdict === "expired") {
    return refuse(fail("forbidden", action === "get"
      ? "This download URL expired; ask GET /v1/attachments/{id} for a new one."
      : "This upload URL expired; ask GET /v1/attachments/{id}/upload for fresh ones."));
  }
  try {
    if (action === "get") return await download(request, env, attachmentId);
    return await upload(request, env, channelId, attachmentId, part);
  } catch (err) {
    console.error("blob route failed", err);
    return refuse(failureFromException(err));
  }
}

async function upload(request: Request, env: Env, channelId: string, attachmentId: string, part: number): Promise<Response> {
  const channel = channelStub(env, channelId);
  const found = await channel.upload(undefined, attachmentId);
  if (!found.ok) return refuse(found);
  const row = found.upload;
  if (row.state !== "pending") return refuse(fail("conflict", "This upload is finished already."));
  const multipart = row.upload_id !== "";
  if (multipart !== part > 0) {
    return refuse(fail("invalid_argument", multipart ? "This file goes up in parts: PUT each part to its own URL." : "This file goes up in one PUT."));
  }
  const count = multipart ? Math.ceil(row.size_bytes / row.part_size) : 1;
  if (part > count) return refuse(fail("invalid_argument", `This upload has ${count} parts.`));
  const expected = multipart ? partLength(row.size_bytes, row.part_size, part) : row.size_bytes;
  const length = Number(request.headers.get("content-length"));
  if (!request.headers.has("content-length") || !Number.isSafeInteger(length)) {
    return refuse(fail("invalid_argument", `Send Content-Length: ${expected} (chunked uploads are not accepted).`));
  }
  if (length !== expected) {
    return refuse(fail("invalid_argument", `${multipart ? `Part ${part}` : "The file"} must be ${expected} bytes; this request has ${length}.`));
  }
  if (!request.body) return refuse(fail("invalid_argument", "The request has no body."));

  if (multipart) {
    // A body with Content-Length is a stream of known length: R2 takes it as it comes.
    const uploaded = await bucketOfAttachment(env, attachmentId).resumeMultipartUpload(attachmentId, row.upload_id).uploadPart(part, request.body);
    const recorded = await channel.recordUploadPart(attachmentId, { part_number: part, etag: uploaded.etag, size_bytes: expected });
    if (!recorded.ok) return refuse(recorded);
    return Response.json({ part_number: part, etag: uploaded.etag, size_bytes: expected }, { headers: { etag: uploaded.etag } });
  }

  const { stream, sha256 } = hashedStream(request.body, expected);
  try {
    await bucketOfAttachment(env, attachmentId).put(attachmentId, stream, { httpMetadata: httpMetadata(row) });
  } catch (err) {
    console.warn("a single upload did not arrive whole", err);
    return refuse(fail("invalid_argument", `The body did not arrive whole (${expected} bytes expected); PUT it again.`));
  }
  const done = await finishUpload(env, channelId, row, expected, await sha256);
  if (!done.ok) {
    // Cancelled or swept while the body streamed: the row is gone, so the blob must go too.
    if (done.code === "not_found") await bucketOfAttachment(env, attachmentId).delete(attachmentId);
    return refuse(done);
  }
  return Response.json({ attachment: done.attachment }, { headers: { etag: `"${done.attachment.sha256}"` } });
}

async function download(request: Request, env: Env, attachmentId: string): Promise<Response> {
  const head = await bucketOfAttachment(env, attachmentId).head(attachmentId);
  if (!head) return refuse(fail("not_found", "No such blob (it may have been deleted)."));
  const headers = new Headers();
  head.writeHttpMetadata(headers);
  headers.set("etag", head.httpEtag);
  headers.set("accept-ranges", "bytes");
  headers.set("cache-control", "private, max-age=300");
  const inm = request.headers.get("if-none-match");
  if (inm && inm.split(",").some((t) => t.trim() === head.httpEtag || t.trim() === "*")) {
    return new Response(null, { status: 304, headers });
  }
  const range = parseRange(request.headers.get("range"), head.size);
  if (range === "invalid") {
    headers.set("content-range", `bytes */${head.size}`);
    return new Response(null, { status: 416, headers });
  }
  const whole = range === "none";
  if (!whole) headers.set("content-range", `bytes ${range.offset}-${range.offset + range.length - 1}/${head.size}`);
  headers.set("content-length", String(whole ? head.size : range.length));
  const status = whole ? 200 : 206;
  if (request.method === "HEAD") return new Response(null, { status, headers });
  const obj = await bucketOfAttachment(env, attachmentId).get(attachmentId, whole ? {} : { range });
  if (!obj) return refuse(fail("not_found", "No such blob (it may have been deleted)."));
  return new Response(obj.body, { status, headers });
}
