/**
 * When a server frame holds text that is not well-formed (bytes that are not UTF-8 in protobuf, a
 * lone surrogate in JSON), the codec hands back the frame with that text replaced by U+FFFD and
 * the paths of the bad fields. The SDK keeps the frame, so one bad message never costs the
 * others in its DELIVER, HISTORY_PAGE or RESUMED, and tells the app which messages were affected.
 */
import type { Frame, InvalidText } from "../protocol/codec.js";
import { EdgechatError } from "./errors.js";

type Item = { channel_id?: string | null; seq?: number | null };

/** One `invalid_text` error per affected message or channel of the frame. */
export function damageReports(result: InvalidText): EdgechatError[] {
  const byItem = new Map<string, { item: Item | undefined; what: string; fields: string[] }>();
  for (const path of result.paths) {
    const { key, item, what, field } = locate(result.repaired, path);
    const entry = byItem.get(key) ?? { item, what, fields: [] };
    entry.fields.push(field);
    byItem.set(key, entry);
  }
  if (byItem.size === 0) byItem.set("frame", { item: undefined, what: "a frame", fields: [] });
  return [...byItem.values()].map(({ item, what, fields }) => {
    const init: ConstructorParameters<typeof EdgechatError>[0] = {
      code: "invalid_text",
      message: `The server sent text that is not well-formed Unicode in ${what}${fields.length > 0 ? ` (${fields.join(", ")})` : ""}; it is shown with U+FFFD.`,
      requestId: result.requestId,
    };
    if (item?.channel_id) init.channelId = item.channel_id;
    return new EdgechatError(init);
  });
}

const LISTS: Record<string, (f: Frame) => Item[] | null | undefined> = {
  "deliver.messages": (f) => f.deliver?.messages,
  "history_page.messages": (f) => f.history_page?.messages,
  "resumed.channels": (f) => f.resumed?.channels,
};
const SINGLE: Record<string, (f: Frame) => Item | null | undefined> = {
  "message_update.message": (f) => f.message_update?.message,
  "channel_update.channel": (f) => f.channel_update?.channel,
};

function locate(frame: Frame, path: string): { key: string; item: Item | undefined; what: string; field: string } {
  for (const [prefix, list] of Object.entries(LISTS)) {
    const m = path.startsWith(`${prefix}.`) ? /^(\d+)(?:\.(.*))?$/.exec(path.slice(prefix.length + 1)) : null;
    if (!m) continue;
    const item = list(frame)?.[Number(m[1])];
    return { key: `${prefix}.${m[1]}`, item, what: describe(item, prefix.endsWith("channels")), field: m[2] ?? "" };
  }
  for (const [prefix, get] of Object.entries(SINGLE)) {
    if (path !== prefix && !path.startsWith(`${prefix}.`)) continue;
    const item = get(frame) ?? undefined;
    return { key: prefix, item, what: describe(item, prefix.endsWith("channel")), field: path.slice(prefix.length + 1) };
  }
  return { key: path, item: undefined, what: "a frame", field: path };
}

function describe(item: Item | undefined, isChannel: boolean): string {
  if (!item) return "a frame";
  if (isChannel) return `channel ${item.channel_id ?? "?"}`;
  return `message ${Number(item.seq ?? 0)} in channel ${item.channel_id ?? "?"}`;
}
