/**
 * Attachments in the SDK: upload a file (Blob, File or bytes) with progress, cancel and resume,
 * then send it as a message. The server decides how the bytes go up (one PUT, or parts straight
 * to R2 in production, or through the Worker locally); this module follows whatever presign
 * answers, so the same code serves both paths.
 *
 * @example
 * const uploaded = await client.attachments.upload(file, {
 *   channelId,
 *   onProgress: ({ loaded, total }) => bar.value = loaded / total,
 *   signal: controller.signal,
 * });
 * await client.send(channelId, attachmentContent(uploaded, { width: 800, height: 600 }));
 */
import { EdgechatError } from "./errors.js";
import type { AttachmentBody, SendContent } from "./types.js";

/**
 * What the SDK needs of a Blob or File (browsers, Node 20 and Workers all have them), described
 * here so the package's types need no DOM library.
 */
export interface BlobLike {
  readonly size: number;
  readonly type: string;
  slice(start?: number, end?: number, contentType?: string): BlobLike;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** What the SDK needs of an AbortSignal. */
export interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** A file as the SDK takes it. */
export type UploadSource = BlobLike | Uint8Array;

/** A finished upload, ready to be sent. */
export interface UploadedAttachment {
  attachment_id: string;
  channel_id: string;
  file_name: string;
  content_type: string;
  size_bytes: number;
  sha256: string;
}

export interface UploadProgress {
  attachment_id: string;
  /** Bytes the server has (parts finished earlier count). */
  loaded: number;
  total: number;
}

export interface UploadOptions {
  channelId: string;
  /** Default: the File's name, else "file". */
  filename?: string;
  /** Default: the Blob's type, else application/octet-stream. */
  contentType?: string;
  onProgress?: (progress: UploadProgress) => void;
  /** Aborting stops the upload; the error (code "aborted") carries `attachmentId` to resume with. */
  signal?: AbortSignalLike;
  /**
   * The file's SHA-256 (64 hex digits), or true to compute it here with WebCrypto, false not to.
   * Default: computed for files up to 64 MiB (WebCrypto hashes whole buffers). The server
   * measures the hash either way and refuses a file that differs from a declared one.
   */
  sha256?: string | boolean;
  /** Parts sent at once for large files. Default 3. */
  concurrency?: number;
}

/** One HTTP PUT of an upload: the SDK's default uses XMLHttpRequest in browsers (upload progress), fetch elsewhere. */
export type UploadTransport = (request: {
  url: string;
  headers: Record<string, string>;
  body: BlobLike | Uint8Array;
  signal?: AbortSignalLike | undefined;
  onProgress?: ((loaded: number) => void) | undefined;
}) => Promise<{ status: number; etag: string; text: string }>;

/** An upload that stopped: `attachmentId` resumes it with `attachments.resume()`. */
export class UploadError extends EdgechatError {
  readonly attachmentId: string | undefined;
  constructor(init: ConstructorParameters<typeof EdgechatError>[0] & { attachmentId?: string | undefined }) {
    super(init);
    this.name = "UploadError";
    this.attachmentId = init.attachmentId;
  }
}

interface Target {
  part_number: number;
  size_bytes: number;
  url: string;
  headers: Record<string, string>;
}

interface Targets {
  attachment_id?: string;
  mode: "single" | "multipart";
  part_size: number;
  part_count: number;
  upload_url?: string;
  upload_headers?: Record<string, string>;
  parts?: Target[];
  parts_done?: { part_number: number; etag: string; size_bytes: number }[];
  attachment: UploadedAttachment & { state: string };
}

/** What the attachments module needs from the REST layer. */
export interface AttachmentApi {
  call(method: string, path: string, body?: unknown): Promise<unknown>;
}

const HASH_LIMIT_BYTES = 64 * 1024 * 1024;
const PART_ATTEMPTS = 4;

/** The message content that sends an uploaded file, with what the sender knows about it. */
export function attachmentContent(
  uploaded: UploadedAttachment,
  extra: { caption?: string; width?: number; height?: number; duration_ms?: number; thumbnail?: Uint8Array; thumbnail_type?: string } = {},
): SendContent {
  const attachment: Partial<AttachmentBody> & { attachment_id: string } = {
    attachment_id: uploaded.attachment_id, size_bytes: uploaded.size_bytes, sha256: uploaded.sha256,
    content_type: uploaded.content_type, file_name: uploaded.file_name,
  };
  for (const k of ["caption", "width", "height", "duration_ms", "thumbnail", "thumbnail_type"] as const) {
    if (extra[k] !== undefined) (attachment as Record<string, unknown>)[k] = extra[k];
  }
  return { attachment };
}

export class Attachments {
  constructor(
    private readonly api: AttachmentApi,
    private readonly transport: UploadTransport,
  ) {}

  /** Uploads a file to a channel; resolves once the server checked it (size, SHA-256). */
  async upload(file: UploadSource, options: UploadOptions): Promise<UploadedAttachment> {
    const size = file instanceof Uint8Array ? file.byteLength : file.size;
    const filename = options.filename ?? ((file as { name?: unknown }).name && typeof (file as { name?: unknown }).name === "string" ? (file as File).name : "file");
    const contentType = (options.contentType ?? (file instanceof Blob ? file.type : "") ?? "") || "application/octet-stream";
    throwIfAborted(options.signal, undefined);
    let sha256: string | undefined;
    if (typeof options.sha256 === "string") sha256 = options.sha256.toLowerCase();
    else if (options.sha256 === true || (options.sha256 === undefined && size <= HASH_LIMIT_BYTES)) sha256 = await sha256Hex(file);
    throwIfAborted(options.signal, undefined);
    const body: Record<string, unknown> = { channel_id: options.channelId, filename, content_type: contentType, size_bytes: size };
    if (sha256) body.sha256 = sha256;
    const targets = (await this.api.call("POST", "/v1/attachments/presign", body)) as Targets;
    return this.transfer(targets.attachment.attachment_id, file, targets, options);
  }

  /**
   * Continues an upload that stopped (a lost network, a closed tab, `signal`): only the parts the
   * server does not have yet are sent. `file` must be the same file.
   */
  async resume(attachmentId: string, file: UploadSource, options: Omit<UploadOptions, "channelId" | "filename" | "contentType" | "sha256"> = {}): Promise<UploadedAttachment> {
    const targets = (await this.api.call("GET", `/v1/attachments/${encodeURIComponent(attachmentId)}/upload`)) as Targets;
    return this.transfer(attachmentId, file, targets, options);
  }

  /** Gives up an upload nobody sent; the server deletes what arrived. */
  async cancel(attachmentId: string): Promise<void> {
    await this.api.call("DELETE", `/v1/attachments/${encodeURIComponent(attachmentId)}`);
  }

  /** A short-lived URL to fetch an attachment (members of its channel). Supports Range. */
  async url(attachmentId: string): Promise<{ url: string; expires_at: number; attachment: UploadedAttachment }> {
    return (await this.api.call("GET", `/v1/attachments/${encodeURIComponent(attachmentId)}`)) as { url: string; expires_at: number; attachment: UploadedAttachment };
  }

  private async transfer(attachmentId: string, file: UploadSource, first: Targets, options: Pick<UploadOptions, "onProgress" | "signal" | "concurrency">): Promise<UploadedAttachment> {
    const size = file instanceof Uint8Array ? file.byteLength : file.size;
    if (first.attachment.size_bytes !== size) {
      throw new UploadError({ code: "invalid_argument", message: `The file has ${size} bytes; the upload expects ${first.attachment.size_bytes}.`, attachmentId });
    }
    const report = (loaded: number) => options.onProgress?.({ attachment_id: attachmentId, loaded: Math.min(loaded, size), total: size });
    let parts: { part_number: number; etag: string }[] | undefined;
    try {
      if (first.attachment.state === "complete") {
        report(size);
        return uploaded(first.attachment);
      }
      if (first.mode === "single") {
        if (!first.upload_url) throw new UploadError({ code: "conflict", message: "The server offered no upload URL.", attachmentId });
        report(0);
        const res = await this.put({ url: first.upload_url, headers: first.upload_headers ?? {}, part_number: 1, size_bytes: size }, file, options.signal, report, attachmentId);
        if (res.status !== 200) throw await uploadFailure(res, attachmentId);
      } else {
        parts = await this.sendParts(attachmentId, file, first, options, report);
      }
      const done = (await this.api.call("POST", `/v1/attachments/${encodeURIComponent(attachmentId)}/complete`, parts ? { parts } : {})) as { attachment: UploadedAttachment };
      report(size);
      return uploaded(done.attachment);
    } catch (err) {
      if (err instanceof UploadError) throw err;
      if (err instanceof EdgechatError) throw new UploadError({ code: err.code, message: err.message, retryable: err.retryable, attachmentId, ...(err.status !== undefined ? { status: err.status } : {}) });
      throw new UploadError({ code: "network_error", message: `Upload failed: ${err instanceof Error ? err.message : String(err)}`, retryable: true, attachmentId });
    }
  }

  /** Sends the missing parts, a few at a time; returns every part's etag for the completion. */
  private async sendParts(attachmentId: string, file: UploadSource, first: Targets, options: Pick<UploadOptions, "signal" | "concurrency">, report: (loaded: number) => void): Promise<{ part_number: number; etag: string }[]> {
    const done = new Map<number, string>();
    for (const p of first.parts_done ?? []) done.set(p.part_number, p.etag);
    const partSize = first.part_size;
    const inFlight = new Map<number, number>();
    const doneBytes = () => [...done.keys()].reduce((sum, n) => sum + Math.min(partSize, size(file) - (n - 1) * partSize), 0);
    const progress = () => report(doneBytes() + [...inFlight.values()].reduce((a, b) => a + b, 0));
    progress();
    let queue = (first.parts ?? []).filter((t) => !done.has(t.part_number));
    let refreshed = false;
    let stopped = false;
    const worker = async (): Promise<void> => {
      for (let t = queue.shift(); t && !stopped; t = queue.shift()) {
        const target = t;
        const from = (target.part_number - 1) * partSize;
        const slice = sliceOf(file, from, from + target.size_bytes);
        for (let attempt = 1; ; attempt++) {
          inFlight.set(target.part_number, 0);
          let res: { status: number; etag: string; text: string } | undefined;
          let networkError: unknown;
          try {
            res = await this.put(target, slice, options.signal, (loaded) => {
              inFlight.set(target.part_number, loaded);
              progress();
            }, attachmentId);
          } catch (err) {
            if (err instanceof UploadError && err.code === "aborted") throw err;
            networkError = err;
          } finally {
            inFlight.delete(target.part_number);
          }
          if (res && res.status === 200) {
            done.set(target.part_number, res.etag || etagFromBody(res.text));
            progress();
            break;
          }
          if (res && res.status === 403 && !refreshed) {
            // The URLs expired (a long upload): ask for fresh ones for what is missing.
            refreshed = true;
            const fresh = (await this.api.call("GET", `/v1/attachments/${encodeURIComponent(attachmentId)}/upload`)) as Targets;
            const byNumber = new Map((fresh.parts ?? []).map((p) => [p.part_number, p]));
            queue = queue.map((q) => byNumber.get(q.part_number) ?? q);
            const again = byNumber.get(target.part_number);
            if (again) Object.assign(target, again);
            continue;
          }
          const retryable = networkError !== undefined || (res !== undefined && (res.status >= 500 || res.status === 429));
          if (!retryable || attempt >= PART_ATTEMPTS) {
            if (res) throw await uploadFailure(res, attachmentId);
            throw new UploadError({ code: "network_error", message: `Part ${target.part_number} failed: ${networkError instanceof Error ? networkError.message : String(networkError)}`, retryable: true, attachmentId });
          }
          await sleep(250 * 2 ** attempt, options.signal, attachmentId);
        }
      }
    };
    const n = Math.max(1, Math.min(options.concurrency ?? 3, queue.length || 1));
    await Promise.all(Array.from({ length: n }, () => worker().catch((err: unknown) => {
      stopped = true; // the other workers finish their current part and stop
      throw err;
    })));
    return [...done].sort((a, b) => a[0] - b[0]).map(([part_number, etag]) => ({ part_number, etag }));
  }

  private async put(target: Pick<Target, "url" | "headers" | "part_number" | "size_bytes">, body: UploadSource, signal: AbortSignalLike | undefined, onProgress: (loaded: number) => void, attachmentId: string) {
    throwIfAborted(signal, attachmentId);
    // content-length is the body's; HTTP clients set it themselves (browsers refuse to be told).
    const headers = Object.fromEntries(Object.entries(target.headers).filter(([k]) => k.toLowerCase() !== "content-length"));
    try {
      return await this.transport({ url: target.url, headers, body, signal, onProgress });
    } catch (err) {
      if (signal?.aborted) throw abortedError(attachmentId);
      throw err;
    }
  }
}

function uploaded(a: UploadedAttachment): UploadedAttachment {
  return { attachment_id: a.attachment_id, channel_id: a.channel_id, file_name: a.file_name, content_type: a.content_type, size_bytes: a.size_bytes, sha256: a.sha256 };
}

function size(file: UploadSource): number {
  return file instanceof Uint8Array ? file.byteLength : file.size;
}

function sliceOf(file: UploadSource, from: number, to: number): UploadSource {
  return file instanceof Uint8Array ? file.subarray(from, to) : file.slice(from, to);
}

function etagFromBody(text: string): string {
  try {
    const b = JSON.parse(text) as { etag?: unknown };
    return typeof b.etag === "string" ? b.etag : "";
  } catch {
    return "";
  }
}

async function uploadFailure(res: { status: number; text: string }, attachmentId: string): Promise<UploadError> {
  let code = res.status === 403 ? "forbidden" : res.status >= 500 ? "unavailable" : "invalid_argument";
  let message = `The upload was refused (HTTP ${res.status}).`;
  let retryable = res.status >= 500 || res.status === 429;
  try {
    const b = JSON.parse(res.text) as { code?: unknown; message?: unknown; retryable?: unknown };
    if (typeof b.code === "string") code = b.code;
    if (typeof b.message === "string") message = b.message;
    if (typeof b.retryable === "boolean") retryable = b.retryable;
  } catch {
    // R2's S3 errors are XML; the status says enough.
  }
  return new UploadError({ code, message, retryable, status: res.status, attachmentId });
}

function abortedError(attachmentId: string | undefined): UploadError {
  return new UploadError({ code: "aborted", message: "The upload was cancelled.", attachmentId });
}

function throwIfAborted(signal: AbortSignalLike | undefined, attachmentId: string | undefined): void {
  if (signal?.aborted) throw abortedError(attachmentId);
}

function sleep(ms: number, signal: AbortSignalLike | undefined, attachmentId: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError(attachmentId));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** SHA-256 of a whole file with WebCrypto, as 64 lower-case hex digits. */
export async function sha256Hex(file: UploadSource): Promise<string> {
  const data = file instanceof Uint8Array ? file : new Uint8Array(await file.arrayBuffer());
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  let out = "";
  for (const b of new Uint8Array(digest)) out += b.toString(16).padStart(2, "0");
  return out;
}

/** The part of XMLHttpRequest uploads use (the SDK compiles without the DOM library). */
interface XhrLike {
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  upload: { onprogress: ((e: { loaded: number }) => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
  readonly status: number;
  readonly responseText: string;
  getResponseHeader(name: string): string | null;
  abort(): void;
  send(body: unknown): void;
}

/**
 * The default transport: XMLHttpRequest where it exists (browsers report upload progress only
 * through it), fetch elsewhere (Node ≥ 20, Workers), which reports a part when it finishes.
 */
export function defaultUploadTransport(): UploadTransport {
  const XHR = (globalThis as { XMLHttpRequest?: new () => XhrLike }).XMLHttpRequest;
  if (XHR) {
    return (req) => new Promise((resolve, reject) => {
      const xhr = new XHR();
      xhr.open("PUT", req.url);
      for (const [k, v] of Object.entries(req.headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e: { loaded: number }) => req.onProgress?.(e.loaded);
      xhr.onload = () => resolve({ status: xhr.status, etag: xhr.getResponseHeader("etag") ?? "", text: xhr.responseText });
      xhr.onerror = () => reject(new Error("network error"));
      xhr.onabort = () => reject(new Error("aborted"));
      req.signal?.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(req.body);
    });
  }
  return async (req) => {
    const f = (globalThis as { fetch?: typeof fetch }).fetch;
    if (!f) throw new EdgechatError({ code: "invalid_argument", message: "No fetch implementation for uploads: pass createClient({ uploadTransport })." });
    const init: RequestInit = { method: "PUT", headers: req.headers, body: req.body as BodyInit };
    if (req.signal) init.signal = req.signal as AbortSignal; // a real one: only the type is structural
    const res = await f(req.url, init);
    const text = await res.text();
    const size = req.body instanceof Uint8Array ? req.body.byteLength : req.body.size;
    if (res.ok) req.onProgress?.(size);
    return { status: res.status, etag: res.headers.get("etag") ?? "", text };
  };
}
