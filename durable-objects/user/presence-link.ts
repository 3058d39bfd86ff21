/**
 * The UserObject's side of presence: it folds its devices' states into the one status its
 * PresenceObject shard keeps, and watches the people the user shares small channels with.
 */
import { DEADLINES, withDeadline } from "../../shared/deadline.js";
import { log } from "../../shared/log.js";
import { count } from "../../shared/metrics.js";
import { byPresenceShard, presenceStub } from "../../shared/routing.js";
import type { PresenceState } from "../../protocol/types.js";
import type { ReportedStatus } from "../presence/PresenceObject.js";

export type DeviceStatus = "online" | "away";

/** Contacts watched at most (DESIGN.md: beyond that, presence is pulled on demand). */
export const MAX_WATCHED_CONTACTS = 1000;

/**
 * Any device in front of its user makes them online; devices that are all in the background
 * make them away; no device makes them offline. A user who does not share presence is hidden.
 */
export function aggregateStatus(devices: DeviceStatus[], sharePresence: boolean): ReportedStatus {
  if (devices.length === 0) return "offline";
  if (!sharePresence) return "hidden";
  return devices.includes("online") ? "online" : "away";
}

/**
 * Calls to the shards, in order: a report of "offline" must never overtake the "online" made
 * just before it (the runtime does not keep separate calls in the order they were made). Each
 * call has a deadline, so a shard that does not answer holds the chain up for at most that long
 * (a call given up on that lands late cannot undo a newer report: the shard ignores reports
 * older than the last it kept, and the next keep-alive repeats the current status).
 */
export class PresenceLink {
  private chain: Promise<unknown> = Promise.resolve();
  private reported: ReportedStatus | undefined;

  constructor(private readonly env: Env, private readonly userId: string) {}

  /** Reports `status` if it changed, or as a keep-alive when `refresh` is set. */
  report(status: ReportedStatus, refresh = false): Promise<unknown> {
    if (status === this.reported && !refresh) return this.chain;
    this.reported = status;
    const at = Date.now();
    count("presence.rpc", 1, { op: "report" });
    return this.enqueue(() => presenceStub(this.env, this.userId).report(this.userId, status, at));
  }

  /** Subscribes to the contacts' changes and returns their current states. */
  async watch(contacts: string[]): Promise<PresenceState[]> {
    const groups = byPresenceShard(contacts.slice(0, MAX_WATCHED_CONTACTS));
    count("presence.rpc", groups.length, { op: "watch" });
    const states = await this.enqueue(() => Promise.all(groups.map((ids) => presenceStub(this.env, ids[0]!).watch(this.userId, ids))));
    return (states ?? []).flat();
  }

  unwatch(contacts: string[]): Promise<unknown> {
    const groups = byPresenceShard(contacts.slice(0, MAX_WATCHED_CONTACTS));
    count("presence.rpc", groups.length, { op: "unwatch" });
    return this.enqueue(() => Promise.all(groups.map((ids) => presenceStub(this.env, ids[0]!).unwatch(this.userId))));
  }

  private enqueue<T>(call: () => Promise<T>): Promise<T | undefined> {
    const next = this.chain.then(() => withDeadline(call(), DEADLINES.presence, "presence")).catch((err: unknown) => {
      // Presence is ephemeral: the next keep-alive or watch corrects what this call missed.
      log("warn", "presence.call_failed", { object: "user", user_id: this.userId }, err);
      return undefined;
    });
    this.chain = next;
    return next;
  }
}
