/**
 * /v1/attachments: declare an upload (presign), resume it, complete it, cancel it, and fetch an
 * attachment's short-lived download URL. The bytes never pass through these routes: they go to
 * the presigned R2 URLs, or to the Worker's signed blob routes locally (workers/attachments/).
 */
import { Hono } from "hono";
import * as z from "zod/mini";
import { errorResponse, fail } from "../../shared/errors.js";
import { isChannelId } from "../../shared/ids.js";
import { isAttachmentId } from "../../shared/attachments/ids.js";
import { cancelUpload, completeUpload, downloadUrl, presign, uploadStatus } from "../attachments/uploads.js";
import { send, type ApiContext, type ApiEnv } from "./app.js";
import { parseJsonBody } from "./validation.js";

const PresignBody = z.object({
  channel_id: z.string().check(z.refine(isChannelId, "not a channel id")),
  filename: z.string().check(z.maxLength(1024)),
  content_type: z.string().check(z.maxLength(255), z.overwrite((t) => t.trim().toLowerCase())),
  size_bytes: z.number().check(z.int()),
  sha256: z.optional(z.string().check(z.overwrite((h) => h.toLowerCase()))),
});
const CompleteBody = z.object({
  parts: z.optional(z.array(z.object({
    part_number: z.number().check(z.int(), z.minimum(1), z.maximum(10_000)),
    etag: z.string().check(z.minLength(1), z.maxLength(200)),
  })).check(z.maxLength(10_000))),
});

function attachmentId(c: ApiContext): string | undefined {
  const id = c.req.param("id");
  return isAttachmentId(id) ? id : undefined;
}

const noAttachment = () => errorResponse(fail("not_found", "No such attachment."));
const origin = (c: ApiContext) => new URL(c.req.url).origin;

export const attachmentRoutes = new Hono<ApiEnv>()
  .post("/presign", async (c) => {
    const body = await parseJsonBody(c, PresignBody);
    if (!body.ok) return errorResponse(body);
    const { channel_id, ...declared } = body.value;
    return send(c, await presign(c.env, origin(c), c.get("auth").userId, channel_id, declared), 201);
  })
  .get("/:id/upload", async (c) => {
    const id = attachmentId(c);
    if (!id) return noAttachment();
    return send(c, await uploadStatus(c.env, origin(c), c.get("auth").userId, id));
  })
  .post("/:id/complete", async (c) => {
    const id = attachmentId(c);
    if (!id) return noAttachment();
    // The body is optional: local and single uploads need no parts list. One that is there is
    // parsed like every other (UTF-8, well-formed text, then the schema).
    const empty = (await c.req.raw.clone().text()).trim() === "";
    const body = empty ? { ok: true as const, value: {} as { parts?: undefined } } : await parseJsonBody(c, CompleteBody);
    if (!body.ok) return errorResponse(body);
    return send(c, await completeUpload(c.env, c.get("auth").userId, id, body.value.parts));
  })
  .delete("/:id", async (c) => {
    const id = attachmentId(c);
    if (!id) return noAttachment();
    const r = await cancelUpload(c.env, c.get("auth").userId, id);
    return r.ok ? c.body(null, 204) : errorResponse(r);
  })
  .get("/:id", async (c) => {
    const id = attachmentId(c);
    if (!id) return noAttachment();
    const r = await downloadUrl(c.env, origin(c), c.get("auth").userId, id);
    if (!r.ok) return errorResponse(r);
    c.header("cache-control", "no-store");
    return send(c, r);
  });
