/**
 * Presence inside one UserObject: the user's one status, folded from their devices' sockets
 * (presence-link.ts `aggregateStatus`) and reported to their PresenceObject shard when it changes;
 * the keep-alive every TTL/3 while a device is connected (200 s with the 10-minute lease), which
 * renews the user's lease at the shard and the watches of their contacts, its due time kept on the
 * sockets so that no other wake repeats it (docs/decisions/028); and the contacts' current states
 * sent to the devices (after RESUME, and for contacts the user just gained). Everything here is
 * ephemeral: the next keep-alive repairs a call that was lost.
 */
import { pb, type FrameInit } from "../../protocol/codec.js";
import { sendFrame } from "../../shared/frames.js";
import type { ReportedStatus } from "../presence/PresenceObject.js";
import { aggregateStatus, type PresenceLink } from "./presence-link.js";
import { socketInfo } from "./socket-protocol.js";

export interface PresenceHost {
  userId(): string | undefined;
  /** The device sockets open now. */
  sockets(): WebSocket[];
  /** The user's `share_presence` setting (off: reported as hidden). */
  sharePresence(): boolean;
  /** Whose presence the user's devices show (people they share a DM or small group with). */
  contacts(): string[];
  /** The keep-alive's due time as the sockets keep it across hibernation (undefined: none known). */
  keptDue(): number | undefined;
  /** Keeps the keep-alive's due time on every open socket. */
  keepDue(at: number): void;
  /** The calls to the user's shard (a PresenceLink in the object). */
  link(userId: string): ShardLink;
  waitUntil(promise: Promise<unknown>): void;
}

export type ShardLink = Pick<PresenceLink, "report" | "watch" | "unwatch">;

/** The keep-alive's period for a presence TTL: a third of it, at least a second. */
export function keepAliveMs(ttlMs: number): number {
  return Math.max(1000, Math.floor(ttlMs / 3));
}

export class UserPresence {
  private link: ShardLink | undefined;
  /** When the keep-alive is next due, as this instance knows it (see `due()`). */
  private keepAliveAt: number | undefined;

  constructor(private readonly host: PresenceHost, private readonly ttlMs: number) {}

  /** A device came, went (`except`: the socket closing) or changed its status: tell the shard if the user's status changed. */
  changed(except?: WebSocket): void {
    const link = this.shardLink();
    if (!link) return;
    const status = this.status(except);
    this.host.waitUntil(link.report(status));
    if (status === "offline") this.host.waitUntil(link.unwatch(this.host.contacts()));
  }

  /** A device connected: when the keep-alive is due (now + period unless one is due sooner), kept on every socket. */
  connected(now: number): number {
    const due = this.due() ?? now + keepAliveMs(this.ttlMs);
    this.keepAliveAt = due;
    this.host.keepDue(due);
    return due;
  }

  /**
   * The alarm: while a device is connected and the keep-alive is due, the status again (the
   * shard's lease) and the contacts' watches extended. Not due: nothing, whatever woke the object.
   */
  async keepAlive(now: number): Promise<void> {
    if (this.host.sockets().length === 0) return;
    const due = this.due();
    if (due !== undefined && due > now) {
      this.keepAliveAt = due;
      return;
    }
    this.keepAliveAt = now + keepAliveMs(this.ttlMs);
    this.host.keepDue(this.keepAliveAt);
    const link = this.shardLink();
    if (!link) return;
    await link.report(this.status(), true);
    await link.watch(this.host.contacts()); // extends the subscriptions; the states are known already
  }

  /** When the alarm must come back for the keep-alive: only while a device is connected. */
  nextDue(): number | undefined {
    return this.host.sockets().length > 0 ? this.due() : undefined;
  }

  /** People the user shares a DM or small group with: whose presence their devices show. */
  contacts(): string[] {
    return this.host.contacts();
  }

  /** Watches `userIds` and sends their current presence to `sockets`. */
  async sendStates(userIds: string[], sockets: WebSocket[]): Promise<void> {
    const link = this.shardLink();
    if (!link || userIds.length === 0) return;
    for (const state of await link.watch(userIds)) {
      const frame: FrameInit = { type: pb.FrameType.PRESENCE, presence: state };
      for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) sendFrame(ws, frame, socketInfo(ws).encoding);
    }
  }

  /** The user gained contacts (a new DM or small group): their states to every connected device. */
  contactsAdded(userIds: string[]): void {
    const me = this.host.userId();
    const sockets = this.host.sockets();
    if (sockets.length > 0) this.host.waitUntil(this.sendStates(userIds.filter((id) => id !== me), sockets));
  }

  /** Erasure: the contacts are no longer watched. */
  async unwatchContacts(): Promise<void> {
    await this.shardLink()?.unwatch(this.host.contacts());
  }

  /** The object's storage was wiped: the link named a user who is gone. */
  reset(): void {
    this.link = undefined;
  }

  /** In memory, or else as the sockets kept it through hibernation; unknown after a restart (due now). */
  private due(): number | undefined {
    return this.keepAliveAt ?? this.host.keptDue();
  }

  private shardLink(): ShardLink | undefined {
    const me = this.host.userId();
    if (!this.link && me) this.link = this.host.link(me);
    return this.link;
  }

  private status(except?: WebSocket): ReportedStatus {
    const devices = this.host.sockets().filter((ws) => ws !== except).map((ws) => socketInfo(ws).status);
    return aggregateStatus(devices, this.host.sharePresence());
  }
}
