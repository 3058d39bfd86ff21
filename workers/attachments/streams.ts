/**
 * Streaming helpers for blobs: bytes pass through the Worker in chunks, never whole. R2's put()
 * and uploadPart() need a stream of known length, which a request body with Content-Length is,
 * and which FixedLengthStream restores after a transform.
 */

export function hex(bytes: ArrayBuffer): string {
  let out = "";
  for (const b of new Uint8Array(bytes)) out += b.toString(16).padStart(2, "0");
  return out;
}

export function hexToBase64(h: string): string {
  let s = "";
  for (let i = 0; i < h.length; i += 2) s += String.fromCharCode(parseInt(h.slice(i, i + 2), 16));
  return btoa(s);
}

/**
 * Passes `body` on as a stream of exactly `length` bytes (anything else errors the stream, so the
 * R2 write fails) while a SHA-256 of it is computed on the way. `sha256` settles once the whole
 * body went through; await it only after the write succeeded.
 */
export function hashedStream(body: ReadableStream<Uint8Array>, length: number): { stream: ReadableStream<Uint8Array>; sha256: Promise<string> } {
  const digest = new crypto.DigestStream("SHA-256");
  const writer = digest.getWriter();
  const tap = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      await writer.write(chunk);
      controller.enqueue(chunk);
    },
    async flush() {
      await writer.close();
    },
  });
  const fixed = new FixedLengthStream(length);
  body.pipeThrough(tap).pipeTo(fixed.writable).catch(() => {
    // The error reaches the reader of `fixed.readable` (the R2 write), which reports it.
    writer.abort().catch(() => {});
  });
  return { stream: fixed.readable, sha256: digest.digest.then(hex) };
}

/** SHA-256 of a stored object, read back in chunks. */
export async function sha256Of(bucket: R2Bucket, key: string): Promise<string | undefined> {
  const obj = await bucket.get(key);
  if (!obj) return undefined;
  const digest = new crypto.DigestStream("SHA-256");
  await obj.body.pipeTo(digest);
  return hex(await digest.digest);
}

/** One byte range of `size` from a Range header; "none" = send it all; "invalid" = 416. Multiple ranges are answered in full. */
export function parseRange(header: string | null, size: number): { offset: number; length: number } | "none" | "invalid" {
  if (!header) return "none";
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return header.includes(",") || !header.startsWith("bytes=") ? "none" : "invalid";
  const [, a, b] = m;
  if (a === "" && b === "") return "invalid";
  if (a === "") {
    const suffix = Math.min(Number(b), size);
    if (suffix <= 0) return "invalid";
    return { offset: size - suffix, length: suffix };
  }
  const start = Number(a);
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || end < start) return "invalid";
  return { offset: start, length: end - start + 1 };
}
