/**
 * What a client may put in a message. The ChannelObject is the one place that checks it, so every
 * path (WebSocket SEND, a future REST send) enforces the same rules.
 */
import { fail, type Result } from "../../shared/errors.js";
import { lenientReader, pb, utf8Length } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { describeLoneSurrogate, isWellFormed, wellFormedDeep } from "../../protocol/text.js";
import { isAttachmentId } from "../../shared/attachments/ids.js";
import type { AttachmentInit } from "./attachments.js";
import type { ContentInit } from "./types.js";

/** `system` and `update` are written by the server only. */
export type ContentKind = "text" | "attachment" | "encrypted" | "system" | "update";

export function validateClientContent(content: unknown): Result<{ content: ContentInit; kind: ContentKind }> {
  if (typeof content !== "object" || content === null) {
    return fail("invalid_argument", "content is required: {text: {text: \"...\"}}.");
  }
  const c = content as Record<string, unknown>;
  const bodies = ["text", "attachment", "system", "encrypted", "update"].filter((k) => c[k] !== undefined && c[k] !== null);
  if (bodies.length !== 1) return fail("invalid_argument", "content must carry exactly one of text, attachment, encrypted.");
  if (bodies[0] === "system" || bodies[0] === "update") return fail("forbidden", `${bodies[0]} messages are written by the server only.`);
  if (bodies[0] === "attachment") return validateAttachmentBody(c.attachment);
  if (bodies[0] !== "text") return fail("not_implemented", `${bodies[0]} messages arrive in a later edgechat release.`);
  const text = (c.text as { text?: unknown }).text;
  if (typeof text !== "string" || text.length === 0) return fail("invalid_argument", "content.text.text must be a non-empty string.");
  // The edges refuse this already; checked again here because every path that stores text ends here.
  if (!isWellFormed(text)) return fail("invalid_text", `Text must be well-formed Unicode: content.text.text holds ${describeLoneSurrogate(text)}.`);
  const bytes = utf8Length(text);
  if (bytes > LIMITS.maxContentBytes) {
    return fail("content_too_large", `Message text is ${bytes} bytes; the limit is ${LIMITS.maxContentBytes}.`);
  }
  return { ok: true, content: { text: { text } }, kind: "text" };
}

/** client_msg_id: the client's idempotency key, normally a UUID. */
export function validClientMsgId(id: unknown): id is string {
  return typeof id === "string" && id.length >= 1 && id.length <= LIMITS.maxClientMsgIdLength && /^[\x21-\x7e]+$/.test(id);
}

/**
 * A reaction is one short emoji sequence (ZWJ sequences, skin tones and flags included) or a
 * Slack-style :shortcode:; no whitespace or control characters, at most LIMITS.maxEmojiLength
 * UTF-16 units.
 */
export function validEmoji(emoji: unknown): emoji is string {
  if (typeof emoji !== "string" || emoji.length < 1 || emoji.length > LIMITS.maxEmojiLength || !isWellFormed(emoji)) return false;
  if (/^:[a-z0-9_+-]+:$/.test(emoji)) return true;
  return !/[\s\p{Cc}]/u.test(emoji) && /[^\x00-\x7f]/.test(emoji);
}

/** Largest inline thumbnail; a preview of a few KiB is what the web app makes. */
export const MAX_THUMBNAIL_BYTES = 16 * 1024;
const THUMBNAIL_TYPES = new Set(["image/webp", "image/jpeg", "image/png"]);
const MAX_DIMENSION = 100_000;

/**
 * The shape of an attachment body. Whether the upload exists, is complete and is the sender's
 * own is the channel's check (attachments.ts), which needs its table.
 */
function validateAttachmentBody(raw: unknown): Result<{ content: ContentInit; kind: ContentKind }> {
  if (typeof raw !== "object" || raw === null) return fail("invalid_argument", "content.attachment must be an object.");
  const a = raw as Record<string, unknown>;
  if (!isAttachmentId(a.attachment_id)) return fail("invalid_argument", "content.attachment.attachment_id is not an attachment id.");
  const size = Number(a.size_bytes);
  if (!Number.isSafeInteger(size) || size < 1) return fail("invalid_argument", "content.attachment.size_bytes must be the file's size in bytes.");
  const body: AttachmentInit = { attachment_id: a.attachment_id, size_bytes: size };
  if (a.sha256 !== undefined && a.sha256 !== null && a.sha256 !== "") {
    if (typeof a.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(a.sha256)) return fail("invalid_argument", "content.attachment.sha256 must be 64 lower-case hex digits.");
    body.sha256 = a.sha256;
  }
  for (const key of ["width", "height", "duration_ms"] as const) {
    const v = a[key];
    if (v === undefined || v === null || v === 0) continue;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > (key === "duration_ms" ? 0xffffffff : MAX_DIMENSION)) {
      return fail("invalid_argument", `content.attachment.${key} must be a whole number${key === "duration_ms" ? " of milliseconds" : " of pixels"}.`);
    }
    body[key] = n;
  }
  const thumb = thumbnailBase64(a.thumbnail);
  if (thumb === null) return fail("invalid_argument", "content.attachment.thumbnail must be bytes (base64 in JSON).");
  if (thumb !== undefined) {
    const bytes = Math.floor((thumb.length * 3) / 4) - (thumb.endsWith("==") ? 2 : thumb.endsWith("=") ? 1 : 0);
    if (bytes > MAX_THUMBNAIL_BYTES) return fail("content_too_large", `The thumbnail is ${bytes} bytes; the limit is ${MAX_THUMBNAIL_BYTES}.`);
    const type = typeof a.thumbnail_type === "string" ? a.thumbnail_type : "";
    if (!THUMBNAIL_TYPES.has(type)) return fail("invalid_argument", "content.attachment.thumbnail_type must be image/webp, image/jpeg or image/png.");
    body.thumbnail = thumb;
    body.thumbnail_type = type;
  }
  if (a.caption !== undefined && a.caption !== null && a.caption !== "") {
    if (typeof a.caption !== "string") return fail("invalid_argument", "content.attachment.caption must be a string.");
    if (!isWellFormed(a.caption)) return fail("invalid_text", `Text must be well-formed Unicode: content.attachment.caption holds ${describeLoneSurrogate(a.caption)}.`);
    const bytes = utf8Length(a.caption);
    if (bytes > LIMITS.maxContentBytes / 2) return fail("content_too_large", `The caption is ${bytes} bytes; the limit is ${LIMITS.maxContentBytes / 2}.`);
    body.caption = a.caption;
  }
  // Stored as proto-JSON: bytes as base64, like every JSON frame and REST body carries them.
  return { ok: true, content: { attachment: body } as ContentInit, kind: "attachment" };
}

/** The thumbnail as base64; undefined when absent, null when it is not bytes. */
function thumbnailBase64(v: unknown): string | undefined | null {
  if (v === undefined || v === null) return undefined;
  if (v instanceof Uint8Array) {
    if (v.byteLength === 0) return undefined;
    let s = "";
    for (let i = 0; i < v.byteLength; i += 0x8000) s += String.fromCharCode(...v.subarray(i, i + 0x8000));
    return btoa(s);
  }
  if (typeof v === "string") {
    if (v === "") return undefined;
    const std = v.replace(/-/g, "+").replace(/_/g, "/");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(std) || std.length % 4 === 1) return null;
    return std.padEnd(std.length + ((4 - (std.length % 4)) % 4), "=");
  }
  return null;
}

/* ------------------------------------ content as bytes ------------------------------------ */

/**
 * Largest encoded MessageContent a channel stores: the content limit (text, caption or
 * ciphertext) plus room for the body's other fields (ids, type, name, hash, dimensions, field
 * tags). A text at the limit encodes to 8 bytes more than its UTF-8; an attachment body is
 * bounded here as a whole, thumbnail and caption included.
 */
export const MAX_STORED_CONTENT_BYTES = LIMITS.maxContentBytes + 1024;

/** How a stored MessageContent reads back: the shape the codec and the REST API use. */
const AS_OBJECT = { longs: Number, bytes: String, enums: String, arrays: true, defaults: false } as const;

/** What the messages table's `content` column holds: MessageContent bytes, or proto-JSON in rows from before. */
export type StoredContent = ArrayBuffer | string;

/**
 * `content` as the channel stores it: the protobuf encoding of MessageContent. Text that is not
 * well-formed (a name stored before the edges checked text, in a notice) is repaired first:
 * protobuf strings are UTF-8, and bytes that are not would fail every strict decoder.
 */
export function encodeContent(content: ContentInit): Uint8Array {
  return pb.MessageContent.encode(pb.MessageContent.fromObject(wellFormedDeep(content))).finish();
}

/** Bytes as a SQL BLOB binding: an ArrayBuffer of exactly these bytes (the encoder may hand out a view of a larger pool). */
export function blob(bytes: Uint8Array): ArrayBuffer {
  const exact = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  return exact.buffer as ArrayBuffer;
}

/**
 * The content of a stored row. Rows are MessageContent bytes (a BLOB); rows written before the
 * content migration, or by an older version of the code still running this object during a
 * deploy, are proto-JSON text, read as they always were. An empty value is no content (a
 * message deleted for everyone).
 */
export function decodeContent(stored: StoredContent): ContentInit {
  if (typeof stored === "string") return stored === "" ? {} : (JSON.parse(stored) as ContentInit);
  const bytes = new Uint8Array(stored);
  if (bytes.byteLength === 0) return {};
  let message: ReturnType<typeof pb.MessageContent.decode>;
  try {
    message = pb.MessageContent.decode(bytes);
  } catch {
    // Nothing this code writes gets here (encodeContent repairs text); should a row hold a string
    // that is not UTF-8 anyway, it reads with U+FFFD rather than failing its whole page.
    message = pb.MessageContent.decode(lenientReader(bytes));
  }
  return pb.MessageContent.toObject(message, AS_OBJECT) as ContentInit;
}


/** The stored form of content a member sent, or content_too_large when it encodes past the limit. */
export function contentForStorage(content: ContentInit): Result<{ bytes: Uint8Array }> {
  const bytes = encodeContent(content);
  if (bytes.byteLength > MAX_STORED_CONTENT_BYTES) {
    return fail("content_too_large", `The message encodes to ${bytes.byteLength} bytes; the limit is ${MAX_STORED_CONTENT_BYTES}.`);
  }
  return { ok: true, bytes };
}

/** True when two stored values hold the same content (an edit that changes nothing). */
export function sameContent(stored: StoredContent, bytes: Uint8Array): boolean {
  const a = typeof stored === "string" ? encodeContent(decodeContent(stored)) : new Uint8Array(stored);
  return a.byteLength === bytes.byteLength && a.every((b, i) => b === bytes[i]);
}

/**
 * Channel migration: proto-JSON rows become MessageContent bytes, in batches so a long history
 * never sits in memory at once. It runs in the migration's turn (one implicit transaction with
 * the schema version), so an object is either wholly converted or not at all. SQLite keeps a
 * BLOB as a BLOB in the TEXT-declared column; reads tell the two apart by type (decodeContent).
 */
export function convertContentToBytes(sql: SqlStorage): void {
  const BATCH = 500;
  let after = 0;
  for (;;) {
    const rows = sql.exec<{ seq: number; content: string }>(
      "SELECT seq, content FROM messages WHERE seq > ? AND typeof(content) = 'text' ORDER BY seq LIMIT ?", after, BATCH,
    ).toArray();
    for (const r of rows) sql.exec("UPDATE messages SET content = ? WHERE seq = ?", blob(encodeContent(decodeContent(r.content))), r.seq);
    if (rows.length < BATCH) return;
    after = rows.at(-1)!.seq;
  }
}
