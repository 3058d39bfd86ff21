/**
 * A channel's uploads: who declared what, how far the bytes got, and which message carries the
 * file. The ChannelObject owns this table like the rest of its channel, so the check a SEND with
 * an attachment needs (exists, complete, the sender's own, same size and hash, not used yet) is
 * one synchronous SELECT on the append path, before the INSERT.
 *
 * Blobs themselves live in R2 under the attachment id. They are deleted after the durable write
 * that made them unreachable (delete for everyone, a cancelled upload, the orphan sweep), off the
 * caller's path, through `deps.deleteBlob`; a row goes only once its blob is gone.
 */
import { fail, type Failure, type Result } from "../../shared/errors.js";
import { channelOfAttachment } from "../../shared/attachments/ids.js";
import type { ContentInit } from "./types.js";

/** A failed blob deletion is retried from the alarm this much later. */
const SWEEP_RETRY_MS = 1000;

/** What the module needs from its object. */
export interface AttachmentDeps {
  /** Makes sure the object's alarm fires no later than `at` (the one alarm serves every concern). */
  wakeAt(at: number): void;
  waitUntil(promise: Promise<unknown>): void;
  /** Uploads no message carries this long after presign are deleted. */
  orphanTtlMs: number;
  deleteBlob(row: UploadRow): Promise<void>;
}

export type UploadState = "pending" | "complete" | "failed" | "deleting";

export type UploadRow = {
  attachment_id: string;
  uploader_user_id: string;
  file_name: string;
  content_type: string;
  size_bytes: number;
  /** Hex SHA-256: declared at presign, or the one measured when the upload completed. '' = unknown yet. */
  sha256: string;
  /** The server measured (or R2 checked) sha256; a declared one is a promise until then. */
  sha256_verified: number;
  state: UploadState;
  /** Multipart upload id; '' for a single PUT. */
  upload_id: string;
  part_size: number;
  created_at: number;
  completed_at: number | null;
  /** The message that carries the file; NULL while nobody sent it. */
  attached_seq: number | null;
};

export type PartRow = {
  part_number: number;
  etag: string;
  size_bytes: number;
};

/** What the API and the SDK see of an upload. */
export interface UploadView {
  attachment_id: string;
  channel_id: string;
  file_name: string;
  content_type: string;
  size_bytes: number;
  sha256: string;
  state: UploadState;
  multipart: boolean;
  part_size: number;
  created_at: number;
  attached_seq: number;
}

export interface NewUpload {
  attachment_id: string;
  file_name: string;
  content_type: string;
  size_bytes: number;
  sha256?: string | undefined;
  part_size: number;
}

/** The attachment body a SEND carries after validation (content.ts); thumbnail as base64. */
export interface AttachmentInit {
  attachment_id: string;
  content_type?: string;
  size_bytes: number;
  file_name?: string;
  sha256?: string;
  width?: number;
  height?: number;
  duration_ms?: number;
  thumbnail?: string;
  thumbnail_type?: string;
  caption?: string;
}

const COLUMNS =
  "attachment_id, uploader_user_id, file_name, content_type, size_bytes, sha256, sha256_verified, state, upload_id, part_size, created_at, completed_at, attached_seq";

export class Attachments {
  constructor(
    private readonly sql: SqlStorage,
    private readonly deps: AttachmentDeps,
  ) {}

  /**
   * The SEND check as the sequencer's content gate: attachment bodies are checked against the
   * table and stored as the upload says; the upload is marked attached in the INSERT's turn.
   */
  gate(userId: string, body: AttachmentInit): Result<{ content: ContentInit; stored: (seq: number) => void }> {
    const checked = this.checkForSend(userId, body);
    if (!checked.ok) return checked;
    const id = checked.attachment.attachment_id;
    return { ok: true, content: { attachment: checked.attachment } as ContentInit, stored: (seq) => this.attach(id, seq) };
  }

  /** A message was deleted for everyone: its file goes too, after this turn's write. */
  messageDeleted(content: ContentInit): void {
    const id = content.attachment?.attachment_id;
    if (typeof id === "string" && id !== "" && this.markDeleting(id)) this.deps.waitUntil(this.sweep());
  }

  /** The uploader gives up an upload no message carries. */
  cancel(userId: string, attachmentId: string): Result {
    const found = this.pendingOf(userId, attachmentId);
    if (!found.ok) return found;
    if (found.upload.attached_seq !== null) return fail("conflict", "That upload is in a message: delete the message for everyone instead.");
    this.markDeleting(attachmentId);
    this.deps.waitUntil(this.sweep());
    return { ok: true };
  }

  /**
   * Deletes the blobs of uploads nobody sent within the orphan TTL and of messages deleted for
   * everyone (the object's alarm runs it). A failure leaves the row for the next alarm.
   */
  async sweep(now = Date.now()): Promise<void> {
    for (const row of this.due(now, this.deps.orphanTtlMs)) {
      if (row.state !== "deleting") this.markDeleting(row.attachment_id);
      try {
        await this.deps.deleteBlob(row);
        this.remove(row.attachment_id);
      } catch (err) {
        console.warn(`deleting attachment ${row.attachment_id} failed; the alarm retries`, err);
      }
    }
    this.armSweep(SWEEP_RETRY_MS);
  }

  /** Keeps an alarm set for the next upload due for the sweep (every alarm run sweeps). */
  armSweep(minDelayMs = 0): void {
    const now = Date.now();
    const due = this.nextSweepAt(this.deps.orphanTtlMs, now);
    if (due === undefined) return;
    this.deps.wakeAt(Math.max(due, now + minDelayMs));
  }

  /* ------------- the uploads' RPC calls, once the ChannelObject has checked the caller ------------- */

  /**
   * Records an upload a member declares (POST /v1/attachments/presign; the Worker checked type,
   * size and name) and arms the sweep: an upload no message carries goes ATTACHMENT_ORPHAN_TTL later.
   */
  async declare(channelId: string, userId: string, upload: NewUpload, now: number): Promise<Result<{ upload: UploadView }>> {
    if (channelOfAttachment(upload.attachment_id) !== channelId) return fail("invalid_argument", "That attachment id belongs to another channel.");
    const row = this.create(userId, upload, now);
    this.armSweep();
    return { ok: true, upload: uploadView(channelId, row) };
  }

  /** An upload and the parts received so far, for its uploader (`userId`) or a signed upload URL (no user). */
  withParts(userId: string | undefined, attachmentId: string): Result<{ upload: UploadRow; parts: PartRow[] }> {
    const found = this.pendingOf(userId, attachmentId);
    if (!found.ok) return found;
    return { ok: true, upload: found.upload, parts: this.parts(attachmentId) };
  }

  /** One more part of a pending upload. */
  addPart(attachmentId: string, part: PartRow): Result {
    const found = this.pendingOf(undefined, attachmentId);
    if (!found.ok) return found;
    if (found.upload.state !== "pending") return fail("conflict", "This upload is finished already.");
    this.recordPart(attachmentId, part);
    return { ok: true };
  }

  /** The Worker checked the bytes (size, and sha256 measured or verified by R2); a second call answers the same. */
  finish(channelId: string, attachmentId: string, sha256: string, now: number): Result<{ upload: UploadView }> {
    const found = this.pendingOf(undefined, attachmentId);
    if (!found.ok) return found;
    const row = found.upload.state === "pending" ? this.complete(attachmentId, sha256, now)! : found.upload;
    if (row.state !== "complete") return fail("invalid_argument", "This upload failed its checks; upload the file again.");
    return { ok: true, upload: uploadView(channelId, row) };
  }

  /**
   * A member's right to fetch an attachment: once a message carries it (its uploader: once
   * complete). Anyone else who names an existing attachment gets `forbidden`; the random half of
   * an attachment id cannot be guessed, so this confirms nothing to someone who did not have it.
   */
  fetchableBy(channelId: string, userId: string, isMember: boolean, attachmentId: string): Result<{ upload: UploadView }> {
    const found = this.downloadable(userId, attachmentId);
    if (!found.ok) return found;
    if (!isMember) return fail("forbidden", "Only members of the channel can fetch its attachments.");
    return { ok: true, upload: uploadView(channelId, found.upload) };
  }

  get(attachmentId: string): UploadRow | undefined {
    return this.sql.exec<UploadRow>(`SELECT ${COLUMNS} FROM attachments WHERE attachment_id = ?`, attachmentId).toArray()[0];
  }

  create(userId: string, u: NewUpload, now: number): UploadRow {
    this.sql.exec(
      `INSERT INTO attachments (attachment_id, uploader_user_id, file_name, content_type, size_bytes, sha256, sha256_verified, state, upload_id, part_size, created_at)
       VALUES (?, ?, ?, ?, ?, ?, 0, 'pending', '', ?, ?)`,
      u.attachment_id, userId, u.file_name, u.content_type, u.size_bytes, u.sha256 ?? "", u.part_size, now,
    );
    return this.get(u.attachment_id)!;
  }

  /** The uploader's own pending upload, or why not. */
  pendingOf(userId: string | undefined, attachmentId: string): Result<{ upload: UploadRow }> {
    const row = this.get(attachmentId);
    if (!row || row.state === "deleting") return fail("not_found", "No such upload.");
    if (userId !== undefined && row.uploader_user_id !== userId) return fail("forbidden", "This upload belongs to someone else.");
    return { ok: true, upload: row };
  }

  setUploadId(attachmentId: string, uploadId: string): void {
    this.sql.exec("UPDATE attachments SET upload_id = ? WHERE attachment_id = ? AND state = 'pending'", uploadId, attachmentId);
  }

  recordPart(attachmentId: string, part: PartRow): void {
    this.sql.exec(
      `INSERT INTO attachment_parts (attachment_id, part_number, etag, size_bytes) VALUES (?, ?, ?, ?)
       ON CONFLICT (attachment_id, part_number) DO UPDATE SET etag = excluded.etag, size_bytes = excluded.size_bytes`,
      attachmentId, part.part_number, part.etag, part.size_bytes,
    );
  }

  parts(attachmentId: string): PartRow[] {
    return this.sql.exec<PartRow>(
      "SELECT part_number, etag, size_bytes FROM attachment_parts WHERE attachment_id = ? ORDER BY part_number", attachmentId,
    ).toArray();
  }

  /** The bytes are all there and were checked: `sha256` is what the server measured (or R2 verified). */
  complete(attachmentId: string, sha256: string, now: number): UploadRow | undefined {
    this.sql.exec(
      "UPDATE attachments SET state = 'complete', sha256 = ?, sha256_verified = 1, completed_at = ? WHERE attachment_id = ? AND state = 'pending'",
      sha256, now, attachmentId,
    );
    this.sql.exec("DELETE FROM attachment_parts WHERE attachment_id = ?", attachmentId);
    return this.get(attachmentId);
  }

  /** The bytes did not match what was declared: the upload cannot be used; the sweep removes it. */
  fail(attachmentId: string): void {
    this.sql.exec("UPDATE attachments SET state = 'failed' WHERE attachment_id = ? AND state = 'pending'", attachmentId);
  }

  /**
   * The check a SEND with an attachment passes before its INSERT, synchronously. Returns the
   * body as it will be stored: type, size, name and hash come from the upload, never from the
   * sender's copy, which must agree on size (and on sha256 when it gives one).
   */
  checkForSend(userId: string, body: AttachmentInit): Result<{ attachment: AttachmentInit }> {
    const row = this.get(body.attachment_id);
    if (!row || row.state === "deleting") return fail("not_found", "No such upload in this channel: presign and upload the file first.");
    if (row.uploader_user_id !== userId) return fail("forbidden", "That upload belongs to someone else; upload the file yourself to send it.");
    if (row.state === "failed") return fail("invalid_argument", "That upload failed its size or sha256 check; upload the file again.");
    if (row.state !== "complete") return fail("conflict", "That upload is not complete yet: finish it (POST /v1/attachments/{id}/complete) before sending.");
    if (row.attached_seq !== null) return fail("conflict", `That upload is attached to message ${row.attached_seq} already; upload the file again to send it twice.`);
    if (body.size_bytes !== row.size_bytes) {
      return fail("invalid_argument", `size_bytes is ${body.size_bytes} but the upload has ${row.size_bytes} bytes.`);
    }
    if (body.sha256 !== undefined && body.sha256 !== "" && body.sha256 !== row.sha256) {
      return fail("invalid_argument", "sha256 does not match the uploaded file.");
    }
    const attachment: AttachmentInit = { ...body, content_type: row.content_type, file_name: row.file_name, size_bytes: row.size_bytes, sha256: row.sha256 };
    return { ok: true, attachment };
  }

  attach(attachmentId: string, seq: number): void {
    this.sql.exec("UPDATE attachments SET attached_seq = ? WHERE attachment_id = ?", seq, attachmentId);
  }

  /** Who may fetch the file: members, once a message carries it; its uploader as soon as it is complete. */
  downloadable(userId: string, attachmentId: string): Result<{ upload: UploadRow }> | Failure {
    const row = this.get(attachmentId);
    const visible = row && row.state === "complete" && (row.attached_seq !== null || row.uploader_user_id === userId);
    if (!visible) return fail("not_found", "No such attachment.");
    return { ok: true, upload: row };
  }

  /** Marks the blob for deletion (it is removed after the durable write); undefined if unknown. */
  markDeleting(attachmentId: string): UploadRow | undefined {
    this.sql.exec("UPDATE attachments SET state = 'deleting' WHERE attachment_id = ?", attachmentId);
    return this.get(attachmentId);
  }

  /** Uploads no message carries `ttlMs` after they were presigned, and blobs waiting for deletion. */
  due(now: number, ttlMs: number): UploadRow[] {
    return this.sql.exec<UploadRow>(
      `SELECT ${COLUMNS} FROM attachments WHERE state = 'deleting' OR (attached_seq IS NULL AND created_at <= ?) LIMIT 100`,
      now - ttlMs,
    ).toArray();
  }

  /** When the next sweep has work, or undefined when nothing waits. */
  nextSweepAt(ttlMs: number, now: number): number | undefined {
    const deleting = this.sql.exec("SELECT 1 FROM attachments WHERE state = 'deleting' LIMIT 1").toArray().length > 0;
    if (deleting) return now;
    const row = this.sql.exec<{ t: number | null }>("SELECT min(created_at) AS t FROM attachments WHERE attached_seq IS NULL").one();
    return row.t === null ? undefined : row.t + ttlMs;
  }

  remove(attachmentId: string): void {
    this.sql.exec("DELETE FROM attachment_parts WHERE attachment_id = ?", attachmentId);
    this.sql.exec("DELETE FROM attachments WHERE attachment_id = ?", attachmentId);
  }
}

export function uploadView(channelId: string, row: UploadRow): UploadView {
  return {
    attachment_id: row.attachment_id, channel_id: channelId, file_name: row.file_name, content_type: row.content_type,
    size_bytes: row.size_bytes, sha256: row.sha256, state: row.state, multipart: row.upload_id !== "", part_size: row.part_size,
    created_at: row.created_at, attached_seq: row.attached_seq ?? 0,
  };
}

/** The schema migration this module needs (CHANNEL_MIGRATIONS appends it). */
export const ATTACHMENTS_MIGRATION = `
  -- Uploads declared in this channel (POST /v1/attachments/presign) and the message that carries
  -- each. Blobs live in R2 under attachment_id.
  CREATE TABLE attachments (
    attachment_id    TEXT PRIMARY KEY,
    uploader_user_id TEXT NOT NULL,
    file_name        TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    sha256           TEXT NOT NULL DEFAULT '',
    sha256_verified  INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL,           -- pending | complete | failed | deleting
    upload_id        TEXT NOT NULL DEFAULT '',-- multipart upload id ('' = single PUT)
    part_size        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    attached_seq     INTEGER                  -- NULL until a message carries it
  );
  CREATE INDEX attachments_unattached ON attachments (created_at) WHERE attached_seq IS NULL;

  -- Parts received through the Worker's upload route (the R2 binding cannot list them).
  CREATE TABLE attachment_parts (
    attachment_id TEXT NOT NULL,
    part_number   INTEGER NOT NULL,
    etag          TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    PRIMARY KEY (attachment_id, part_number)
  );
`;
