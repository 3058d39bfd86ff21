/**
 * UserObject: one per user. Holds the user's device sockets (WebSocket Hibernation API, tag =
 * device_id), devices, refresh sessions and channel list. Channels hand it DELIVER batches; it
 * writes them to every device socket, the sender's other devices included. On RESUME it pulls
 * each channel's gap for the reconnecting device.
 */
import { DurableObject } from "cloudflare:workers";
import { decodeFrame, encodeFrame, pb, type Encoding, type Frame, type FrameInit } from "../../protocol/codec.js";
import { LIMITS, PING, PONG } from "../../protocol/limits.js";
import { chunkMessages } from "../../protocol/frame-budget.js";
import { fail, failureFromException, type Failure, type Result } from "../../shared/errors.js";
import { CLOSE, errorFrame, refuseWebSocket, sendFrame } from "../../shared/frames.js";
import { isChannelId } from "../../shared/ids.js";
import { channelStub } from "../../shared/routing.js";
import { presenceTimingsFromEnv } from "../presence/settings.js";
import { hashSecret, newRefreshSecret, timingSafeEqual } from "../../shared/secrets.js";
import { migrate } from "../migrate.js";
import type { ChannelObject } from "../channel/ChannelObject.js";
import type {
  AppendInput, ChannelSignal, ChatMessageData, ContentInit, DeliveryBatch, HistoryPageData, HistoryQuery, MemberProfile, MessageChange, SendAck,
} from "../channel/types.js";
import type { Device, PresenceState } from "../../protocol/types.js";
import { channelState, parseMembers, type ChannelRow, type ChannelState } from "./channel-list.js";
import { aggregateStatus, MAX_WATCHED_CONTACTS, PresenceLink, type DeviceStatus } from "./presence-link.js";
import { USER_MIGRATIONS } from "./schema.js";

export type Profile = {
  user_id: string;
  username: string;
  display_name: string;
  jurisdiction: string;
};

export type { Device };

/** Kept on each socket across hibernation; small (ids only) per the platform's 2 KiB limit. */
interface SocketInfo {
  deviceId: string;
  encoding: Encoding;
  /** What the device last said with PRESENCE_HEARTBEAT; online until it says otherwise. */
  status: DeviceStatus;
  /** When the device last sent a frame (kept to within ACTIVITY_RESOLUTION_MS); pings are the runtime's. */
  activeAt: number;
}

/** One SEND on its way to its channel. */
interface SendJob {
  ws: WebSocket;
  encoding: Encoding;
  requestId: number;
  channelId: string;
  input: AppendInput;
  done: () => void;
}

/** Restores a connection's SEND order (SEND.send_seq) when frames are handed over out of order. */
interface SendOrder {
  next: number;
  held: Map<number, SendJob>;
}

/** A device between RESUME and RESUMED: live deliveries wait so the gap goes out first, once. */
interface ResumeState {
  held: ChatMessageData[];
}

/** Per-user privacy settings (seed Q10: read receipts are the user's choice). */
export type UserSettings = {
  /** Share my read cursor with the other members as read receipts. */
  read_receipts: boolean;
  /** Show others when I am online and when I was last seen; off, I always appear offline. */
  share_presence: boolean;
};

const DEFAULT_SETTINGS: UserSettings = { read_receipts: true, share_presence: true };

function pickSettings(input: unknown): Partial<UserSettings> {
  const out: Partial<UserSettings> = {};
  if (typeof input !== "object" || input === null) return out;
  const v = input as Record<string, unknown>;
  if (typeof v.read_receipts === "boolean") out.read_receipts = v.read_receipts;
  if (typeof v.share_presence === "boolean") out.share_presence = v.share_presence;
  return out;
}

function parseSettings(json: string | undefined): UserSettings {
  try {
    return { ...DEFAULT_SETTINGS, ...pickSettings(JSON.parse(json ?? "{}")) };
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

const SESSION_TTL_MS = 30 * 24 * 3600 * 1000;
/** How long a client over its flow-control window is asked to pause. */
const SLOWDOWN_MS = 250;
const RESUME_CONCURRENCY = 4;
/** A socket's last-activity time is written to its attachment at most this often. */
const ACTIVITY_RESOLUTION_MS = 15_000;
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

export class UserObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private profile: Profile | undefined;
  private readonly resuming = new Map<WebSocket, ResumeState>();
  /** SENDs each socket has in flight to channels: the flow-control window (seed §4.1). */
  private readonly inflight = new Map<WebSocket, number>();
  private readonly sendOrder = new Map<WebSocket, SendOrder>();
  /** Per channel: SENDs waiting for the batch in flight to that channel to come back. */
  private readonly appendQueues = new Map<string, SendJob[]>();
  private readonly stubs = new Map<string, DurableObjectStub<ChannelObject>>();
  /** Delete-for-me marks by channel, loaded on first use; empty while the user has none. */
  private readonly hidden = new Map<string, Set<number>>();
  private hasHidden = false;
  private presenceLink: PresenceLink | undefined;
  private readonly presenceTtlMs: number;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.presenceTtlMs = presenceTimingsFromEnv(env).ttlMs;
    // Answered by the runtime without waking the object; a text pair because auto-responses
    // only match text frames, even on connections whose data frames are binary.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
    void ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql, USER_MIGRATIONS);
      this.profile = this.sql.exec<Profile>("SELECT user_id, username, display_name, jurisdiction FROM profile WHERE id = 1").toArray()[0];
      this.hasHidden = this.sql.exec("SELECT 1 FROM hidden_messages LIMIT 1").toArray().length > 0;
    });
  }

  /* ------------------------------------ RPC: account ------------------------------------ */

  /** Called once at registration; later calls update the display name only. */
  init(profile: Profile): Profile {
    this.sql.exec(
      `INSERT INTO profile (id, user_id, username, display_name, jurisdiction, created_at) VALUES (1, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name`,
      profile.user_id, profile.username, profile.display_name, profile.jurisdiction, Date.now(),
    );
    this.profile = this.sql.exec<Profile>("SELECT user_id, username, display_name, jurisdiction FROM profile WHERE id = 1").one();
    return this.profile;
  }

  getProfile(): Profile | undefined {
    return this.profile;
  }

  /** A new refresh session; the caller gets the secret once, the object keeps its hash. */
  async createSession(): Promise<{ sessionId: string; secret: string }> {
    const sessionId = crypto.randomUUID();
    const secret = newRefreshSecret();
    const hash = await hashSecret(secret);
    const now = Date.now();
    this.sql.exec(
      "INSERT INTO sessions (session_id, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?)",
      sessionId, hash, now, now + SESSION_TTL_MS,
    );
    return { sessionId, secret };
  }

  /**
   * Rotates a refresh session's secret. Presenting the previous (already rotated) secret means
   * the token leaked: the whole session is revoked.
   */
  async refreshSession(sessionId: string, secret: string): Promise<Result<{ sessionId: string; secret: string; profile: Profile }>> {
    const presented = await hashSecret(secret);
    const row = this.sql.exec<{ secret_hash: string; previous_hash: string | null; expires_at: number; revoked_at: number | null }>(
      "SELECT secret_hash, previous_hash, expires_at, revoked_at FROM sessions WHERE session_id = ?", sessionId,
    ).toArray()[0];
    const bad = fail("unauthorized", "The refresh token is not valid; log in again.");
    if (!row || row.revoked_at !== null || row.expires_at < Date.now() || !this.profile) return bad;
    if (row.previous_hash && sameText(presented, row.previous_hash)) {
      this.sql.exec("UPDATE sessions SET revoked_at = ? WHERE session_id = ?", Date.now(), sessionId);
      return fail("unauthorized", "This refresh token was already used; the session is revoked. Log in again.");
    }
    if (!sameText(presented, row.secret_hash)) return bad;
    const next = newRefreshSecret();
    const nextHash = await hashSecret(next);
    this.sql.exec(
      "UPDATE sessions SET previous_hash = secret_hash, secret_hash = ?, expires_at = ? WHERE session_id = ?",
      nextHash, Date.now() + SESSION_TTL_MS, sessionId,
    );
    return { ok: true, sessionId, secret: next, profile: this.profile };
  }

  async revokeSession(sessionId: string, secret: string): Promise<boolean> {
    const hash = await hashSecret(secret);
    const n = this.sql.exec(
      "UPDATE sessions SET revoked_at = ? WHERE session_id = ? AND secret_hash = ? AND revoked_at IS NULL", Date.now(), sessionId, hash,
    ).rowsWritten;
    return n > 0;
  }

  /* ------------------------------------ RPC: devices ------------------------------------ */

  listDevices(): Device[] {
    const connected = new Set(this.openSockets().map((ws) => this.info(ws).deviceId));
    return this.sql.exec<Omit<Device, "connected">>(
      "SELECT device_id, name, platform, created_at, last_seen_at FROM devices ORDER BY created_at",
    ).toArray().map((d) => ({ ...d, connected: connected.has(d.device_id) }));
  }

  /** Registers (or renames) a device; a new 11th device is refused. */
  registerDevice(deviceId: string, name = "", platform = ""): Result<{ device: Device }> {
    if (!DEVICE_ID.test(deviceId)) return fail("invalid_argument", "device_id must be 1-64 characters of A-Z a-z 0-9 _ -.");
    const known = this.sql.exec("SELECT 1 FROM devices WHERE device_id = ?", deviceId).toArray().length > 0;
    if (!known) {
      const count = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM devices").one().n;
      if (count >= LIMITS.maxDevicesPerUser) {
        return fail("too_many_devices", `A user can have at most ${LIMITS.maxDevicesPerUser} devices; remove one with DELETE /v1/devices/{device_id}.`);
      }
    }
    const now = Date.now();
    this.sql.exec(
      `INSERT INTO devices (device_id, name, platform, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (device_id) DO UPDATE SET last_seen_at = excluded.last_seen_at,
         name = CASE WHEN excluded.name != '' THEN excluded.name ELSE devices.name END,
         platform = CASE WHEN excluded.platform != '' THEN excluded.platform ELSE devices.platform END`,
      deviceId, name.slice(0, 100), platform.slice(0, 40), now, now,
    );
    const device = this.listDevices().find((d) => d.device_id === deviceId)!;
    return { ok: true, device };
  }

  /** Forgets a device and closes its socket. */
  removeDevice(deviceId: string): boolean {
    const n = this.sql.exec("DELETE FROM devices WHERE device_id = ?", deviceId).rowsWritten;
    this.sql.exec("DELETE FROM device_cursors WHERE device_id = ?", deviceId);
    for (const ws of this.ctx.getWebSockets(deviceId)) closeQuietly(ws, 4000, "device_removed");
    return n > 0;
  }

  /* ------------------------------------ RPC: channels ------------------------------------ */

  listChannels(): ChannelState[] {
    return this.sql.exec<ChannelRow>("SELECT * FROM channels WHERE left = 0 ORDER BY last_activity_at DESC")
      .toArray().map((r) => channelState(r, this.profile?.user_id));
  }

  /**
   * One fan-out batch from a channel: update the channel list, then write DELIVER to every open
   * device socket except the one that sent each message (it has the SEND_ACK). Synchronous, so
   * the list update and the sends happen in one turn.
   */
  deliver(batch: DeliveryBatch): void {
    const me = this.profile?.user_id;
    const c = batch.channel;
    const row = this.channelRow(c.channel_id);
    let lastSeq = row?.last_seq ?? 0;
    let lastRead = row?.last_read_seq ?? 0;
    let unread = row?.unread_count ?? 0;
    let left = row?.left ?? 0;
    let lastHlc = row?.last_activity_hlc ?? "";
    let lastAt = row?.last_activity_at ?? 0;
    for (const m of batch.messages) {
      const sys = m.content.system;
      if (sys && me && sys.target_user_ids?.includes(me)) {
        left = sys.event === "member_removed" || sys.event === "member_left" ? 1 : 0;
      }
      if (m.seq <= lastSeq) continue; // a retried batch: counted already
      lastSeq = m.seq;
      const update = m.content.update;
      if (update) {
        // A change to an earlier message is not news; an unread message deleted for everyone is no longer unread.
        const target = update.target;
        if (update.kind === "deleted" && target && target.sender_user_id !== me && Number(update.target_seq) > lastRead) unread = Math.max(0, unread - 1);
        continue;
      }
      lastHlc = m.hlc;
      lastAt = m.server_ts;
      if (m.sender_user_id === me) {
        // Sending from any device means the user has seen the conversation up to here.
        lastRead = Math.max(lastRead, m.seq);
        unread = 0;
      } else if (!sys && m.seq > lastRead) {
        unread++;
      }
    }
    const isNew = !row;
    const membershipChanged = isNew || left !== row.left || c.member_count !== row.member_count || c.name !== row.name;
    this.sql.exec(
      `INSERT INTO channels (channel_id, type, name, member_count, members, last_seq, last_activity_hlc, last_activity_at, last_read_seq, unread_count, left)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (channel_id) DO UPDATE SET type = excluded.type, name = excluded.name, member_count = excluded.member_count,
         members = excluded.members, last_seq = excluded.last_seq, last_activity_hlc = excluded.last_activity_hlc,
         last_activity_at = excluded.last_activity_at, last_read_seq = excluded.last_read_seq,
         unread_count = excluded.unread_count, left = excluded.left`,
      c.channel_id, c.type, c.name, c.member_count, JSON.stringify(c.members), lastSeq, lastHlc, lastAt, lastRead, unread, left,
    );
    if (membershipChanged) {
      this.broadcastChannelUpdate(c.channel_id);
      const sockets = this.openSockets();
      if (sockets.length > 0 && left === 0) this.ctx.waitUntil(this.watchAndSend(c.members.map((m) => m.user_id).filter((id) => id !== me), sockets));
    }
    this.sendToDevices(batch.messages);
  }

  /** READ from REST or a socket: move the cursor in the channel, mirror it here, tell every device. */
  async markRead(channelId: string, upToSeq: number): Promise<Result<{ last_read_seq: number; unread_count: number }>> {
    const me = this.profile?.user_id;
    if (!me) return fail("not_found", "Unknown user.");
    const result = await this.channel(channelId).markRead(me, upToSeq, this.getSettings().read_receipts);
    if (!result.ok) return result;
    this.sql.exec("UPDATE channels SET last_read_seq = max(last_read_seq, ?), unread_count = ? WHERE channel_id = ?",
      result.last_read_seq, result.unread_count, channelId);
    const frame: FrameInit = {
      type: pb.FrameType.READ,
      read: { channel_id: channelId, up_to_seq: result.last_read_seq, user_id: me, unread_count: result.unread_count },
    };
    this.broadcast(frame);
    return { ok: true, last_read_seq: result.last_read_seq, unread_count: result.unread_count };
  }

  /* ------------------------------------ RPC: message changes ------------------------------------ */

  /** A page of a channel's history as this user sees it (delete-for-me applied). */
  async history(channelId: string, query: HistoryQuery): Promise<Result<HistoryPageData>> {
    const me = this.profile?.user_id;
    if (!me) return fail("not_found", "Unknown user.");
    const page = await this.channel(channelId).history(me, query);
    if (!page.ok) return page;
    return { ...page, messages: this.masked(page.messages) };
  }

  react(channelId: string, deviceId: string, seq: number, emoji: string, op: "add" | "remove"): Promise<Result<MessageChange>> {
    return this.change(channelId, (me, channel) => channel.react(me, deviceId, seq, emoji, op));
  }

  edit(channelId: string, deviceId: string, seq: number, content: ContentInit): Promise<Result<MessageChange>> {
    return this.change(channelId, (me, channel) => channel.edit(me, deviceId, seq, content));
  }

  /**
   * Deletes a message for everyone (the channel decides who may), or for this user only: then
   * it is hidden on every one of the user's devices, now and whenever they fetch it again.
   */
  async deleteMessage(channelId: string, deviceId: string, seq: number, forEveryone: boolean): Promise<Result<MessageChange>> {
    if (forEveryone) return this.change(channelId, (me, channel) => channel.deleteForEveryone(me, deviceId, seq));
    const row = this.channelRow(channelId);
    if (!row || row.left) return fail("not_found", "No such channel in your channel list.");
    if (!Number.isSafeInteger(seq) || seq < 1 || seq > row.last_seq) return fail("not_found", "No message with that seq in this channel.");
    const changed = this.sql.exec(
      "INSERT INTO hidden_messages (channel_id, seq, hidden_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", channelId, seq, Date.now(),
    ).rowsWritten > 0;
    this.hiddenIn(channelId).add(seq);
    this.hasHidden = true;
    const message = hiddenMessage(channelId, seq);
    if (changed) this.broadcast({ type: pb.FrameType.MESSAGE_UPDATE, message_update: { message, kind: "hidden" } });
    return { ok: true, message, kind: "hidden", changed };
  }

  private async change(channelId: string, run: (me: string, channel: DurableObjectStub<ChannelObject>) => Promise<Result<MessageChange>>): Promise<Result<MessageChange>> {
    const me = this.profile?.user_id;
    if (!me) return fail("not_found", "Unknown user.");
    const result = await run(me, this.channel(channelId));
    if (!result.ok) return result;
    return { ...result, message: this.masked([result.message])[0]! };
  }

  /** A typing indicator or read receipt from another member: straight to every device. */
  signal(event: ChannelSignal): void {
    const frame: FrameInit = event.kind === "typing"
      ? { type: pb.FrameType.TYPING, typing: { channel_id: event.channel_id, user_id: event.user_id, device_id: event.device_id, is_typing: event.is_typing } }
      : { type: pb.FrameType.READ, read: { channel_id: event.channel_id, user_id: event.user_id, up_to_seq: event.up_to_seq } };
    this.broadcast(frame);
  }

  /** A watched user's presence changed (from their PresenceObject shard): to every device. */
  presence(state: PresenceState): void {
    this.broadcast({ type: pb.FrameType.PRESENCE, presence: state });
  }

  /* ------------------------------------ RPC: settings ------------------------------------ */

  getSettings(): UserSettings {
    const row = this.sql.exec<{ settings: string }>("SELECT settings FROM profile WHERE id = 1").toArray()[0];
    return parseSettings(row?.settings);
  }

  /** Merges known settings; unknown keys are ignored so old and new clients can coexist. */
  updateSettings(patch: Partial<UserSettings>): UserSettings {
    const next = { ...this.getSettings(), ...pickSettings(patch) };
    this.sql.exec("UPDATE profile SET settings = ? WHERE id = 1", JSON.stringify(next));
    this.presenceChanged();
    return next;
  }

  /* ------------------------------------ presence ------------------------------------ */

  /**
   * While any device is connected: closes sockets that went silent (their device is gone without
   * a goodbye), then keeps the user's presence report alive (the shard's TTL).
   */
  override async alarm(): Promise<void> {
    if (this.closeIdleSockets() > 0) this.presenceChanged();
    if (this.openSockets().length === 0) return;
    const link = this.shardLink();
    if (link) {
      await link.report(this.presenceStatus(), true);
      await link.watch(this.contacts()); // extends the subscriptions; the states are known already
    }
    await this.ctx.storage.setAlarm(Date.now() + this.keepAliveMs());
  }

  /** Sockets with no frame and no ping for LIMITS.idleTimeoutMs; returns how many were closed. */
  private closeIdleSockets(): number {
    const now = Date.now();
    let closed = 0;
    for (const ws of this.openSockets()) {
      const pinged = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
      if (now - Math.max(this.info(ws).activeAt, pinged) <= LIMITS.idleTimeoutMs) continue;
      closeQuietly(ws, CLOSE.idle, `no frame or ping for ${LIMITS.idleTimeoutMs / 1000} s`);
      closed++;
    }
    return closed;
  }

  private keepAliveMs(): number {
    return Math.max(1000, Math.floor(this.presenceTtlMs / 3));
  }

  private shardLink(): PresenceLink | undefined {
    if (!this.presenceLink && this.profile) this.presenceLink = new PresenceLink(this.env, this.profile.user_id);
    return this.presenceLink;
  }

  private presenceStatus(except?: WebSocket) {
    const devices = this.openSockets().filter((ws) => ws !== except).map((ws) => this.info(ws).status);
    return aggregateStatus(devices, this.getSettings().share_presence);
  }

  /** A device came, went or changed its status: tell the shard if the user's status changed. */
  private presenceChanged(except?: WebSocket): void {
    const link = this.shardLink();
    if (!link) return;
    const status = this.presenceStatus(except);
    this.ctx.waitUntil(link.report(status));
    if (status === "offline") this.ctx.waitUntil(link.unwatch(this.contacts()));
  }

  /** People the user shares a DM or small group with: whose presence their devices show. */
  private contacts(): string[] {
    const me = this.profile?.user_id;
    const ids = new Set<string>();
    for (const row of this.sql.exec<{ members: string }>("SELECT members FROM channels WHERE left = 0 ORDER BY last_activity_at DESC")) {
      for (const m of parseMembers(row.members)) if (m.user_id !== me) ids.add(m.user_id);
      if (ids.size >= MAX_WATCHED_CONTACTS) break;
    }
    return [...ids];
  }

  /** Watches `userIds` and sends their current presence to `sockets`. */
  private async watchAndSend(userIds: string[], sockets: WebSocket[]): Promise<void> {
    const link = this.shardLink();
    if (!link || userIds.length === 0) return;
    for (const state of await link.watch(userIds)) {
      const frame: FrameInit = { type: pb.FrameType.PRESENCE, presence: state };
      for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) sendFrame(ws, frame, this.info(ws).encoding);
    }
  }

  private async ensureKeepAlive(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + this.keepAliveMs());
  }

  /* ------------------------------------ WebSocket ------------------------------------ */

  /**
   * The gateway Worker authenticated the request and set the x-edgechat-* headers; this object is
   * not reachable from outside any other way.
   */
  override async fetch(request: Request): Promise<Response> {
    const userId = request.headers.get("x-edgechat-user-id") ?? "";
    const username = request.headers.get("x-edgechat-username") ?? "";
    const deviceId = request.headers.get("x-edgechat-device-id") ?? "";
    const encoding: Encoding = request.headers.get("x-edgechat-encoding") === "json" ? "json" : "proto";
    const protocolHeader = request.headers.get("x-edgechat-protocol") ?? undefined;
    if (!this.profile) this.init({ user_id: userId, username, display_name: username, jurisdiction: "" });

    const registered = this.registerDevice(deviceId);
    if (!registered.ok) {
      const code = registered.code === "too_many_devices" ? CLOSE.tooManyDevices : CLOSE.badRequest;
      return refuseWebSocket(registered, code, encoding, protocolHeader);
    }
    // One socket per device: a second connection of the same device replaces the first.
    for (const old of this.ctx.getWebSockets(deviceId)) {

      sendFrame(old, { type: pb.FrameType.CONFLICT, conflict: { device_id: deviceId, reason: "replaced by a newer connection of this device" } }, this.info(old).encoding);
      closeQuietly(old, CLOSE.replaced, "replaced");
    }
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server, [deviceId]);
    server.serializeAttachment({ deviceId, encoding, status: "online", activeAt: Date.now() } satisfies SocketInfo);
    sendFrame(server, {
      type: pb.FrameType.HELLO,
      hello: {
        user_id: this.profile!.user_id, username: this.profile!.username, device_id: deviceId,
        max_frame_bytes: LIMITS.maxFrameBytes, max_content_bytes: LIMITS.maxContentBytes,
        max_unacked_frames: LIMITS.maxUnackedFrames, server_ts: Date.now(), protocol: protocolHeader ?? encoding,
      },
    }, encoding);
    this.presenceChanged();
    await this.ensureKeepAlive();
    return new Response(null, { status: 101, webSocket: client, headers: protocolHeader ? { "Sec-WebSocket-Protocol": protocolHeader } : {} });
  }

  override async webSocketMessage(ws: WebSocket, data: ArrayBuffer | string): Promise<void> {
    const info = this.info(ws);
    const now = Date.now();
    if (now - info.activeAt > ACTIVITY_RESOLUTION_MS) ws.serializeAttachment({ ...info, activeAt: now } satisfies SocketInfo);
    if (data === PING) { sendFrame(ws, PONG, info.encoding); return; }
    const decoded = decodeFrame(data, info.encoding);
    if (!decoded.ok) {
      sendFrame(ws, errorFrame(decoded.requestId, fail(decoded.code, decoded.message)), info.encoding);
      return;
    }
    const frame = decoded.frame;
    try {
      const failure = await this.handle(ws, info, frame);
      if (failure) sendFrame(ws, errorFrame(frame.request_id, failure, failureContext(frame)), info.encoding);
    } catch (err) {
      console.error("frame handler failed", err);
      sendFrame(ws, errorFrame(frame.request_id, failureFromException(err), failureContext(frame)), info.encoding);
    }
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    this.resuming.delete(ws);
    this.inflight.delete(ws);
    this.releaseHeldSends(ws);
    this.touchDevice(ws);
    this.presenceChanged(ws);
    // Reciprocate the peer's Close frame to complete the handshake. The Hibernation API requires
    // it; without it clients stay in CLOSING and report 1006. 1005/1006 cannot be sent back.
    closeQuietly(ws, code === 1005 || code === 1006 ? 1000 : code, "bye");
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.resuming.delete(ws);
    this.inflight.delete(ws);
    this.releaseHeldSends(ws);
    this.touchDevice(ws);
    this.presenceChanged(ws);
  }

  /** Returns a Failure to report as an ERROR frame, or nothing when the handler replied itself. */
  private async handle(ws: WebSocket, info: SocketInfo, frame: Frame): Promise<Failure | undefined> {
    const T = pb.FrameType;
    switch (frame.type) {
      case T.SEND: return this.onSend(ws, info, frame);
      case T.DELIVER_ACK: return this.onDeliverAck(info, frame);
      case T.PULL_HISTORY: return this.onPullHistory(ws, info, frame);
      case T.READ: return this.onRead(frame);
      case T.RESUME: return this.onResume(ws, info, frame);
      case T.TYPING: return this.onTyping(info, frame);
      case T.REACT: case T.EDIT: case T.DELETE: return this.onChange(ws, info, frame);
      case T.PRESENCE_HEARTBEAT: return this.onPresenceHeartbeat(ws, info, frame);
      default:
        return fail("unexpected_frame", `${T[frame.type] ?? frame.type} frames are sent by the server, not by clients.`);
    }
  }

  /**
   * Queues a SEND for its channel and waits until its SEND_ACK or ERROR is written. Replies come
   * from the append pipeline; only frames refused up front return a Failure here.
   */
  private async onSend(ws: WebSocket, info: SocketInfo, frame: Frame): Promise<Failure | undefined> {
    const send = frame.send;
    const me = this.profile?.user_id;
    if (!send || !me) return fail("invalid_argument", "SEND needs a payload.");
    if (!isChannelId(send.channel_id)) return fail("invalid_argument", "channel_id is not a channel id.");
    const inFlight = this.inflight.get(ws) ?? 0;
    if (inFlight >= LIMITS.maxUnackedFrames) {
      sendFrame(ws, { type: pb.FrameType.SLOWDOWN, slowdown: { delay_ms: SLOWDOWN_MS, reason: `more than ${LIMITS.maxUnackedFrames} SENDs awaiting SEND_ACK` } }, info.encoding);
      return fail("rate_limited", `At most ${LIMITS.maxUnackedFrames} SENDs may await their SEND_ACK; wait for acks, then retry.`, SLOWDOWN_MS);
    }
    const content = send.content ? pb.MessageContent.toObject(pb.MessageContent.fromObject(send.content), { longs: Number, defaults: false }) : {};
    const channelId = send.channel_id;
    this.inflight.set(ws, inFlight + 1);
    await new Promise<void>((done) => {
      this.admitInOrder({
        ws, encoding: info.encoding, requestId: frame.request_id, channelId, done,
        input: { userId: me, deviceId: info.deviceId, clientMsgId: send.client_msg_id ?? "", content },
      }, send.send_seq ?? 0);
    });
    return undefined;
  }

  /**
   * Hands SENDs to their channel's queue in the connection's send_seq order: the runtime may hand
   * over frames that arrived together in another order. A number that never comes (a client bug)
   * stalls nothing for long: past a window's worth of held frames, the rest go in order without it.
   */
  private admitInOrder(job: SendJob, sendSeq: number): void {
    if (sendSeq <= 0) return this.enqueueAppend(job);
    let order = this.sendOrder.get(job.ws);
    if (!order) this.sendOrder.set(job.ws, (order = { next: 1, held: new Map() }));
    if (sendSeq < order.next) return this.enqueueAppend(job); // a reused number: as it comes
    order.held.set(sendSeq, job);
    if (sendSeq > order.next && order.held.size < LIMITS.maxUnackedFrames) return;
    if (!order.held.has(order.next)) order.next = Math.min(...order.held.keys());
    for (let next = order.held.get(order.next); next; next = order.held.get(order.next)) {
      order.held.delete(order.next);
      order.next++;
      this.enqueueAppend(next);
    }
  }

  /**
   * A closing socket may leave SENDs held behind a send_seq that never came: store them in order
   * anyway (their handlers must finish; the client's retry with the same client_msg_id dedups).
   */
  private releaseHeldSends(ws: WebSocket): void {
    const order = this.sendOrder.get(ws);
    this.sendOrder.delete(ws);
    if (!order) return;
    for (const seq of [...order.held.keys()].sort((a, b) => a - b)) this.enqueueAppend(order.held.get(seq)!);
  }

  private enqueueAppend(job: SendJob): void {
    const queue = this.appendQueues.get(job.channelId);
    if (queue) { queue.push(job); return; }
    this.appendQueues.set(job.channelId, [job]);
    void this.runAppends(job.channelId);
  }

  /**
   * One batch per channel in flight: whatever queues meanwhile goes in the next appendBatch, in
   * queue order, so a device's messages keep their order and a burst costs one call and one commit.
   */
  private async runAppends(channelId: string): Promise<void> {
    const queue = this.appendQueues.get(channelId)!;
    while (queue.length > 0) {
      const jobs = queue.splice(0, LIMITS.maxUnackedFrames);
      let results: Result<{ ack: SendAck }>[];
      try {
        results = await this.channel(channelId).appendBatch(jobs.map((j) => j.input));
      } catch (err) {
        this.stubs.delete(channelId); // a failed call can break the stub: take a fresh one next time
        console.error("append failed", err);
        results = jobs.map(() => failureFromException(err));
      }
      jobs.forEach((job, i) => this.finishSend(job, results[i] ?? failureFromException(new Error("no result for a SEND"))));
    }
    this.appendQueues.delete(channelId);
  }

  private finishSend(job: SendJob, result: Result<{ ack: SendAck }>): void {
    const left = (this.inflight.get(job.ws) ?? 1) - 1;
    if (left > 0) this.inflight.set(job.ws, left); else this.inflight.delete(job.ws);
    const frame = result.ok
      ? { type: pb.FrameType.SEND_ACK, request_id: job.requestId, send_ack: result.ack }
      : errorFrame(job.requestId, result, { channel_id: capId(job.channelId), client_msg_id: capId(job.input.clientMsgId) });
    sendFrame(job.ws, frame, job.encoding);
    job.done();
  }

  private onDeliverAck(info: SocketInfo, frame: Frame): Failure | undefined {
    const ack = frame.deliver_ack;
    if (!ack || !isChannelId(ack.channel_id) || !ack.seq || ack.seq <= 0) return fail("invalid_argument", "DELIVER_ACK needs channel_id and seq.");
    // Only channels in this user's list: otherwise any socket could grow the table without bound.
    if (!this.channelRow(ack.channel_id)) return fail("not_found", "No such channel in your channel list.");
    this.recordDelivered(info.deviceId, ack.channel_id, ack.seq);
    return undefined;
  }

  /** A device's delivered cursor only moves forward. */
  private recordDelivered(deviceId: string, channelId: string, seq: number): void {
    this.sql.exec(
      `INSERT INTO device_cursors (device_id, channel_id, delivered_seq) VALUES (?, ?, ?)
       ON CONFLICT (device_id, channel_id) DO UPDATE SET delivered_seq = max(delivered_seq, excluded.delivered_seq)`,
      deviceId, channelId, seq,
    );
  }

  /** REACT, EDIT, DELETE: answered with MESSAGE_UPDATE holding the message as it is now. */
  private async onChange(ws: WebSocket, info: SocketInfo, frame: Frame): Promise<Failure | undefined> {
    const T = pb.FrameType;
    const target = frame.react ?? frame.edit ?? frame.delete;
    const name = T[frame.type];
    if (!target || !isChannelId(target.channel_id)) return fail("invalid_argument", `${name} needs channel_id and seq.`);
    const seq = Number(target.seq ?? 0);
    let result: Result<MessageChange>;
    if (frame.type === T.REACT && frame.react) {
      result = await this.react(target.channel_id, info.deviceId, seq, frame.react.emoji ?? "", (frame.react.op || "add") as "add" | "remove");
    } else if (frame.type === T.EDIT && frame.edit) {
      const content = frame.edit.content ? pb.MessageContent.toObject(pb.MessageContent.fromObject(frame.edit.content), { longs: Number, defaults: false }) : {};
      result = await this.edit(target.channel_id, info.deviceId, seq, content);
    } else if (frame.type === T.DELETE && frame.delete) {
      result = await this.deleteMessage(target.channel_id, info.deviceId, seq, frame.delete.for_everyone === true);
    } else {
      return fail("invalid_argument", `${name} needs a ${name.toLowerCase()} payload.`);
    }
    if (!result.ok) return result;
    sendFrame(ws, { type: T.MESSAGE_UPDATE, request_id: frame.request_id, message_update: { message: result.message, kind: result.kind } }, info.encoding);
    return undefined;
  }

  /** A device's own status: online while in front of its user, away in the background. No reply. */
  private onPresenceHeartbeat(ws: WebSocket, info: SocketInfo, frame: Frame): Failure | undefined {
    const status = frame.presence_heartbeat?.status;
    if (status !== "online" && status !== "away") return fail("invalid_argument", "PRESENCE_HEARTBEAT status must be online or away.");
    if (status !== info.status) ws.serializeAttachment({ ...info, status } satisfies SocketInfo);
    this.presenceChanged();
    return undefined;
  }

  private async onPullHistory(ws: WebSocket, info: SocketInfo, frame: Frame): Promise<Failure | undefined> {
    const q = frame.pull_history;
    const me = this.profile?.user_id;
    if (!q || !me || !isChannelId(q.channel_id)) return fail("invalid_argument", "PULL_HISTORY needs a channel_id.");
    const page = await this.history(q.channel_id, {
      before: q.before_seq ?? undefined, after: q.after_seq ?? undefined, limit: q.limit || undefined,
    });
    if (!page.ok) return page;
    const { ok: _ok, ...history_page } = page;
    sendFrame(ws, { type: pb.FrameType.HISTORY_PAGE, request_id: frame.request_id, history_page }, info.encoding);
    return undefined;
  }

  private async onRead(frame: Frame): Promise<Failure | undefined> {
    const r = frame.read;
    if (!r || !isChannelId(r.channel_id)) return fail("invalid_argument", "READ needs channel_id and up_to_seq.");
    const result = await this.markRead(r.channel_id, r.up_to_seq ?? 0);
    return result.ok ? undefined : result;
  }

  private async onTyping(info: SocketInfo, frame: Frame): Promise<Failure | undefined> {
    const t = frame.typing;
    const me = this.profile?.user_id;
    if (!t || !me || !isChannelId(t.channel_id)) return fail("invalid_argument", "TYPING needs a channel_id.");
    const result = await this.channel(t.channel_id).typing(me, info.deviceId, t.is_typing === true);
    return result.ok ? undefined : result;
  }

  /**
   * Sends the device every message it lacks, channel by channel, then RESUMED. Deliveries that
   * arrive meanwhile are held and sent after the gap, minus what the gap already covered, so the
   * device sees each message once and in order.
   */
  private async onResume(ws: WebSocket, info: SocketInfo, frame: Frame): Promise<Failure | undefined> {
    const me = this.profile?.user_id;
    if (!me) return fail("not_found", "Unknown user.");
    const state: ResumeState = { held: [] };
    this.resuming.set(ws, state);
    const sentUpTo = new Map<string, number>();
    try {
      const clientCursors = new Map<string, number>();
      for (const c of frame.resume?.cursors ?? []) if (isChannelId(c.channel_id)) clientCursors.set(c.channel_id, c.last_seq ?? 0);
      // The device's own cursors are the best record of what it holds: DELIVER_ACKs lost with
      // the last socket would otherwise leave the server's record behind.
      const known = new Set(this.sql.exec<{ channel_id: string }>("SELECT channel_id FROM channels").toArray().map((r) => r.channel_id));
      for (const [channelId, seq] of clientCursors) if (seq > 0 && known.has(channelId)) this.recordDelivered(info.deviceId, channelId, seq);
      const deviceCursors = new Map(this.sql.exec<{ channel_id: string; delivered_seq: number }>(
        "SELECT channel_id, delivered_seq FROM device_cursors WHERE device_id = ?", info.deviceId,
      ).toArray().map((r) => [r.channel_id, r.delivered_seq]));
      const gaps = this.sql.exec<{ channel_id: string; last_seq: number }>("SELECT channel_id, last_seq FROM channels WHERE left = 0")
        .toArray()
        .map((c) => ({ ...c, from: clientCursors.get(c.channel_id) ?? deviceCursors.get(c.channel_id) ?? 0 }))
        .filter((c) => c.last_seq > c.from);
      let next = 0;
      const worker = async () => {
        while (next < gaps.length) {
          const gap = gaps[next++]!;
          sentUpTo.set(gap.channel_id, await this.sendGap(ws, info, me, gap.channel_id, gap.from));
        }
      };
      await Promise.all(Array.from({ length: Math.min(RESUME_CONCURRENCY, gaps.length) }, worker));
    } finally {
      this.resuming.delete(ws);
    }
    const held = state.held.filter((m) => m.seq > (sentUpTo.get(m.channel_id) ?? 0));
    if (held.length > 0) this.sendMessages(ws, info, held);
    sendFrame(ws, { type: pb.FrameType.RESUMED, request_id: frame.request_id, resumed: { channels: this.listChannels() } }, info.encoding);
    // Then who of the user's contacts is around (and the subscription that keeps it current).
    this.ctx.waitUntil(this.watchAndSend(this.contacts(), [ws]));
    return undefined;
  }

  /** Pages one channel's messages after `fromSeq` to the socket; returns the last seq sent. */
  private async sendGap(ws: WebSocket, info: SocketInfo, me: string, channelId: string, fromSeq: number): Promise<number> {
    let after = fromSeq;
    let sent = 0;
    while (sent < LIMITS.maxResumeMessagesPerChannel) {
      const limit = Math.min(LIMITS.maxPageSize, LIMITS.maxResumeMessagesPerChannel - sent);
      const page = await this.history(channelId, { after, limit });
      if (!page.ok || page.messages.length === 0) break;
      this.sendMessages(ws, info, page.messages);
      sent += page.messages.length;
      after = page.messages.at(-1)!.seq;
      if (!page.has_more) break;
    }
    return after;
  }

  /* ------------------------------------ helpers ------------------------------------ */

  private sendToDevices(all: ChatMessageData[]): void {
    const messages = this.masked(all);
    // Encode once per (encoding, set of messages) and reuse the bytes for every device.
    const cache = new Map<string, (Uint8Array | string)[]>();
    for (const ws of this.openSockets()) {
      const info = this.info(ws);
      // The sending device has its SEND_ACK; a change goes to every device (it holds a seq too).
      const mine = messages.filter((m) => m.content.update || m.sender_device_id !== info.deviceId || m.sender_user_id !== this.profile?.user_id);
      if (mine.length === 0) continue;
      const resume = this.resuming.get(ws);
      if (resume) { resume.held.push(...mine); continue; }
      const key = `${info.encoding}:${mine.length === messages.length ? "*" : info.deviceId}`;
      let frames = cache.get(key);
      if (frames === undefined) {
        frames = chunkMessages(mine).map((chunk) => encodeFrame({ type: pb.FrameType.DELIVER, deliver: { messages: chunk } }, info.encoding));
        cache.set(key, frames);
      }
      for (const bytes of frames) sendFrame(ws, bytes, info.encoding);
    }
  }

  /** Messages as this user sees them: those deleted for them (and changes to them) masked. */
  private masked(messages: ChatMessageData[]): ChatMessageData[] {
    if (!this.hasHidden) return messages;
    return messages.map((m) => {
      const hidden = this.hiddenIn(m.channel_id);
      if (hidden.has(m.seq)) return { ...hiddenMessage(m.channel_id, m.seq), server_msg_id: m.server_msg_id, hlc: m.hlc, server_ts: m.server_ts };
      const update = m.content.update;
      if (update?.target && hidden.has(Number(update.target_seq))) {
        return { ...m, content: { update: { ...update, target: hiddenMessage(m.channel_id, Number(update.target_seq)) } } };
      }
      return m;
    });
  }

  private hiddenIn(channelId: string): Set<number> {
    let set = this.hidden.get(channelId);
    if (!set) {
      set = new Set(this.sql.exec<{ seq: number }>("SELECT seq FROM hidden_messages WHERE channel_id = ?", channelId).toArray().map((r) => r.seq));
      this.hidden.set(channelId, set);
    }
    return set;
  }

  private sendMessages(ws: WebSocket, info: SocketInfo, messages: ChatMessageData[]): void {
    for (const chunk of chunkMessages(messages)) sendFrame(ws, { type: pb.FrameType.DELIVER, deliver: { messages: chunk } }, info.encoding);
  }

  private broadcastChannelUpdate(channelId: string): void {
    const row = this.channelRow(channelId);
    if (row) this.broadcast({ type: pb.FrameType.CHANNEL_UPDATE, channel_update: { channel: channelState(row, this.profile?.user_id) } });
  }

  private broadcast(frame: FrameInit): void {
    const cache = new Map<Encoding, Uint8Array | string>();
    for (const ws of this.openSockets()) {
      const { encoding } = this.info(ws);
      let bytes = cache.get(encoding);
      if (bytes === undefined) cache.set(encoding, (bytes = encodeFrame(frame, encoding)));
      sendFrame(ws, bytes, encoding);
    }
  }

  private channelRow(channelId: string): ChannelRow | undefined {
    return this.sql.exec<ChannelRow>("SELECT * FROM channels WHERE channel_id = ?", channelId).toArray()[0];
  }

  /** Open sockets only: getWebSockets() also returns ones that are closing. */
  private openSockets(): WebSocket[] {
    return this.ctx.getWebSockets().filter((ws) => ws.readyState === WebSocket.OPEN);
  }

  private info(ws: WebSocket): SocketInfo {
    const a = ws.deserializeAttachment() as Partial<SocketInfo> | null;
    return {
      deviceId: a?.deviceId ?? "", encoding: a?.encoding === "json" ? "json" : "proto",
      status: a?.status === "away" ? "away" : "online", activeAt: typeof a?.activeAt === "number" ? a.activeAt : 0,
    };
  }

  private touchDevice(ws: WebSocket): void {
    const { deviceId } = this.info(ws);
    if (deviceId) this.sql.exec("UPDATE devices SET last_seen_at = ? WHERE device_id = ?", Date.now(), deviceId);
  }

  private channel(channelId: string): DurableObjectStub<ChannelObject> {
    let stub = this.stubs.get(channelId);
    if (!stub) {
      stub = channelStub(this.env, channelId);
      this.stubs.set(channelId, stub);
    }
    return stub;
  }
}

/** What a device learns of a message its user deleted for themselves: the seq, nothing else. */
function hiddenMessage(channelId: string, seq: number): ChatMessageData {
  return {
    channel_id: channelId, server_msg_id: "", hlc: "", seq, client_msg_id: "", sender_user_id: "", sender_device_id: "",
    server_ts: 0, content: {}, hidden: true,
  };
}

function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closed: nothing left to say to this peer.
  }
}

function sameText(a: string, b: string): boolean {
  const e = new TextEncoder();
  return timingSafeEqual(e.encode(a), e.encode(b));
}

/** Echoed ids are capped: a request that filled its frame with a bogus id must get an ERROR that fits in one. */
const MAX_ECHOED_ID = 128;

function capId(s: string | null | undefined): string {
  return (s ?? "").slice(0, MAX_ECHOED_ID);
}

function failureContext(frame: Frame): { channel_id?: string; client_msg_id?: string } {
  if (frame.send) return { channel_id: capId(frame.send.channel_id), client_msg_id: capId(frame.send.client_msg_id) };
  const payload = frame.payload ? (frame[frame.payload] as { channel_id?: unknown } | null | undefined) : undefined;
  return typeof payload?.channel_id === "string" && payload.channel_id ? { channel_id: capId(payload.channel_id) } : {};
}

export type { MemberProfile };
