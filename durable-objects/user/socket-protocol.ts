/**
 * The UserObject's side of the WebSocket protocol: accepting a device's socket (HELLO), what each
 * socket carries across hibernation (SocketInfo), writing frames to one or all sockets, the idle
 * sweep, and turning each client frame into a call on the user's object, with an ERROR frame for
 * anything refused (never a crash, never a silent drop).
 */
import { decodeFrame, encodeFrame, pb, type Encoding, type Frame, type FrameInit } from "../../protocol/codec.js";
import { chunkMessages } from "../../protocol/frame-budget.js";
import { LIMITS, PING, PONG } from "../../protocol/limits.js";
import { truncate } from "../../protocol/text.js";
import { fail, failureFromException, type Failure, type Result } from "../../shared/errors.js";
import { CLOSE, errorFrame, sendFrame } from "../../shared/frames.js";
import { isChannelId } from "../../shared/ids.js";
import type { ChannelSignal, ChatMessageData, ContentInit, MessageChange } from "../channel/types.js";
import type { PresenceState } from "../../protocol/types.js";
import type { DeviceStatus } from "./presence-link.js";
import type { Resume, SocketPhase } from "./resume.js";
import type { MessageActions } from "./message-actions.js";
import type { SendPipeline } from "./send-pipeline.js";
import { count } from "../../shared/metrics.js";
import { newTraceId } from "../../shared/trace.js";
import { log } from "../../shared/log.js";

/** Kept on each socket across hibernation; small (ids only) per the platform's 2 KiB limit. */
export interface SocketInfo {
  deviceId: string;
  /** The sign-in session whose access token opened the socket ("" for sockets older than that). */
  sessionId: string;
  encoding: Encoding;
  /** What the device last said with PRESENCE_HEARTBEAT; online until it says otherwise. */
  status: DeviceStatus;
  /** When the device last sent a frame (kept to within ACTIVITY_RESOLUTION_MS); pings are the runtime's. */
  activeAt: number;
  /**
   * The send_seq this connection's next SEND should carry (send-pipeline.ts). Here, not in the
   * object's memory, because the object may hibernate between two SENDs of an open socket.
   */
  sendNext: number;
  /** Where the connection is in HELLO → RESUME → RESUMED (resume.ts); survives hibernation. */
  phase: SocketPhase;
  /** When HELLO was sent: RESUME_DEADLINE_MS later the server resumes the socket itself. */
  helloAt: number;
  /**
   * When the user's presence keep-alive is next due (presence.ts), on every socket so that it
   * survives hibernation: a wake for something else does not repeat a keep-alive done minutes ago.
   * 0: unknown (due now).
   */
  keepAliveAt: number;
  /**
   * The channel list in memory is ahead of its table (rows changed under the cover of the user's
   * live sockets, decision 035): an instance woken with this set on any socket re-reads its rows.
   */
  listAhead: boolean;
}

/** A socket's last-activity time is written to its attachment at most this often. */
export const ACTIVITY_RESOLUTION_MS = 15_000;

/**
 * Attachments as last read or written, per socket object: every frame reads its socket's, and
 * deserializing it each time was a measurable share of a message's CPU. Written only through
 * `writeSocketInfo`; a socket object that comes back from hibernation is a new object, read afresh.
 */
const infos = new WeakMap<WebSocket, Readonly<SocketInfo>>();

/** The socket's attachment (read-only: change it with `patchSocketInfo`). */
export function socketInfo(ws: WebSocket): Readonly<SocketInfo> {
  let info = infos.get(ws);
  if (!info) infos.set(ws, (info = Object.freeze(readSocketInfo(ws))));
  return info;
}

function readSocketInfo(ws: WebSocket): SocketInfo {
  const a = ws.deserializeAttachment() as Partial<SocketInfo> | null;
  return {
    deviceId: a?.deviceId ?? "", sessionId: a?.sessionId ?? "", encoding: a?.encoding === "json" ? "json" : "proto",
    status: a?.status === "away" ? "away" : "online", activeAt: typeof a?.activeAt === "number" ? a.activeAt : 0,
    sendNext: typeof a?.sendNext === "number" && a.sendNext >= 1 ? a.sendNext : 1,
    // Sockets accepted by an older release have no phase: they are past their RESUME.
    phase: a?.phase === "awaiting" || a?.phase === "resuming" ? a.phase : "live",
    helloAt: typeof a?.helloAt === "number" ? a.helloAt : 0,
    keepAliveAt: typeof a?.keepAliveAt === "number" ? a.keepAliveAt : 0,
    listAhead: a?.listAhead === true,
  };
}

/** Changes some of a socket's attachment fields, keeping the others (read, change, write in one turn). */
export function patchSocketInfo(ws: WebSocket, patch: Partial<SocketInfo>): void {
  writeSocketInfo(ws, { ...socketInfo(ws), ...patch });
}

/** The one place attachments are written: the kept copy follows every write. */
function writeSocketInfo(ws: WebSocket, info: SocketInfo): void {
  ws.serializeAttachment(info);
  infos.set(ws, Object.freeze(info));
}

/** The tag that finds every socket of a session (a socket has its device id as a tag too). */
export function sessionTag(sessionId: string): string {
  return `session:${sessionId}`;
}

/** Open sockets only: getWebSockets() also returns ones that are closing. */
export function openSockets(ctx: DurableObjectState): WebSocket[] {
  return ctx.getWebSockets().filter((ws) => ws.readyState === WebSocket.OPEN);
}

export function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closed: nothing left to say to this peer.
  }
}

/** Echoed ids are capped: a request that filled its frame with a bogus id must get an ERROR that fits in one. */
const MAX_ECHOED_ID = 128;

export function capId(s: string | null | undefined): string {
  return truncate(s ?? "", MAX_ECHOED_ID);
}

/** The ids an ERROR for `frame` echoes, so the client can match it to what it sent. */
export function failureContext(frame: Frame): { channel_id?: string; client_msg_id?: string } {
  if (frame.send) return { channel_id: capId(frame.send.channel_id), client_msg_id: capId(frame.send.client_msg_id) };
  const payload = frame.payload ? (frame[frame.payload] as { channel_id?: unknown } | null | undefined) : undefined;
  return typeof payload?.channel_id === "string" && payload.channel_id ? { channel_id: capId(payload.channel_id) } : {};
}

/**
 * Accepts a device's socket: a second connection of the same device replaces the first (CONFLICT,
 * then close), the new one is tagged with the device id and greeted with HELLO, then RESUME_HINT
 * with the token that lets this device reconnect without a fresh access token (the gateway mints it).
 */
export function acceptDevice(
  ctx: DurableObjectState, user: { user_id: string; username: string }, deviceId: string, sessionId: string,
  encoding: Encoding, protocolHeader: string | undefined, resumeToken?: string,
): WebSocket {
  for (const old of ctx.getWebSockets(deviceId)) {
    sendFrame(old, { type: pb.FrameType.CONFLICT, conflict: { device_id: deviceId, reason: "replaced by a newer connection of this device" } }, socketInfo(old).encoding);
    closeQuietly(old, CLOSE.replaced, "replaced");
  }
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  ctx.acceptWebSocket(server, sessionId ? [deviceId, sessionTag(sessionId)] : [deviceId]);
  const now = Date.now();
  writeSocketInfo(server, { deviceId, sessionId, encoding, status: "online", activeAt: now, sendNext: 1, phase: "awaiting", helloAt: now, keepAliveAt: 0, listAhead: false });
  sendFrame(server, {
    type: pb.FrameType.HELLO,
    hello: {
      user_id: user.user_id, username: user.username, device_id: deviceId,
      max_frame_bytes: LIMITS.maxFrameBytes, max_content_bytes: LIMITS.maxContentBytes,
      max_unacked_frames: LIMITS.maxUnackedFrames, server_ts: Date.now(), protocol: protocolHeader ?? encoding,
    },
  }, encoding);
  if (resumeToken) sendFrame(server, { type: pb.FrameType.RESUME_HINT, resume_hint: { session_token: resumeToken } }, encoding);
  return client;
}

/**
 * Closes every socket of a signed-out session: ERROR session_revoked, then close 4410, which
 * clients take as "signed out" (no refresh, no reconnect). Returns how many it closed.
 */
export function closeSession(ctx: DurableObjectState, sessionId: string): number {
  const sockets = new Set(ctx.getWebSockets(sessionTag(sessionId)));
  for (const ws of ctx.getWebSockets()) if (socketInfo(ws).sessionId === sessionId) sockets.add(ws);
  let closed = 0;
  for (const ws of sockets) {
    if (ws.readyState !== WebSocket.OPEN) continue;
    sendFrame(ws, errorFrame(0, fail("session_revoked", "This session was signed out; log in again.")), socketInfo(ws).encoding);
    closeQuietly(ws, CLOSE.sessionRevoked, "signed out");
    closed++;
  }
  return closed;
}

/** Closes a removed device's sockets. */
export function closeDevice(ctx: DurableObjectState, deviceId: string): void {
  for (const ws of ctx.getWebSockets(deviceId)) closeQuietly(ws, 4000, "device_removed");
}

/**
 * Closes every socket with `code` and `reason`. With `error`, each open one is told it in an ERROR
 * frame first, and sockets closing already are left alone (the account's erasure: the SDK shows the reason).
 */
export function closeAll(ctx: DurableObjectState, code: number, reason: string, error?: Failure): void {
  for (const ws of ctx.getWebSockets()) {
    if (error) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      sendFrame(ws, errorFrame(0, error), socketInfo(ws).encoding);
    }
    closeQuietly(ws, code, reason);
  }
}

/** What the idle check saw of a socket it closed (for the log). */
export interface IdleClose {
  deviceId: string;
  /** Since the socket's last frame (to within ACTIVITY_RESOLUTION_MS), and its last ping (null: never pinged). */
  activeAgoMs: number;
  pingedAgoMs: number | null;
}

/**
 * Closes sockets with no frame and no ping for LIMITS.idleTimeoutMs plus `slackMs`, and says
 * what it saw of each. `slackMs` is how far behind the object's thread is (how late the alarm
 * runs): pings that wait unread in a backlog are not stamped yet, and a device that pinged on
 * time must not be taken for gone because the server was slow to read it.
 */
export function closeIdleSockets(ctx: DurableObjectState, now: number, slackMs = 0, userId?: string): IdleClose[] {
  const closed: IdleClose[] = [];
  for (const ws of openSockets(ctx)) {
    const pinged = ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime();
    const { activeAt, deviceId } = socketInfo(ws);
    if (now - Math.max(activeAt, pinged ?? 0) <= LIMITS.idleTimeoutMs + slackMs) continue;
    closeQuietly(ws, CLOSE.idle, `no frame or ping for ${LIMITS.idleTimeoutMs / 1000} s`);
    const seen: IdleClose = { deviceId, activeAgoMs: now - activeAt, pingedAgoMs: pinged === undefined ? null : now - pinged };
    log("info", "socket.idle_closed", { object: "user", id: userId, device_id: deviceId, active_ago_ms: seen.activeAgoMs, pinged_ago_ms: seen.pingedAgoMs, late_ms: slackMs });
    closed.push(seen);
  }
  return closed;
}

/** The presence keep-alive's due time as the sockets keep it through hibernation (undefined: none known). */
export function keptKeepAliveAt(ctx: DurableObjectState): number | undefined {
  return Math.max(0, ...openSockets(ctx).map((ws) => socketInfo(ws).keepAliveAt)) || undefined;
}

/**
 * On wake: whether the sockets the runtime kept (closing ones included) vouch for the channel list
 * as stored: there are some, and none says the list in memory was ahead of its table (decision 035).
 */
export function socketsKeptList(ctx: DurableObjectState): boolean {
  const sockets = ctx.getWebSockets();
  return sockets.length > 0 && !sockets.some((ws) => socketInfo(ws).listAhead);
}

/** Says on every socket whether the channel list in memory is ahead of its table (decision 035). */
export function markListAhead(ctx: DurableObjectState, ahead: boolean): void {
  for (const ws of ctx.getWebSockets()) if (socketInfo(ws).listAhead !== ahead) patchSocketInfo(ws, { listAhead: ahead });
}

/** Keeps the presence keep-alive's due time on every open socket. */
export function keepKeepAliveAt(ctx: DurableObjectState, at: number): void {
  for (const ws of openSockets(ctx)) if (socketInfo(ws).keepAliveAt !== at) patchSocketInfo(ws, { keepAliveAt: at });
}

/**
 * Other people's typing indicators, read receipts and presence, to every device. Under pressure
 * (SENDs piling up) typing and presence are the first to go: they are ephemeral, the next one
 * replaces them, and nobody is owed an answer. Counted, never an error.
 */
export class DeviceSignals {
  constructor(private readonly ctx: DurableObjectState, private readonly underPressure: () => boolean) {}

  /** Another member's typing indicator or read receipt. */
  signal(event: Extract<ChannelSignal, { kind: "typing" | "read" }>): void {
    if (event.kind === "typing" && this.shed("typing")) return;
    broadcast(openSockets(this.ctx), event.kind === "typing"
      ? { type: pb.FrameType.TYPING, typing: { channel_id: event.channel_id, user_id: event.user_id, device_id: event.device_id, is_typing: event.is_typing } }
      : { type: pb.FrameType.READ, read: { channel_id: event.channel_id, user_id: event.user_id, up_to_seq: event.up_to_seq } });
  }

  /** A watched user's presence changed. */
  presence(state: PresenceState): void {
    if (this.shed("presence")) return;
    broadcast(openSockets(this.ctx), { type: pb.FrameType.PRESENCE, presence: state });
  }

  private shed(kind: "typing" | "presence"): boolean {
    if (!this.underPressure()) return false;
    count("overload.dropped", 1, { object: "user", kind });
    return true;
  }
}

/** One frame to every socket, encoded once per encoding. */
export function broadcast(sockets: WebSocket[], frame: FrameInit): void {
  const cache = new Map<Encoding, Uint8Array | string>();
  for (const ws of sockets) {
    const { encoding } = socketInfo(ws);
    let bytes = cache.get(encoding);
    if (bytes === undefined) cache.set(encoding, (bytes = encodeFrame(frame, encoding)));
    sendFrame(ws, bytes, encoding);
  }
}

/** Messages to one socket as DELIVER frames that each fit the frame limit. */
export function sendMessages(ws: WebSocket, encoding: Encoding, messages: ChatMessageData[]): void {
  for (const chunk of chunkMessages(messages, undefined, encoding)) sendFrame(ws, { type: pb.FrameType.DELIVER, deliver: { messages: chunk } }, encoding);
}

/**
 * Live messages to every socket except, for each message, the device that sent it (it has the
 * SEND_ACK); a change goes to every device (it holds a seq too). `route` says per socket whether
 * to send now, hold (resuming) or skip (awaiting RESUME). Frames are encoded once per (encoding,
 * set of messages).
 */
export function deliverToSockets(
  sockets: WebSocket[], messages: ChatMessageData[], me: string | undefined,
  route: (ws: WebSocket) => "send" | "hold" | "skip", hold: (ws: WebSocket, messages: ChatMessageData[]) => void,
): void {
  const cache = new Map<string, (Uint8Array | string)[]>();
  for (const ws of sockets) {
    const how = route(ws);
    if (how === "skip") continue;
    const info = socketInfo(ws);
    const mine = messages.filter((m) => m.content.update || m.sender_device_id !== info.deviceId || m.sender_user_id !== me);
    if (mine.length === 0) continue;
    if (how === "hold") { hold(ws, mine); continue; }
    const key = `${info.encoding}:${mine.length === messages.length ? "*" : info.deviceId}`;
    let frames = cache.get(key);
    if (frames === undefined) {
      frames = chunkMessages(mine, undefined, info.encoding).map((chunk) => encodeFrame({ type: pb.FrameType.DELIVER, deliver: { messages: chunk } }, info.encoding));
      cache.set(key, frames);
    }
    for (const bytes of frames) sendFrame(ws, bytes, info.encoding);
    count("deliveries", mine.length);
  }
}

/** What the frame handlers call on the user's object. */
export interface SocketHost {
  userId(): string | undefined;
  sends: SendPipeline;
  resume: Resume;
  /** Whether the channel is in the user's list (left ones included). */
  listed(channelId: string): boolean;
  recordDelivered(deviceId: string, channelId: string, seq: number): void;
  /** Reads, history, typing, reactions, edits and deletes, as REST makes them too (message-actions.ts). */
  actions: Pick<MessageActions, "history" | "markRead" | "typing" | "react" | "edit" | "deleteMessage">;
  /** A device's status changed. */
  presenceChanged(): void;
}

/** Client frames in, calls on the user's object out; refusals become ERROR frames. */
export class SocketProtocol {
  constructor(private readonly host: SocketHost) {}

  async onMessage(ws: WebSocket, data: ArrayBuffer | string): Promise<void> {
    const info = socketInfo(ws);
    const now = Date.now();
    if (now - info.activeAt > ACTIVITY_RESOLUTION_MS) patchSocketInfo(ws, { activeAt: now });
    if (data === PING) { sendFrame(ws, PONG, info.encoding); return; }
    // Every frame gets a trace id: its ERROR or SEND_ACK returns it, and the log lines it causes carry it.
    const trace_id = newTraceId();
    const decoded = decodeFrame(data, info.encoding);
    if (!decoded.ok) {
      // Text that is not well-formed is refused, but the frame around it was readable: say which request it was.
      const context = decoded.code === "invalid_text" ? failureContext(decoded.repaired) : {};
      sendFrame(ws, errorFrame(decoded.requestId, fail(decoded.code, decoded.message), { ...context, trace_id }), info.encoding);
      return;
    }
    const frame = decoded.frame;
    try {
      const failure = await this.handle(ws, info, frame, trace_id);
      if (failure) sendFrame(ws, errorFrame(frame.request_id, failure, { ...failureContext(frame), trace_id }), info.encoding);
    } catch (err) {
      log("error", "frame.failed", { object: "user", id: this.host.userId(), device_id: info.deviceId, frame: pb.FrameType[frame.type], trace_id }, err);
      sendFrame(ws, errorFrame(frame.request_id, failureFromException(err), { ...failureContext(frame), trace_id }), info.encoding);
    }
  }

  /** Returns a Failure to report as an ERROR frame, or nothing when the handler replied itself. */
  private async handle(ws: WebSocket, info: SocketInfo, frame: Frame, traceId: string): Promise<Failure | undefined> {
    const T = pb.FrameType;
    switch (frame.type) {
      case T.SEND: return this.onSend(ws, info, frame, traceId);
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
   * from the send pipeline; only frames refused up front return a Failure here.
   */
  private async onSend(ws: WebSocket, info: SocketInfo, frame: Frame, traceId: string): Promise<Failure | undefined> {
    const send = frame.send;
    const me = this.host.userId();
    const refuse = (f: Failure): Failure => {
      // Refused, but numbered all the same: the SENDs after it must not wait for it.
      this.host.sends.skip(ws, send?.send_seq);
      return f;
    };
    if (!send || !me) return refuse(fail("invalid_argument", "SEND needs a payload."));
    if (!isChannelId(send.channel_id)) return refuse(fail("invalid_argument", "channel_id is not a channel id."));
    const overWindow = this.host.sends.refuseOverWindow(ws, info.encoding);
    if (overWindow) return refuse(overWindow);
    let content: ContentInit;
    try {
      content = send.content ? pb.MessageContent.toObject(pb.MessageContent.fromObject(send.content), { longs: Number, defaults: false }) : {};
    } catch {
      return refuse(fail("invalid_argument", "content is not a valid MessageContent."));
    }
    await this.host.sends.submit({
      ws, encoding: info.encoding, requestId: frame.request_id, channelId: send.channel_id, traceId,
      // The user's own list and other devices take the message from the answer (decision 033).
      input: { userId: me, deviceId: info.deviceId, clientMsgId: send.client_msg_id ?? "", content, traceId, selfApplied: true },
    }, send.send_seq ?? 0);
    return undefined;
  }

  private onDeliverAck(info: SocketInfo, frame: Frame): Failure | undefined {
    const ack = frame.deliver_ack;
    if (!ack || !isChannelId(ack.channel_id) || !ack.seq || ack.seq <= 0) return fail("invalid_argument", "DELIVER_ACK needs channel_id and seq.");
    // Only channels in this user's list: otherwise any socket could grow the table without bound.
    if (!this.host.listed(ack.channel_id)) return fail("not_found", "No such channel in your channel list.");
    this.host.recordDelivered(info.deviceId, ack.channel_id, ack.seq);
    return undefined;
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
      result = await this.host.actions.react(target.channel_id, info.deviceId, seq, frame.react.emoji ?? "", (frame.react.op || "add") as "add" | "remove");
    } else if (frame.type === T.EDIT && frame.edit) {
      const content = frame.edit.content ? pb.MessageContent.toObject(pb.MessageContent.fromObject(frame.edit.content), { longs: Number, defaults: false }) : {};
      result = await this.host.actions.edit(target.channel_id, info.deviceId, seq, content);
    } else if (frame.type === T.DELETE && frame.delete) {
      result = await this.host.actions.deleteMessage(target.channel_id, info.deviceId, seq, frame.delete.for_everyone === true);
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
    if (status !== info.status) patchSocketInfo(ws, { status });
    this.host.presenceChanged();
    return undefined;
  }

  private async onPullHistory(ws: WebSocket, info: SocketInfo, frame: Frame): Promise<Failure | undefined> {
    const q = frame.pull_history;
    const me = this.host.userId();
    if (!q || !me || !isChannelId(q.channel_id)) return fail("invalid_argument", "PULL_HISTORY needs a channel_id.");
    const page = await this.host.actions.history(q.channel_id, {
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
    const result = await this.host.actions.markRead(r.channel_id, r.up_to_seq ?? 0);
    return result.ok ? undefined : result;
  }

  private async onTyping(info: SocketInfo, frame: Frame): Promise<Failure | undefined> {
    const t = frame.typing;
    const me = this.host.userId();
    if (!t || !me || !isChannelId(t.channel_id)) return fail("invalid_argument", "TYPING needs a channel_id.");
    if (this.host.sends.underPressure()) {
      // Shed first under pressure (decision 022): typing is ephemeral and unanswered anyway.
      count("overload.dropped", 1, { object: "user", kind: "typing" });
      return undefined;
    }
    const result = await this.host.actions.typing(t.channel_id, info.deviceId, t.is_typing === true);
    return result.ok ? undefined : result;
  }

  /** Sends the device every message it lacks (see resume.ts), then RESUMED. */
  private async onResume(ws: WebSocket, info: SocketInfo, frame: Frame): Promise<Failure | undefined> {
    if (!this.host.userId()) return fail("not_found", "Unknown user.");
    const clientCursors = new Map<string, number>();
    for (const c of frame.resume?.cursors ?? []) if (isChannelId(c.channel_id)) clientCursors.set(c.channel_id, Number(c.last_seq ?? 0));
    await this.host.resume.run(ws, info, clientCursors, frame.request_id);
    return undefined;
  }
}
