/**
 * The production upload path's presigner (aws4fetch, SigV4 query signing) inside workerd: the
 * URLs name the right bucket and key, expire when they should, and sign the headers that pin a
 * PUT to the declared length, type and hash. R2's S3 endpoint cannot be reached from here, so
 * the signature itself is checked against AWS's published example.
 */
import { env } from "cloudflare:test";
import { AwsV4Signer } from "aws4fetch";
import { describe, expect, it } from "vitest";
import { presignGet, presignPut, presignUploadPart } from "../../shared/attachments/s3.js";
import { presign } from "../../workers/attachments/uploads.js";
import { createGroup, register } from "../helpers/api.js";

const s3 = { endpoint: "https://0123456789abcdef.r2.cloudflarestorage.com", bucket: "edgechat-attachments", accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" };
const now = new Date("2026-04-26T12:00:00Z");
const KEY = "a_g_0123456789abcdefghjkmnpq_rstvwxyz0123456789abcdef";

function params(url: string): URLSearchParams {
  return new URL(url).searchParams;
}

describe("S3 presigner", () => {
  it("signs a single PUT for the bucket and key, with length, type and sha256 pinned", async () => {
    const sha = btoa("x".repeat(32));
    const put = await presignPut(s3, KEY, { contentType: "image/png", size: 1234, sha256Base64: sha, expiresIn: 900, now });
    const u = new URL(put.url);
    expect(u.host).toBe("0123456789abcdef.r2.cloudflarestorage.com");
    expect(u.pathname).toBe(`/edgechat-attachments/${KEY}`);
    const p = u.searchParams;
    expect(p.get("X-Amz-Expires")).toBe("900");
    expect(p.get("X-Amz-Date")).toBe("20260426T120000Z");
    expect(p.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256");
    expect(p.get("X-Amz-Credential")).toBe("AKIDEXAMPLE/20260426/auto/s3/aws4_request");
    expect(p.get("X-Amz-SignedHeaders")).toBe("content-length;content-type;host;x-amz-checksum-sha256");
    expect(p.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    expect(put.headers).toEqual({ "content-length": "1234", "content-type": "image/png", "x-amz-checksum-sha256": sha });
    // Another length, type or key is another signature.
    const other = await presignPut(s3, KEY, { contentType: "image/png", size: 1235, sha256Base64: sha, expiresIn: 900, now });
    expect(params(other.url).get("X-Amz-Signature")).not.toBe(p.get("X-Amz-Signature"));
  });

  it("signs UploadPart with its part number, upload id and length", async () => {
    const part = await presignUploadPart(s3, KEY, { uploadId: "up-1", partNumber: 3, size: 8 * 1024 * 1024, expiresIn: 600, now });
    const u = new URL(part.url);
    expect(u.pathname).toBe(`/edgechat-attachments/${KEY}`);
    expect([u.searchParams.get("partNumber"), u.searchParams.get("uploadId"), u.searchParams.get("X-Amz-Expires")]).toEqual(["3", "up-1", "600"]);
    expect(u.searchParams.get("X-Amz-SignedHeaders")).toBe("content-length;host");
  });

  it("signs a GET that answers with the stored name and type", async () => {
    const get = await presignGet(s3, KEY, { contentType: "image/png", disposition: "inline; filename=\"a.png\"", expiresIn: 300, now });
    const p = params(get.url);
    expect([p.get("response-content-type"), p.get("response-content-disposition"), p.get("X-Amz-Expires")]).toEqual(["image/png", "inline; filename=\"a.png\"", "300"]);
    expect(p.get("X-Amz-SignedHeaders")).toBe("host");
  });

  it("computes AWS's published example signature with the options edgechat uses", async () => {
    // https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html (GET test.txt).
    const signer = new AwsV4Signer({
      method: "GET", url: "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Expires=86400",
      accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      service: "s3", region: "us-east-1", signQuery: true, allHeaders: true, datetime: "20130524T000000Z",
    });
    const signed = await signer.sign();
    expect(signed.url.searchParams.get("X-Amz-Signature")).toBe("aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  });

  it("is what presign answers once S3 keys are configured", async () => {
    const [alice, bob] = await Promise.all([register("alice"), register("bob")]);
    const group = await createGroup(alice, [bob]);
    const withKeys = { ...env, R2_S3_ENDPOINT: s3.endpoint, R2_BUCKET_NAME: s3.bucket, R2_ACCESS_KEY_ID: "AKIDEXAMPLE", R2_SECRET_ACCESS_KEY: "secret" } as Env;
    const r = await presign(withKeys, "http://edgechat.test", alice.user_id, group, { filename: "a.png", content_type: "image/png", size_bytes: 2048, sha256: "ab".repeat(32) });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const u = new URL(r.upload_url!);
    expect([u.host, u.pathname]).toEqual(["0123456789abcdef.r2.cloudflarestorage.com", `/edgechat-attachments/${r.attachment_id}`]);
    expect(u.searchParams.get("X-Amz-SignedHeaders")).toBe("content-length;content-type;host;x-amz-checksum-sha256");
    expect(r.upload_headers!["x-amz-checksum-sha256"]).toBe(btoa(String.fromCharCode(...Array(32).fill(0xab))));
    expect(Number(u.searchParams.get("X-Amz-Expires"))).toBe(Number(env.ATTACHMENT_UPLOAD_URL_TTL_SECONDS));
  });
});
