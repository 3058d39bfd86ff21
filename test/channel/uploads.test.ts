/**
 * The uploads' RPC calls on their own (durable-objects/channel/attachments.ts: declare, withParts,
 * addPart, finish, fetchableBy) over a channel's real tables, once the ChannelObject has checked the
 * caller. test/attachments/attachments.test.ts runs uploads through the Worker and R2.
 */
import { describe, expect, it } from "vitest";
import { Attachments, type UploadRow } from "../../durable-objects/channel/attachments.js";
import { newAttachmentId } from "../../shared/attachments/ids.js";
import { newId } from "../../shared/ids.js";
import { inFreshChannel } from "../helpers/object-sql.js";

function setup(sql: SqlStorage) {
  let alarm: number | null = null;
  const deleted: UploadRow[] = [];
  const attachments = new Attachments(sql, {
    wakeAt: (at: number) => void (alarm = alarm === null ? at : Math.min(alarm, at)),
    waitUntil: () => {},
    orphanTtlMs: 60_000,
    deleteBlob: async (row) => void deleted.push(row),
  });
  return { attachments, alarm: () => alarm };
}

describe("uploads", () => {
  it("declares an upload of this channel only, arms the sweep, takes parts while pending and completes once", async () => {
    await inFreshChannel(async (sql) => {
      const { attachments, alarm } = setup(sql);
      const channelId = newId("c");
      const upload = { attachment_id: newAttachmentId(channelId), file_name: "a.png", content_type: "image/png", size_bytes: 10, part_size: 5 };
      expect(await attachments.declare(newId("c"), "u_a", upload, 1_000)).toMatchObject({ ok: false, code: "invalid_argument" });
      expect(await attachments.declare(channelId, "u_a", upload, 1_000)).toMatchObject({ ok: true, upload: { attachment_id: upload.attachment_id } });
      expect(alarm()).not.toBeNull();
      expect(attachments.withParts("u_b", upload.attachment_id)).toMatchObject({ ok: false, code: "forbidden" });
      expect(attachments.addPart(upload.attachment_id, { part_number: 1, etag: "e1", size_bytes: 5 })).toEqual({ ok: true });
      expect(attachments.withParts(undefined, upload.attachment_id)).toMatchObject({ ok: true, parts: [{ part_number: 1, etag: "e1" }] });
      expect(attachments.finish(channelId, upload.attachment_id, "ab".repeat(32), 2_000)).toMatchObject({ ok: true, upload: { sha256: "ab".repeat(32) } });
      expect(attachments.finish(channelId, upload.attachment_id, "cd".repeat(32), 3_000)).toMatchObject({ ok: true, upload: { sha256: "ab".repeat(32) } });
      expect(attachments.addPart(upload.attachment_id, { part_number: 2, etag: "e2", size_bytes: 5 })).toMatchObject({ ok: false, code: "conflict" });
      expect(attachments.withParts(undefined, newAttachmentId(channelId))).toMatchObject({ ok: false, code: "not_found" });
    });
  });

  it("lets the uploader fetch a complete upload, members once a message carries it, and refuses others", async () => {
    await inFreshChannel(async (sql) => {
      const { attachments } = setup(sql);
      const channelId = newId("c");
      const id = newAttachmentId(channelId);
      await attachments.declare(channelId, "u_a", { attachment_id: id, file_name: "a.txt", content_type: "text/plain", size_bytes: 3, part_size: 3 }, 1_000);
      expect(attachments.fetchableBy(channelId, "u_a", true, id)).toMatchObject({ ok: false, code: "not_found" }); // not complete yet
      attachments.finish(channelId, id, "ab".repeat(32), 2_000);
      expect(attachments.fetchableBy(channelId, "u_a", true, id)).toMatchObject({ ok: true });
      expect(attachments.fetchableBy(channelId, "u_b", true, id)).toMatchObject({ ok: false, code: "not_found" }); // no message carries it
      attachments.attach(id, 5);
      expect(attachments.fetchableBy(channelId, "u_b", true, id)).toMatchObject({ ok: true, upload: { attachment_id: id } });
      expect(attachments.fetchableBy(channelId, "u_c", false, id)).toMatchObject({ ok: false, code: "forbidden" });
    });
  });
});
