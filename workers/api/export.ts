/**
 * GET /v1/me/export: everything edgechat holds about the signed-in user, as one JSON document
 * streamed page by page (a user with years of history never makes the Worker hold it all):
 *
 *   { "format": "edgechat-export/1", "exported_at", "profile", "settings", "devices",
 *     "channels": [ { "channel_id", "type", "name", "member_count", "left",
 *                     "messages": [ their own messages, oldest first ] }, ... ] }
 *
 * Messages are the user's own (what others wrote is theirs to export), without tombstones or
 * system notices ("X created the group") or change records (edits and reactions are already in
 * the messages they changed); an
 * attachment's metadata travels in its message's content, and `attachment_url` names the route
 * that hands out a download link while the export is fresh.
 */
import type { ChatMessageData } from "../../durable-objects/channel/types.js";
import { log } from "../../shared/log.js";
import { channelStub, userStub } from "../../shared/routing.js";
import type { MemberProfile } from "../../protocol/types.js";

export const EXPORT_FORMAT = "edgechat-export/1";
const PAGE = 200;

/** One exported message: the stored one, plus where to fetch its attachment, if it has one. */
function exported(m: ChatMessageData): Record<string, unknown> {
  const attachment = (m.content as { attachment?: { attachment_id?: string } }).attachment;
  const { hidden: _hidden, ...rest } = m as ChatMessageData & { hidden?: boolean };
  return attachment?.attachment_id ? { ...rest, attachment_url: `/v1/attachments/${attachment.attachment_id}` } : rest;
}

export function exportResponse(env: Env, userId: string, profile: MemberProfile, waitUntil: (p: Promise<unknown>) => void, traceId?: string): Response {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const encoder = new TextEncoder();
  const write = (text: string) => writer.write(encoder.encode(text));

  const produce = async () => {
    const user = userStub(env, userId);
    const [settings, devices, channels] = await Promise.all([user.getSettings(), user.listDevices(), user.listChannels()]);
    await write(`{"format":${JSON.stringify(EXPORT_FORMAT)},"exported_at":${Date.now()},"profile":${JSON.stringify(profile)},`);
    await write(`"settings":${JSON.stringify(settings)},"devices":${JSON.stringify(devices)},"channels":[`);
    for (const [i, ch] of channels.entries()) {
      const head = { channel_id: ch.channel_id, type: ch.type, name: ch.name, member_count: ch.member_count, left: ch.left };
      await write(`${i > 0 ? "," : ""}${JSON.stringify(head).slice(0, -1)},"messages":[`);
      let first = true;
      for (let after = 0; ;) {
        const page = await channelStub(env, ch.channel_id).history(userId, { after, limit: PAGE });
        if (!page.ok) break; // no longer a member: what they wrote there is no longer theirs to read
        for (const m of page.messages) {
          if (m.sender_user_id !== userId || m.deleted || "system" in m.content || "update" in m.content) continue;
          await write(`${first ? "" : ","}${JSON.stringify(exported(m))}`);
          first = false;
        }
        if (!page.has_more || page.messages.length === 0) break;
        after = page.messages.at(-1)!.seq;
      }
      await write("]}");
    }
    await write("]}");
    await writer.close();
  };
  waitUntil(produce().catch(async (err) => {
    log("error", "export.failed", { object: "worker", user_id: userId, trace_id: traceId }, err);
    await writer.abort(err).catch(() => undefined);
  }));

  return new Response(readable, {
    headers: {
      "Content-Type": "application/json; charset=utf-8",
      "Content-Disposition": `attachment; filename="edgechat-export-${profile.username}.json"`,
      "Cache-Control": "no-store",
    },
  });
}
