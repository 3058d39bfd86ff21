/**
 * What a scenario needs from a server, implemented twice: by edgechat (real accounts, channels
 * and one socket per device carrying all its channels) and by the limit worker (rooms and one
 * socket per room). Scenarios are written once against this interface.
 */
import { pb, type Frame } from "../../protocol/codec.js";
import type { BenchSocket } from "./client.js";
import type { Tracker } from "./tracker.js";
import type { WorkerdProcesses } from "./procs.js";

export type TargetName = "edgechat" | "limit";

export interface BenchUser {
  userId: string;
  username: string;
  token: string;
}

export interface Target {
  readonly name: TargetName;
  readonly url: string;
  /** The first `n` users of this run's pool, registered once and reused by every scenario. */
  users(n: number): Promise<BenchUser[]>;
  /** A user no other scenario touches, so it belongs to no channel yet. */
  freshUser(label: string): Promise<BenchUser>;
  createDm(a: BenchUser, b: BenchUser): Promise<string>;
  createGroup(owner: BenchUser, members: readonly BenchUser[], name: string): Promise<string>;
  /** A broadcast channel owned by `owner` (limit: a room). */
  createBroadcast(owner: BenchUser, name: string): Promise<string>;
  /**
   * Subscribes accounts that never connect, by id (edgechat: `POST .../members/bulk`, 1,000 a
   * call; the ids must exist, e.g. test/support/seed-accounts.ts). Limit: nothing to do, a room
   * has no members. Resolves with the member count after.
   */
  bulkSubscribe(owner: BenchUser, channel: string, userIds: readonly string[]): Promise<number>;
  /** `users` join by one invite link (edgechat; their lists show the channel at once). Limit: nothing to do. */
  joinByInvite(owner: BenchUser, channel: string, users: readonly BenchUser[]): Promise<void>;
  /**
   * Connects one device and waits for HELLO. edgechat: one socket that carries every channel of
   * the user (`channels` unused). Limit: one socket per channel; with none, one socket to a room
   * named after the user, the counterpart of edgechat's UserObject.
   */
  connect(user: BenchUser, deviceId: string, channels: readonly string[], tracker?: Tracker, options?: ConnectOptions): Promise<Device>;
  /**
   * Makes sure the objects `users`' devices will connect to are loaded, so a memory reading
   * taken next counts sockets only. edgechat: one REST call per user (GET /v1/devices) loads its
   * UserObject, and presence lookups load the presence shards a connect reports to (a fixed set,
   * 32 per jurisdiction, not a per-socket cost). Limit: a touch loads each user's home room.
   */
  loadObjects(users: readonly BenchUser[]): Promise<void>;
  /** The channels this run made `user` a member of (edgechat; the limit's rooms have no members). */
  listedChannels(user: BenchUser): readonly string[];
  /** The wrangler dev processes behind the target, for memory figures; undefined when unknown. */
  processes(): WorkerdProcesses | undefined;
}

export interface ConnectOptions {
  /**
   * edgechat: RESUME right after HELLO, as every client does (a socket gets no live deliveries
   * before its RESUME), with cursors at the end of `channels` so nothing of them is replayed.
   * Default true; the RESUME scenario turns it off to time its own.
   */
  resume?: boolean;
  /**
   * edgechat: channels the device already holds in full (RESUME cursors at their ends, as a device
   * that was connected before sends), without making them the scenario's channels. Limit: ignored.
   */
  holding?: readonly string[];
  /**
   * How long the socket may take to open and say HELLO (default 15 s); edgechat's RESUME gets at
   * least 60 s. A connect past it fails with a retryable ConnectFailure (bench/load/client.ts).
   */
  timeoutMs?: number;
}

export interface ChannelCursor {
  channel_id: string;
  last_seq: number;
}

/**
 * A connected device: one socket (edgechat) or one per channel (limit). Routes acks, deliveries
 * and errors into the tracker.
 */
export class Device {
  readonly key: string;
  /** Frames from the server that the codec could not decode, summed over the device's sockets. */
  get undecodable(): number {
    let n = 0;
    for (const s of new Set(this.sockets.values())) n += s.undecodable;
    return n;
  }

  /** `sockets`: channel id → socket; the key "*" is the socket for every other channel. */
  constructor(readonly user: BenchUser, readonly deviceId: string, private readonly sockets: ReadonlyMap<string, BenchSocket>, tracker?: Tracker) {
    this.key = `${user.userId}/${deviceId}`;
    if (tracker) this.attach(tracker);
  }

  /** Close codes of this device's sockets that are no longer open (e.g. 4408: idle), empty while all are open. */
  closedCodes(): number[] {
    return [...new Set(this.sockets.values())].filter((s) => !s.open).map((s) => s.closeCode ?? 0);
  }

  attach(tracker: Tracker): void {
    for (const s of new Set(this.sockets.values())) s.onFrame = (f, at) => route(tracker, this.key, f, at);
  }

  private socketFor(channelId: string): BenchSocket {
    const s = this.sockets.get(channelId) ?? this.sockets.get("*");
    if (!s) throw new Error(`${this.key} has no socket for channel ${channelId}`);
    return s;
  }

  sendText(channelId: string, clientMsgId: string, text: string): void {
    this.socketFor(channelId).send({ type: pb.FrameType.SEND, send: { channel_id: channelId, client_msg_id: clientMsgId, content: { text: { text } } } });
  }

  /**
   * RESUME on every socket with the given cursors; resolves with the channel states of RESUMED
   * once every socket has answered. DELIVER frames before RESUMED go to the tracker as usual.
   */
  async resume(cursors: readonly ChannelCursor[], timeoutMs: number): Promise<ChannelCursor[]> {
    const sockets = [...new Set(this.sockets.values())];
    const answers = await Promise.all(sockets.map((s) => {
      const resumed = s.next((f) => f.type === pb.FrameType.RESUMED || f.type === pb.FrameType.ERROR, timeoutMs, "RESUMED");
      s.send({ type: pb.FrameType.RESUME, resume: { cursors: [...cursors], full: true } });
      return resumed;
    }));
    return answers.flatMap((f: Frame) => {
      if (f.type !== pb.FrameType.RESUMED) {
        throw Object.assign(new Error(`${this.key}: RESUME failed: ${f.error?.code} ${f.error?.message}`), { retryable: f.error?.retryable ?? false });
      }
      return (f.resumed?.channels ?? []).map((c) => ({ channel_id: c.channel_id ?? "", last_seq: Number(c.last_seq ?? 0) }));
    });
  }

  /** Pages one channel forward with PULL_HISTORY; resolves with the page's size and last seq. */
  async pullAfter(channelId: string, afterSeq: number, limit: number, timeoutMs: number): Promise<{ messages: number; lastSeq: number; hasMore: boolean }> {
    const s = this.socketFor(channelId);
    const requestId = s.send({ type: pb.FrameType.PULL_HISTORY, pull_history: { channel_id: channelId, after_seq: afterSeq, limit } });
    const f = await s.next((x) => x.request_id === requestId && (x.type === pb.FrameType.HISTORY_PAGE || x.type === pb.FrameType.ERROR), timeoutMs, "HISTORY_PAGE");
    if (f.type !== pb.FrameType.HISTORY_PAGE) throw new Error(`${this.key}: PULL_HISTORY failed: ${f.error?.code} ${f.error?.message}`);
    const messages = f.history_page?.messages ?? [];
    return { messages: messages.length, lastSeq: Number(messages.at(-1)?.seq ?? afterSeq), hasMore: f.history_page?.has_more ?? false };
  }

  async close(): Promise<void> {
    await Promise.all([...new Set(this.sockets.values())].map((s) => s.close()));
  }
}

function route(tracker: Tracker, device: string, f: Frame, at: number): void {
  const T = pb.FrameType;
  switch (f.type) {
    case T.SEND_ACK: tracker.onAck(f.send_ack?.client_msg_id ?? "", Number(f.send_ack?.seq ?? 0), at, f.send_ack?.status ?? "stored"); break;
    case T.DELIVER: for (const m of f.deliver?.messages ?? []) tracker.onDeliver(device, m, at); break;
    case T.HISTORY_PAGE: for (const m of f.history_page?.messages ?? []) tracker.onDeliver(device, m, at); break;
    case T.ERROR: tracker.onError(f.error?.client_msg_id ?? "", f.error?.code ?? "", f.error?.message ?? ""); break;
    default: break; // HELLO, RESUMED, CHANNEL_UPDATE, READ...: not measured
  }
}
