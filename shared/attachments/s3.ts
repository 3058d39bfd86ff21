/**
 * R2's S3 API, for production uploads and downloads that skip the Worker: presigned PUT,
 * presigned UploadPart and GET URLs, and the multipart calls the server makes itself
 * (CreateMultipartUpload, CompleteMultipartUpload, AbortMultipartUpload, ListParts).
 *
 * Signed with aws4fetch (SigV4, 12 KiB of bundle) rather than @aws-sdk/client-s3 with its
 * presigner (600 KiB): docs/decisions/012-attachment-uploads.md has the measurements. aws4fetch
 * leaves content-type and content-length out of a signature unless `allHeaders` is set; every
 * presigned upload here sets it, so R2 refuses a body of another length or type.
 */
import { AwsClient, AwsV4Signer } from "aws4fetch";
import type { S3Settings } from "./config.js";

/** R2's S3 API has one region. */
const REGION = "auto";

export interface PresignedRequest {
  url: string;
  method: "PUT" | "GET";
  /** Headers the client must send exactly as given (they are part of the signature). */
  headers: Record<string, string>;
}

export interface S3Part {
  part_number: number;
  etag: string;
  size?: number;
}

/** Path-style object URL: https://<account>.r2.cloudflarestorage.com/<bucket>/<key>. */
export function objectUrl(s3: S3Settings, key: string): URL {
  return new URL(`${s3.endpoint}/${encodeURIComponent(s3.bucket)}/${encodeURIComponent(key)}`);
}

async function presign(s3: S3Settings, method: "PUT" | "GET", url: URL, headers: Record<string, string>, expiresIn: number, now: Date): Promise<PresignedRequest> {
  url.searchParams.set("X-Amz-Expires", String(expiresIn));
  const signer = new AwsV4Signer({
    method, url: url.toString(), headers, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey,
    service: "s3", region: REGION, signQuery: true, allHeaders: true,
    datetime: now.toISOString().replace(/[:-]|\.\d{3}/g, ""),
  });
  const signed = await signer.sign();
  return { url: signed.url.toString(), method, headers };
}

/**
 * A presigned single PUT of exactly `size` bytes of `contentType`. With `sha256Base64`, R2
 * checks the body's SHA-256 itself (x-amz-checksum-sha256) and refuses a different file.
 */
export function presignPut(
  s3: S3Settings, key: string,
  opts: { contentType: string; size: number; sha256Base64?: string | undefined; expiresIn: number; now?: Date },
): Promise<PresignedRequest> {
  const headers: Record<string, string> = { "content-length": String(opts.size), "content-type": opts.contentType };
  if (opts.sha256Base64) headers["x-amz-checksum-sha256"] = opts.sha256Base64;
  return presign(s3, "PUT", objectUrl(s3, key), headers, opts.expiresIn, opts.now ?? new Date());
}

/** A presigned UploadPart of exactly `size` bytes. */
export function presignUploadPart(
  s3: S3Settings, key: string,
  opts: { uploadId: string; partNumber: number; size: number; expiresIn: number; now?: Date },
): Promise<PresignedRequest> {
  const url = objectUrl(s3, key);
  url.searchParams.set("partNumber", String(opts.partNumber));
  url.searchParams.set("uploadId", opts.uploadId);
  return presign(s3, "PUT", url, { "content-length": String(opts.size) }, opts.expiresIn, opts.now ?? new Date());
}

/** A presigned GET; the response carries the given type and Content-Disposition. */
export function presignGet(
  s3: S3Settings, key: string,
  opts: { contentType: string; disposition: string; expiresIn: number; now?: Date },
): Promise<PresignedRequest> {
  const url = objectUrl(s3, key);
  url.searchParams.set("response-content-type", opts.contentType);
  url.searchParams.set("response-content-disposition", opts.disposition);
  return presign(s3, "GET", url, {}, opts.expiresIn, opts.now ?? new Date());
}

function client(s3: S3Settings): AwsClient {
  return new AwsClient({ accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, service: "s3", region: REGION, retries: 2 });
}

async function call(s3: S3Settings, method: string, url: URL, body?: string): Promise<string> {
  const init: RequestInit = { method };
  if (body !== undefined) init.body = body;
  const res = await client(s3).fetch(url.toString(), init);
  const text = await res.text();
  if (!res.ok) throw new S3Error(res.status, xmlValue(text, "Code") ?? "", xmlValue(text, "Message") ?? text.slice(0, 200));
  return text;
}

export class S3Error extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(`R2 S3 API answered ${status} ${code}: ${message}`);
  }
}

export async function createMultipartUpload(s3: S3Settings, key: string, contentType: string): Promise<string> {
  const url = objectUrl(s3, key);
  url.searchParams.set("uploads", "");
  const res = await client(s3).fetch(url.toString(), { method: "POST", headers: { "content-type": contentType } });
  const text = await res.text();
  if (!res.ok) throw new S3Error(res.status, xmlValue(text, "Code") ?? "", xmlValue(text, "Message") ?? text.slice(0, 200));
  const uploadId = xmlValue(text, "UploadId");
  if (!uploadId) throw new S3Error(res.status, "NoUploadId", "CreateMultipartUpload answered without an UploadId.");
  return uploadId;
}

export async function completeMultipartUpload(s3: S3Settings, key: string, uploadId: string, parts: S3Part[]): Promise<void> {
  const url = objectUrl(s3, key);
  url.searchParams.set("uploadId", uploadId);
  const xml = `<CompleteMultipartUpload>${parts
    .map((p) => `<Part><PartNumber>${p.part_number}</PartNumber><ETag>${escapeXml(p.etag)}</ETag></Part>`)
    .join("")}</CompleteMultipartUpload>`;
  await call(s3, "POST", url, xml);
}

export async function abortMultipartUpload(s3: S3Settings, key: string, uploadId: string): Promise<void> {
  const url = objectUrl(s3, key);
  url.searchParams.set("uploadId", uploadId);
  await call(s3, "DELETE", url);
}

/** Parts R2 holds for an unfinished multipart upload (up to 1,000: 100 MB needs 13). */
export async function listParts(s3: S3Settings, key: string, uploadId: string): Promise<S3Part[]> {
  const url = objectUrl(s3, key);
  url.searchParams.set("uploadId", uploadId);
  const text = await call(s3, "GET", url);
  const parts: S3Part[] = [];
  for (const m of text.matchAll(/<Part>([\s\S]*?)<\/Part>/g)) {
    const body = m[1]!;
    parts.push({ part_number: Number(xmlValue(body, "PartNumber")), etag: xmlValue(body, "ETag") ?? "", size: Number(xmlValue(body, "Size") ?? 0) });
  }
  return parts;
}

function xmlValue(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml);
  return m ? unescapeXml(m[1]!) : undefined;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function unescapeXml(s: string): string {
  return s.replace(/&quot;/g, "\"").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}
