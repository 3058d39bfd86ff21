/**
 * The user's devices (at most LIMITS.maxDevicesPerUser) and what each confirmed holding per
 * channel (DELIVER_ACK), the cursor RESUME falls back on when the device sends none.
 *
 * Acks are not committed one by one (every connected device acks every message: a commit per
 * device per message). They wait in memory and are written together once they stop coming
 * (ACK_LINGER_MS after the newest), and at least every ACK_FLUSH_MAX_MS while they go on, from the
 * object's alarm: in a busy group every member's object would otherwise commit its acks a fixed
 * time after the first, all together, in the middle of the next post (the channel list's flush
 * did that, decision 034). An ack lost with the process costs nothing but a repeat: the device's
 * own cursors in RESUME come first, and a RESUME that falls back on the stored cursor re-sends at
 * most those seconds of messages, which clients drop by seq (they hold them already).
 *
 * `DeviceRegistry` is what the user manages them through: listing, registering, push, removal.
 */
import { fail, type Result } from "../../shared/errors.js";
import { LIMITS } from "../../protocol/limits.js";
import type { PushSubscriptionInput } from "../../protocol/push.js";
import type { Device } from "../../protocol/types.js";
import type { PushSubscriptions } from "./push-subscriptions.js";

export const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Waiting acks are written once none came for this long (under the ~10 s before an idle object hibernates). */
export const ACK_LINGER_MS = 5000;
/** ... and at least this long after the first one waiting, while they keep coming. */
export const ACK_FLUSH_MAX_MS = 30_000;

export class Devices {
  /** Acks not written yet: device → channel → seq. */
  private readonly pendingAcks = new Map<string, Map<string, number>>();
  private firstPendingAt: number | undefined;
  private lastAckAt = 0;

  /** @param onPending asks the host to call `flushAcks` by the given time (its alarm) */
  constructor(private readonly sql: SqlStorage, private readonly onPending: (flushBy: number) => void = () => {}) {}

  /** Oldest first; `connected` says which have an open socket now. */
  list(connected: ReadonlySet<string>): Device[] {
    return this.sql.exec<Omit<Device, "connected" | "push">>(
      "SELECT device_id, name, platform, created_at, last_seen_at FROM devices ORDER BY created_at",
    ).toArray().map((d) => ({ ...d, connected: connected.has(d.device_id) }));
  }

  /** Registers (or renames, or marks as seen) a device; a new device past the cap is refused. */
  register(deviceId: string, name: string, platform: string, connected: ReadonlySet<string>): Result<{ device: Device }> {
    const admitted = this.admit(deviceId, name, platform);
    if (!admitted.ok) return admitted;
    const device = this.list(connected).find((d) => d.device_id === deviceId)!;
    return { ok: true, device };
  }

  /** What a connect needs of `register`: the device recorded (or refused), without reading the list back. */
  admit(deviceId: string, name = "", platform = ""): Result {
    if (!DEVICE_ID.test(deviceId)) return fail("invalid_argument", "device_id must be 1-64 characters of A-Z a-z 0-9 _ -.");
    // One read for both questions: each SQL text an object runs stays compiled in its memory (decision 026).
    const { n, known } = this.sql.exec<{ n: number; known: number }>(
      "SELECT count(*) AS n, coalesce(max(device_id = ?), 0) AS known FROM devices", deviceId,
    ).one();
    if (known === 0 && n >= LIMITS.maxDevicesPerUser) {
      return fail("too_many_devices", `A user can have at most ${LIMITS.maxDevicesPerUser} devices; remove one with DELETE /v1/devices/{device_id}.`);
    }
    const now = Date.now();
    this.sql.exec(
      `INSERT INTO devices (device_id, name, platform, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (device_id) DO UPDATE SET last_seen_at = excluded.last_seen_at,
         name = CASE WHEN excluded.name != '' THEN excluded.name ELSE devices.name END,
         platform = CASE WHEN excluded.platform != '' THEN excluded.platform ELSE devices.platform END`,
      deviceId, name.slice(0, 100), platform.slice(0, 40), now, now,
    );
    return { ok: true };
  }

  /** Replaces a device's name and/or platform; false if there is no such device. */
  rename(deviceId: string, patch: { name?: string; platform?: string }): boolean {
    if (this.sql.exec("SELECT 1 FROM devices WHERE device_id = ?", deviceId).toArray().length === 0) return false;
    if (patch.name !== undefined) this.sql.exec("UPDATE devices SET name = ? WHERE device_id = ?", patch.name.slice(0, 100), deviceId);
    if (patch.platform !== undefined) this.sql.exec("UPDATE devices SET platform = ? WHERE device_id = ?", patch.platform.slice(0, 40), deviceId);
    return true;
  }

  /** Forgets a device and its cursors; false if there was no such device. */
  remove(deviceId: string): boolean {
    this.pendingAcks.delete(deviceId);
    const n = this.sql.exec("DELETE FROM devices WHERE device_id = ?", deviceId).rowsWritten;
    this.sql.exec("DELETE FROM device_cursors WHERE device_id = ?", deviceId);
    return n > 0;
  }

  touch(deviceId: string): void {
    this.sql.exec("UPDATE devices SET last_seen_at = ? WHERE device_id = ?", Date.now(), deviceId);
  }

  /**
   * A device's delivered cursor only moves forward; an ack at or below it changes nothing. Kept in
   * memory until `flushAcks`, which the first one waiting asks the host for.
   */
  recordDelivered(deviceId: string, channelId: string, seq: number, now = Date.now()): void {
    let cursors = this.pendingAcks.get(deviceId);
    if ((cursors?.get(channelId) ?? 0) >= seq) return;
    if (!cursors) this.pendingAcks.set(deviceId, (cursors = new Map()));
    cursors.set(channelId, seq);
    this.lastAckAt = now;
    if (this.firstPendingAt !== undefined) return;
    this.firstPendingAt = now;
    this.onPending(this.ackFlushDue()!);
  }

  /**
   * When the waiting acks are due to be written, if any wait. It only moves later as acks come,
   * so an alarm set for it at the first one is never late; one that fires early is set again.
   */
  ackFlushDue(): number | undefined {
    if (this.firstPendingAt === undefined) return undefined;
    return Math.min(this.lastAckAt + ACK_LINGER_MS, this.firstPendingAt + ACK_FLUSH_MAX_MS);
  }

  /** Writes every waiting ack in one turn (one commit); acks of devices removed meanwhile are dropped. */
  flushAcks(): number {
    let n = 0;
    for (const [deviceId, cursors] of this.pendingAcks) {
      for (const [channelId, seq] of cursors) {
        n++;
        this.sql.exec(
          `INSERT INTO device_cursors (device_id, channel_id, delivered_seq)
           SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM devices WHERE device_id = ?)
           ON CONFLICT (device_id, channel_id) DO UPDATE SET delivered_seq = excluded.delivered_seq
           WHERE excluded.delivered_seq > device_cursors.delivered_seq`,
          deviceId, channelId, seq, deviceId,
        );
      }
    }
    this.pendingAcks.clear();
    this.firstPendingAt = undefined;
    return n;
  }

  /** channel_id → delivered seq for one device, the waiting acks included. */
  deliveredCursors(deviceId: string): Map<string, number> {
    const cursors = new Map(this.sql.exec<{ channel_id: string; delivered_seq: number }>(
      "SELECT channel_id, delivered_seq FROM device_cursors WHERE device_id = ?", deviceId,
    ).toArray().map((r) => [r.channel_id, r.delivered_seq]));
    for (const [channelId, seq] of this.pendingAcks.get(deviceId) ?? []) cursors.set(channelId, Math.max(seq, cursors.get(channelId) ?? 0));
    return cursors;
  }
}

export interface RegistryHost {
  devices: Devices;
  subscriptions: PushSubscriptions;
  /** The session each device last connected with (sessions.ts). */
  sessionsByDevice(): Map<string, string>;
  /** Devices with a socket open now. */
  connected(): Set<string>;
  /** Closes the device's sockets (it was removed). */
  closeSockets(deviceId: string): void;
  /** A push subscription was added: the user watches their channels even while offline. */
  subscribed(): void;
}

/**
 * The devices as the user manages them (GET/POST/PATCH/DELETE /v1/devices): each with its push
 * subscription's state and the session it last connected with.
 */
export class DeviceRegistry {
  constructor(private readonly host: RegistryHost) {}

  list(): Device[] {
    const push = this.host.subscriptions.states();
    const sessions = this.host.sessionsByDevice();
    return this.host.devices.list(this.host.connected()).map((d) => {
      const sessionId = sessions.get(d.device_id);
      const device = { ...d, push: push.get(d.device_id) ?? null };
      return sessionId ? { ...device, session_id: sessionId } : device;
    });
  }

  /**
   * Registers (or renames) a device; a new device past the cap is refused. `push` replaces the
   * device's push subscription (null removes it; undefined leaves it as it is). Callers validate it.
   */
  register(deviceId: string, name: string, platform: string, push?: PushSubscriptionInput | null): Result<{ device: Device }> {
    const registered = this.host.devices.register(deviceId, name, platform, this.host.connected());
    if (!registered.ok) return registered;
    if (push !== undefined) this.setPush(deviceId, push);
    return { ok: true, device: this.device(deviceId)! };
  }

  /** Replaces the fields given; `push: null` removes the subscription. */
  update(deviceId: string, patch: { name?: string; platform?: string; push?: PushSubscriptionInput | null }): Result<{ device: Device }> {
    if (!this.host.devices.rename(deviceId, patch)) return fail("not_found", "No such device.");
    if (patch.push !== undefined) this.setPush(deviceId, patch.push);
    return { ok: true, device: this.device(deviceId)! };
  }

  /** Forgets a device and closes its socket. */
  remove(deviceId: string): boolean {
    const removed = this.host.devices.remove(deviceId);
    this.host.subscriptions.forget();
    this.host.closeSockets(deviceId);
    return removed;
  }

  /**
   * A user with a push subscription watches their channels even while offline (deliveries then
   * go to push): a new subscription starts the watching, a removed one lets the next delivery
   * that finds no socket drop the watcher.
   */
  private setPush(deviceId: string, push: PushSubscriptionInput | null): void {
    this.host.subscriptions.set(deviceId, push);
    if (push !== null) this.host.subscribed();
  }

  private device(deviceId: string): Device | undefined {
    return this.list().find((d) => d.device_id === deviceId);
  }
}
