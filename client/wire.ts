/**
 * Conversions between protocol messages (decoded frames, REST JSON) and the SDK's plain types.
 * Everything from the network passes through here, so the rest of the SDK sees complete objects
 * with defaults filled in, whichever encoding or endpoint they came from.
 */
import { pb } from "../protocol/codec.js";
import type { edgechat } from "../protocol/generated/chat.js";
import { EdgechatError } from "./errors.js";
import type { PushProvider } from "../protocol/push.js";
import type {
  AttachmentBody, AuthSession, BulkAddResult, Channel, ChannelMember, Invite, InvitePreview, ChannelState, ChatMessage, Device, HelloInfo, SessionInfo,
  HistoryPage, MemberPage, MessageContent, MessageUpdate, PresenceEvent, ReadReceipt, SendAck, SendContent, TypingEvent, UpdateBody, User, SystemBody,
} from "./types.js";

type v1Props = {
  ChatMessage: edgechat.v1.ChatMessage.$Properties;
  SendAck: edgechat.v1.SendAck.$Properties;
  ChannelState: edgechat.v1.ChannelState.$Properties;
  HistoryPage: edgechat.v1.HistoryPage.$Properties;
  Read: edgechat.v1.Read.$Properties;
  Typing: edgechat.v1.Typing.$Properties;
  Presence: edgechat.v1.Presence.$Properties;
  MessageUpdate: edgechat.v1.MessageUpdate.$Properties;
  Hello: edgechat.v1.Hello.$Properties;
};
type Props<K extends keyof v1Props> = v1Props[K];

const str = (v: unknown): string => (typeof v === "string" ? v : "");
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : typeof v === "string" && v !== "" && Number.isFinite(Number(v)) ? Number(v) : 0);
const bool = (v: unknown): boolean => v === true;

/** Bytes from a binary frame (Uint8Array) or from JSON (base64, as proto3 JSON writes them). */
function bytesOf(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v !== "string" || v === "") return new Uint8Array();
  try {
    const bin = atob(v.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return new Uint8Array();
  }
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

export function toContent(c: edgechat.v1.MessageContent.$Properties | null | undefined): MessageContent {
  if (!c) return {};
  if (c.text) return { text: { text: str(c.text.text) } };
  if (c.attachment) {
    const a = c.attachment;
    const attachment: AttachmentBody = {
      attachment_id: str(a.attachment_id), content_type: str(a.content_type), size_bytes: num(a.size_bytes),
      file_name: str(a.file_name), sha256: str(a.sha256), thumbnail_url: str(a.thumbnail_url), caption: str(a.caption),
      width: num(a.width), height: num(a.height), duration_ms: num(a.duration_ms),
      thumbnail: bytesOf(a.thumbnail), thumbnail_type: str(a.thumbnail_type),
    };
    return { attachment };
  }
  if (c.system) {
    const s = c.system;
    const system: SystemBody = { event: str(s.event), actor_user_id: str(s.actor_user_id), target_user_ids: strings(s.target_user_ids), text: str(s.text) };
    if (s.retention_ms !== undefined && s.retention_ms !== null) system.retention_ms = num(s.retention_ms);
    return { system };
  }
  if (c.encrypted) {
    const e = c.encrypted;
    return { encrypted: { ciphertext: e.ciphertext instanceof Uint8Array ? e.ciphertext : new Uint8Array(), key_ref: str(e.key_ref), algorithm: str(e.algorithm) } };
  }
  if (c.update) {
    const u = c.update;
    const update: UpdateBody = { target_seq: num(u.target_seq), kind: str(u.kind) };
    if (u.target) update.target = toChatMessage(u.target);
    return { update };
  }
  return {};
}

export function toChatMessage(m: Props<"ChatMessage">): ChatMessage {
  return {
    channel_id: str(m.channel_id),
    server_msg_id: str(m.server_msg_id),
    hlc: str(m.hlc),
    seq: num(m.seq),
    client_msg_id: str(m.client_msg_id),
    sender_user_id: str(m.sender_user_id),
    sender_device_id: str(m.sender_device_id),
    server_ts: num(m.server_ts),
    content: toContent(m.content),
    reactions: (m.reactions ?? []).map((r) => ({ emoji: str(r.emoji), user_ids: strings(r.user_ids) })),
    edited_at: num(m.edited_at),
    deleted: bool(m.deleted),
    hidden: bool(m.hidden),
  };
}

export function toSendAck(a: Props<"SendAck">): SendAck {
  return {
    channel_id: str(a.channel_id),
    client_msg_id: str(a.client_msg_id),
    server_msg_id: str(a.server_msg_id),
    hlc: str(a.hlc),
    seq: num(a.seq),
    server_ts: num(a.server_ts),
    status: a.status === "duplicate" ? "duplicate" : "stored",
    ...(a.trace_id ? { trace_id: a.trace_id } : {}),
  };
}

export function toChannelState(c: Props<"ChannelState">): ChannelState {
  return {
    channel_id: str(c.channel_id),
    type: str(c.type),
    name: str(c.name),
    last_seq: num(c.last_seq),
    last_activity_hlc: str(c.last_activity_hlc),
    last_read_seq: num(c.last_read_seq),
    unread_count: num(c.unread_count),
    muted: bool(c.muted),
    member_count: num(c.member_count),
    left: bool(c.left),
    member_user_ids: strings(c.member_user_ids),
    last_activity_at: num(c.last_activity_at),
    members: (c.members ?? []).map((m) => ({ user_id: str(m.user_id), username: str(m.username), display_name: str(m.display_name) })),
  };
}

export function toHistoryPage(h: Props<"HistoryPage">): HistoryPage {
  return {
    channel_id: str(h.channel_id),
    messages: (h.messages ?? []).map(toChatMessage),
    next_cursor: num(h.next_cursor),
    has_more: bool(h.has_more),
    last_seq: num(h.last_seq),
    min_seq: num(h.min_seq),
    updates: [],
  };
}

/**
 * The change a logged update carries, as apps receive it; undefined for an ordinary message or an
 * update without its target (the target was never stored).
 */
export function updateOf(m: ChatMessage): MessageUpdate | undefined {
  const u = m.content.update;
  if (!u?.target) return undefined;
  return { message: { ...u.target, channel_id: u.target.channel_id || m.channel_id }, kind: u.kind };
}

/** A page as apps receive it: changes moved out of `messages` into `updates`. */
export function withUpdatesApart(page: HistoryPage): HistoryPage {
  const messages: ChatMessage[] = [];
  const updates: MessageUpdate[] = [];
  for (const m of page.messages) {
    if (!m.content.update) { messages.push(m); continue; }
    const u = updateOf(m);
    if (u) updates.push(u);
  }
  return { ...page, messages, updates };
}

export function toReadReceipt(r: Props<"Read">): ReadReceipt {
  return { channel_id: str(r.channel_id), user_id: str(r.user_id), up_to_seq: num(r.up_to_seq), unread_count: num(r.unread_count) };
}

export function toTyping(t: Props<"Typing">): TypingEvent {
  return { channel_id: str(t.channel_id), user_id: str(t.user_id), device_id: str(t.device_id), is_typing: bool(t.is_typing) };
}

export function toPresence(p: Props<"Presence">): PresenceEvent {
  return { user_id: str(p.user_id), status: str(p.status), last_seen: num(p.last_seen) };
}

export function toMessageUpdate(u: Props<"MessageUpdate">): MessageUpdate {
  return { message: toChatMessage(u.message ?? {}), kind: str(u.kind) };
}

export function toHello(h: Props<"Hello">): HelloInfo {
  return {
    user_id: str(h.user_id), username: str(h.username), device_id: str(h.device_id),
    max_frame_bytes: num(h.max_frame_bytes), max_content_bytes: num(h.max_content_bytes),
    max_unacked_frames: num(h.max_unacked_frames), server_ts: num(h.server_ts), protocol: str(h.protocol),
  };
}

/** The frame payload for outgoing content. */
export function contentInit(content: SendContent): edgechat.v1.MessageContent.$Properties {
  if ("text" in content) return { text: { text: content.text.text } };
  if ("attachment" in content) return { attachment: { ...content.attachment } };
  return { encrypted: { ...content.encrypted } };
}

/** Outgoing content as it will be stored: what the SEND_ACK-built message carries. */
export function sentContent(content: SendContent): MessageContent {
  return toContent(contentInit(content));
}

// ---- REST JSON -------------------------------------------------------------------------------

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function badResponse(what: string): EdgechatError {
  return new EdgechatError({ code: "bad_response", message: `The server's answer has no ${what}.` });
}

/** Parses proto-shaped JSON (REST bodies) with the generated code, so both paths agree on types. */
function fromJson<K extends "ChatMessage" | "ChannelState" | "HistoryPage" | "Presence">(type: K, json: unknown): Props<K> {
  if (!isObject(json)) throw badResponse(type);
  try {
    return pb[type].fromObject(json) as Props<K>;
  } catch (err) {
    throw new EdgechatError({ code: "bad_response", message: `Unreadable ${type}: ${err instanceof Error ? err.message : String(err)}` });
  }
}

export function chatMessageFromJson(json: unknown): ChatMessage {
  return toChatMessage(fromJson("ChatMessage", json));
}

export function channelStateFromJson(json: unknown): ChannelState {
  return toChannelState(fromJson("ChannelState", json));
}

export function presenceFromJson(json: unknown): PresenceEvent {
  return toPresence(fromJson("Presence", json));
}

export function historyPageFromJson(json: unknown): HistoryPage {
  return toHistoryPage(fromJson("HistoryPage", json));
}

export function userFromJson(json: unknown): User {
  if (!isObject(json) || typeof json.user_id !== "string") throw badResponse("user");
  const user: User = { user_id: json.user_id, username: str(json.username), display_name: str(json.display_name) };
  if (typeof json.avatar_url === "string" && json.avatar_url.startsWith("/v1/")) user.avatar_url = json.avatar_url;
  return user;
}

export function sessionFromJson(json: unknown): AuthSession {
  if (!isObject(json) || typeof json.access_token !== "string") throw badResponse("access_token");
  return {
    user_id: str(json.user_id), username: str(json.username), display_name: str(json.display_name),
    access_token: json.access_token, refresh_token: str(json.refresh_token),
    expires_in: num(json.expires_in), session_id: str(json.session_id),
  };
}

export function channelFromJson(json: unknown): Channel {
  const c = isObject(json) && isObject(json.channel) ? json.channel : json;
  if (!isObject(c) || typeof c.channel_id !== "string") throw badResponse("channel");
  const channel: Channel = { channel_id: c.channel_id, type: str(c.type), name: str(c.name) };
  if (c.member_count !== undefined) channel.member_count = num(c.member_count);
  if (c.last_seq !== undefined) channel.last_seq = num(c.last_seq);
  // member_list (GET /v1/channels/{id}) has roles and read cursors; members is the summary.
  const members = Array.isArray(c.member_list) ? c.member_list : Array.isArray(c.members) ? c.members : undefined;
  if (members) channel.members = members.filter(isObject).map(memberFromJson);
  if (typeof c.members_next_cursor === "string") channel.members_next_cursor = c.members_next_cursor;
  if (typeof c.my_role === "string") channel.my_role = c.my_role;
  if (typeof c.description === "string") channel.description = c.description;
  if (c.retention_ms !== undefined) channel.retention_ms = num(c.retention_ms);
  if (c.retention_setting !== undefined) channel.retention_setting = c.retention_setting === null ? null : num(c.retention_setting);
  if (c.min_seq !== undefined) channel.min_seq = num(c.min_seq);
  return channel;
}

export function memberFromJson(m: JsonObject): ChannelMember {
  const member: ChannelMember = { user_id: str(m.user_id), username: str(m.username), display_name: str(m.display_name) };
  if (typeof m.role === "string") member.role = m.role;
  if (m.joined_at !== undefined) member.joined_at = num(m.joined_at);
  if (m.last_read_seq !== undefined) member.last_read_seq = num(m.last_read_seq);
  return member;
}

/** GET /v1/channels/{id}/members. */
export function memberPageFromJson(json: unknown): MemberPage {
  if (!isObject(json) || !Array.isArray(json.members)) throw badResponse("members");
  return { members: json.members.filter(isObject).map(memberFromJson), next_cursor: typeof json.next_cursor === "string" ? json.next_cursor : "" };
}

/** GET /v1/users?ids=. */
export function usersFromJson(json: unknown): User[] {
  if (!isObject(json) || !Array.isArray(json.users)) throw badResponse("users");
  return json.users.map(userFromJson);
}

export function deviceFromJson(json: unknown): Device {
  const d = isObject(json) && isObject(json.device) ? json.device : json;
  if (!isObject(d) || typeof d.device_id !== "string") throw badResponse("device");
  const device: Device = {
    device_id: d.device_id, name: str(d.name), platform: str(d.platform),
    created_at: num(d.created_at), last_seen_at: num(d.last_seen_at), connected: bool(d.connected),
    push: isObject(d.push) && typeof d.push.type === "string" ? { type: d.push.type as PushProvider, failures: num(d.push.failures) } : null,
  };
  if (typeof d.session_id === "string" && d.session_id !== "") device.session_id = d.session_id;
  return device;
}

export function sessionInfoFromJson(json: unknown): SessionInfo {
  if (!isObject(json) || typeof json.session_id !== "string") throw badResponse("session");
  const session: SessionInfo = {
    session_id: json.session_id, created_at: num(json.created_at), last_used_at: num(json.last_used_at),
    expires_at: num(json.expires_at), current: bool(json.current),
  };
  if (typeof json.device_id === "string" && json.device_id !== "") session.device_id = json.device_id;
  return session;
}

/** POST /v1/channels/{id}/members/bulk. */
export function bulkAddFromJson(json: unknown): BulkAddResult {
  if (!isObject(json) || json.added === undefined) throw badResponse("bulk add");
  return {
    added: num(json.added), already: num(json.already), unknown: num(json.unknown), refused: num(json.refused),
    member_count: num(json.member_count), unknown_user_ids: strings(json.unknown_user_ids),
  };
}

export function inviteFromJson(json: unknown): Invite {
  if (!isObject(json) || typeof json.code !== "string") throw badResponse("invite");
  return {
    code: json.code, url: str(json.url), created_by: str(json.created_by), created_at: num(json.created_at),
    expires_at: num(json.expires_at), max_uses: num(json.max_uses), uses: num(json.uses),
  };
}

export function invitePreviewFromJson(json: unknown): InvitePreview {
  if (!isObject(json) || !isObject(json.channel)) throw badResponse("invite preview");
  const c = json.channel;
  return { channel: { channel_id: str(c.channel_id), name: str(c.name), type: str(c.type), member_count: num(c.member_count) }, member: json.member === true };
}
