/**
 * What a member's reading and typing tell the others: the read cursor moved (forward only) with an
 * opt-in read receipt to the other members' devices, and typing indicators, best effort and lossy
 * by design (seed §4.1): nothing about typing is stored, typing-guard.ts drops repeats and fast
 * flips, and a channel whose fan-out lags drops them first. Broadcast channels have neither.
 */
import type { Failure, Result } from "../../shared/errors.js";
import { count } from "../../shared/metrics.js";
import type { Membership } from "./membership.js";
import { TypingGuard } from "./typing-guard.js";
import type { ChannelSignal } from "./types.js";
import type { ChannelRow } from "./views.js";

export interface SignalsHost {
  members: Membership;
  /** The channel row (only asked for once the channel exists). */
  row(): ChannelRow;
  lastSeq(): number;
  requireMember(userId: string): Failure | undefined;
  unread(userId: string, lastRead: number): number;
  /** Whether the fan-out lags past the SLOWDOWN threshold (ChannelObject.pressure). */
  underPressure(): boolean;
  /** To the other members' devices (fanout.ts `signal`). */
  signal(fromUserId: string, event: ChannelSignal): void;
  now(): number;
}

export class Signals {
  /** Which typing indicators go out (on change, at most every few seconds per user). */
  private readonly typingGuard = new TypingGuard();

  constructor(private readonly host: SignalsHost) {}

  /**
   * Moves the member's read cursor forward (never back) and returns their unread count. With
   * `share`, the other members' devices get a read receipt and the channel's details show the
   * cursor; a reader who turns receipts on shares where they are at their next read.
   */
  markRead(userId: string, upToSeq: number, share: boolean): Result<{ last_read_seq: number; unread_count: number; moved: boolean }> {
    const { host } = this;
    const denied = host.requireMember(userId);
    if (denied) return denied;
    const target = Math.min(Math.max(0, Math.floor(upToSeq)), host.lastSeq());
    const moved = host.members.moveReadCursor(userId, target);
    const lastRead = host.members.readCursor(userId);
    const c = host.row();
    const shared = share && c.type !== "broadcast" ? host.members.shareReadCursor(userId) : undefined;
    if (shared !== undefined) host.signal(userId, { kind: "read", channel_id: c.channel_id, user_id: userId, up_to_seq: shared });
    return { ok: true, last_read_seq: lastRead, unread_count: host.unread(userId, lastRead), moved };
  }

  /** Passes a typing indicator to the other members' devices, unless dropped (see the file comment). */
  typing(userId: string, deviceId: string, isTyping: boolean): Result {
    const { host } = this;
    const denied = host.requireMember(userId);
    if (denied) return denied;
    const c = host.row();
    if (c.type === "broadcast") return { ok: true };
    if (!this.typingGuard.pass(userId, isTyping, host.now())) return { ok: true };
    if (host.underPressure()) {
      count("overload.dropped", 1, { object: "channel", kind: "typing" });
      return { ok: true };
    }
    count("typing.forwarded");
    host.signal(userId, { kind: "typing", channel_id: c.channel_id, user_id: userId, device_id: deviceId, is_typing: isTyping });
    return { ok: true };
  }
}
