/**
 * Attachment settings from the Worker's vars and secrets (wrangler.toml documents each), and the
 * rules a declared upload must pass before a byte moves: allowed type, size cap, file name.
 */
import { fail, type Failure } from "../errors.js";
import { describeLoneSurrogate, isWellFormed } from "../../protocol/text.js";
import { hasOwnBinding } from "../bindings.js";
import type { Jurisdiction } from "../ids.js";

/** R2 takes multipart parts of 5 MiB to 5 GiB, all equal but the last. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
const DEFAULT_MAX_BYTES = 100 * 1024 * 1024;
const DEFAULT_PART_BYTES = 8 * 1024 * 1024;
/** File names are capped in UTF-8 bytes, like most file systems (255). */
export const MAX_FILE_NAME_BYTES = 255;

export interface S3Settings {
  /** https://<account_id>.r2.cloudflarestorage.com */
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface AttachmentConfig {
  maxBytes: number;
  /** Exact types, or prefixes for entries that ended in "*". */
  contentTypes: { exact: Set<string>; prefixes: string[] };
  partBytes: number;
  uploadUrlTtlSeconds: number;
  downloadUrlTtlSeconds: number;
  orphanTtlMs: number;
  /** Set when S3 keys are configured: uploads and downloads then go straight to R2. */
  s3: S3Settings | undefined;
}

function positive(value: unknown, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : fallback;
}

/**
 * The settings for attachments of channels stored in `jurisdiction`. S3 direct uploads and
 * downloads serve the default bucket only: a jurisdiction with a bucket of its own
 * (shared/bindings.ts) has its blobs go through the Worker's signed routes onto that binding.
 */
export function attachmentConfig(env: Env, jurisdiction: Jurisdiction = ""): AttachmentConfig {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const raw of String(env.ATTACHMENT_CONTENT_TYPES ?? "").split(",")) {
    const t = raw.trim().toLowerCase();
    if (t === "") continue;
    if (t.endsWith("*")) prefixes.push(t.slice(0, -1)); else exact.add(t);
  }
  const keyId = (env as { R2_ACCESS_KEY_ID?: string }).R2_ACCESS_KEY_ID ?? "";
  const secret = (env as { R2_SECRET_ACCESS_KEY?: string }).R2_SECRET_ACCESS_KEY ?? "";
  const endpoint = String(env.R2_S3_ENDPOINT ?? "").replace(/\/+$/, "");
  return {
    maxBytes: positive(env.ATTACHMENT_MAX_BYTES, DEFAULT_MAX_BYTES),
    contentTypes: { exact, prefixes },
    partBytes: Math.max(MIN_PART_BYTES, positive(env.ATTACHMENT_PART_BYTES, DEFAULT_PART_BYTES)),
    uploadUrlTtlSeconds: positive(env.ATTACHMENT_UPLOAD_URL_TTL_SECONDS, 900),
    downloadUrlTtlSeconds: positive(env.ATTACHMENT_DOWNLOAD_URL_TTL_SECONDS, 300),
    orphanTtlMs: positive(env.ATTACHMENT_ORPHAN_TTL_SECONDS, 86_400) * 1000,
    s3: keyId !== "" && secret !== "" && endpoint !== "" && !hasOwnBinding(env, "ATTACHMENTS", jurisdiction)
      ? { endpoint, bucket: String(env.R2_BUCKET_NAME || "edgechat-attachments"), accessKeyId: keyId, secretAccessKey: secret }
      : undefined,
  };
}

/** A bare media type (`image/png`), lower case, no parameters. */
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

export function contentTypeAllowed(config: AttachmentConfig, contentType: string): boolean {
  if (!MEDIA_TYPE.test(contentType)) return false;
  return config.contentTypes.exact.has(contentType) || config.contentTypes.prefixes.some((p) => contentType.startsWith(p));
}

/**
 * Control characters, path separators and the bidirectional overrides that make "gnp.exe" read
 * as "exe.png". Everything else of Unicode is a fair file name.
 */
const FORBIDDEN_IN_NAME = /[\p{Cc}/\\\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\ufeff]/u;

function utf8Bytes(s: string): number {
  return new TextEncoder().encode(s).byteLength;
}

/** Why `name` cannot be a file name, or undefined when it can. */
export function fileNameProblem(name: string): Failure | undefined {
  // The REST parser refuses ill-formed text already; checked again for any other caller.
  if (!isWellFormed(name)) return fail("invalid_text", `Text must be well-formed Unicode: filename holds ${describeLoneSurrogate(name)}.`);
  const problem = fileNameRule(name);
  return problem === undefined ? undefined : fail("invalid_argument", problem);
}

function fileNameRule(name: string): string | undefined {
  if (name.length === 0) return "filename must not be empty.";
  if (FORBIDDEN_IN_NAME.test(name)) return "filename must not contain path separators, control characters or direction overrides.";
  if (name.trim() !== name || name === "." || name === "..") return "filename must not start or end with spaces or be . or ..";
  if (utf8Bytes(name) > MAX_FILE_NAME_BYTES) return `filename is limited to ${MAX_FILE_NAME_BYTES} bytes of UTF-8.`;
  return undefined;
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** What a presign declares, checked against the configuration. */
export interface DeclaredUpload {
  filename: string;
  content_type: string;
  size_bytes: number;
  sha256?: string | undefined;
}

export function checkDeclaredUpload(config: AttachmentConfig, d: DeclaredUpload): Failure | undefined {
  const nameProblem = fileNameProblem(d.filename);
  if (nameProblem) return nameProblem;
  if (!Number.isSafeInteger(d.size_bytes) || d.size_bytes < 1) return fail("invalid_argument", "size_bytes must be a whole number of bytes, at least 1.");
  if (d.size_bytes > config.maxBytes) {
    return fail("content_too_large", `The file is ${d.size_bytes} bytes; attachments are limited to ${config.maxBytes} bytes.`);
  }
  if (!contentTypeAllowed(config, d.content_type)) {
    return fail("unsupported_media_type", `Files of type "${d.content_type.slice(0, 100)}" cannot be attached here.`);
  }
  if (d.sha256 !== undefined && !SHA256_HEX.test(d.sha256)) return fail("invalid_argument", "sha256 must be 64 lower-case hex digits.");
  return undefined;
}

/** How a file of `size` bytes goes up: one PUT, or parts of `partBytes` (the last may be shorter). */
export function uploadPlan(config: AttachmentConfig, size: number): { multipart: boolean; partSize: number; partCount: number } {
  if (size <= config.partBytes) return { multipart: false, partSize: size, partCount: 1 };
  return { multipart: true, partSize: config.partBytes, partCount: Math.ceil(size / config.partBytes) };
}

/** Bytes of part `n` (1-based) of a `size`-byte file cut in `partSize` parts. */
export function partLength(size: number, partSize: number, n: number): number {
  return Math.min(partSize, size - (n - 1) * partSize);
}
