/**
 * The outbox: every outgoing message from `send()` until the server acknowledges it.
 *
 * Delivery is at-least-once with server dedup: an entry keeps its client_msg_id across every
 * retry (socket drops, reloads via the storage adapter, retryable ERRORs), and the server returns
 * the original ids for a repeat (`status: "duplicate"`). The outbox only decides *what* to send
 * next; the client writes the frames.
 *
 * Per-channel order: entries go out in the order they were queued. When one is held back (a
 * retryable error with a backoff hint), later entries of the same channel wait behind it.
 */
import { EdgechatError } from "./errors.js";
import type { Clock, OutboxEntry, OutboxStorage, SendAck, SendContent } from "./types.js";

interface Slot {
  entry: OutboxEntry;
  /** request_id of the SEND in flight on the current socket. */
  inFlight: number | undefined;
  /** When the entry may be sent again (retryable error). */
  notBefore: number;
  retries: number;
  waiters: { resolve(ack: SendAck): void; reject(err: EdgechatError): void }[];
}

export interface OutboxHooks {
  /** An entry was added or changed state. */
  changed(entry: OutboxEntry): void;
  storageFailed(err: unknown): void;
}

/** A snapshot, so callers cannot mutate the outbox's own records. */
function copy(entry: OutboxEntry): OutboxEntry {
  return { ...entry, ...(entry.ack ? { ack: { ...entry.ack } } : {}), ...(entry.error ? { error: { ...entry.error } } : {}) };
}

export class Outbox {
  private readonly slots = new Map<string, Slot>();
  private pausedUntil = 0;
  private userId: string | undefined;

  constructor(
    private readonly storage: OutboxStorage,
    private readonly clock: Clock,
    private readonly hooks: OutboxHooks,
  ) {}

  /** Restores persisted entries (sending and failed ones) queued before a reload. */
  async restore(): Promise<void> {
    let stored: OutboxEntry[];
    try {
      stored = await this.storage.load();
    } catch (err) {
      this.hooks.storageFailed(err);
      return;
    }
    stored.sort((a, b) => a.created_at - b.created_at);
    const restored = new Map<string, Slot>();
    for (const entry of stored) {
      if (entry.state === "sent" || this.slots.has(entry.client_msg_id)) continue;
      restored.set(entry.client_msg_id, { entry: { ...entry }, inFlight: undefined, notBefore: 0, retries: 0, waiters: [] });
    }
    // Restored entries are older than anything queued since construction: keep them first.
    const current = [...this.slots];
    this.slots.clear();
    for (const [id, slot] of restored) this.slots.set(id, slot);
    for (const [id, slot] of current) this.slots.set(id, slot);
    for (const slot of restored.values()) this.hooks.changed(copy(slot.entry));
  }

  /** The account sending now; entries queued by another account are left alone. */
  setUser(userId: string): void {
    this.userId = userId;
    for (const slot of this.slots.values()) {
      if (slot.entry.user_id === undefined) {
        slot.entry.user_id = userId;
        this.persist(slot.entry);
      }
    }
  }

  /** Queues a message; an id already queued joins that entry (same ack) instead of adding one. */
  add(clientMsgId: string, channelId: string, content: SendContent): { entry: OutboxEntry; ack: Promise<SendAck> } {
    const queued = this.slots.get(clientMsgId);
    if (queued) return { entry: copy(queued.entry), ack: this.wait(queued) };
    const entry: OutboxEntry = {
      client_msg_id: clientMsgId, channel_id: channelId, content, created_at: this.clock.now(), state: "sending", attempts: 0,
    };
    if (this.userId !== undefined) entry.user_id = this.userId;
    const slot: Slot = { entry, inFlight: undefined, notBefore: 0, retries: 0, waiters: [] };
    const ack = this.wait(slot);
    this.slots.set(clientMsgId, slot);
    this.persist(entry);
    this.hooks.changed(copy(entry));
    return { entry: copy(entry), ack };
  }

  private wait(slot: Slot): Promise<SendAck> {
    const ack = new Promise<SendAck>((resolve, reject) => slot.waiters.push({ resolve, reject }));
    // Callers may ignore the promise (failures also arrive as `outbox` events): never let a
    // rejection go unhandled. Awaiting it still sees the rejection.
    ack.catch(() => {});
    return ack;
  }

  get(clientMsgId: string): OutboxEntry | undefined {
    const slot = this.slots.get(clientMsgId);
    return slot ? copy(slot.entry) : undefined;
  }

  /** Entries still sending or failed, oldest first. */
  list(): OutboxEntry[] {
    return [...this.slots.values()].map((s) => copy(s.entry));
  }

  inFlightCount(): number {
    let n = 0;
    for (const slot of this.slots.values()) if (slot.inFlight !== undefined) n++;
    return n;
  }

  /** SLOWDOWN: send nothing new until then. */
  pause(untilMs: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, untilMs);
  }

  /**
   * Entries to send now, at most `window - inFlight` of them. Also returns when to look again
   * if something is waiting on a timer (a pause or a backoff).
   */
  due(window: number): { entries: OutboxEntry[]; wakeAt: number | undefined } {
    const now = this.clock.now();
    if (now < this.pausedUntil) return { entries: [], wakeAt: this.pausedUntil };
    let room = window - this.inFlightCount();
    const entries: OutboxEntry[] = [];
    const blocked = new Set<string>();
    let wakeAt: number | undefined;
    for (const slot of this.slots.values()) {
      const e = slot.entry;
      if (e.state !== "sending" || (this.userId !== undefined && e.user_id !== undefined && e.user_id !== this.userId)) continue;
      if (slot.inFlight !== undefined) continue;
      if (blocked.has(e.channel_id)) continue;
      if (slot.notBefore > now) {
        blocked.add(e.channel_id);
        wakeAt = wakeAt === undefined ? slot.notBefore : Math.min(wakeAt, slot.notBefore);
        continue;
      }
      if (room <= 0) break;
      entries.push(copy(e));
      room--;
    }
    return { entries, wakeAt };
  }

  markSent(clientMsgId: string, requestId: number): void {
    const slot = this.slots.get(clientMsgId);
    if (!slot) return;
    slot.inFlight = requestId;
    slot.entry.attempts += 1;
    this.persist(slot.entry);
  }

  byRequestId(requestId: number): string | undefined {
    for (const [id, slot] of this.slots) if (slot.inFlight === requestId) return id;
    return undefined;
  }

  /** request_id of the entry's SEND in flight, if any. */
  byClientMsgId(clientMsgId: string): number | undefined {
    return this.slots.get(clientMsgId)?.inFlight;
  }

  /** Not acknowledged yet: sending, or failed (the server may still have stored it). */
  isPending(clientMsgId: string): boolean {
    return this.slots.has(clientMsgId);
  }

  /**
   * SEND_ACK (or our own message seen in a DELIVER / history page). Returns the entry once. A
   * failed entry counts too: if the server stored it after all, the server is right.
   */
  acknowledge(ack: SendAck): OutboxEntry | undefined {
    const slot = this.slots.get(ack.client_msg_id);
    if (!slot) return undefined;
    slot.entry.state = "sent";
    delete slot.entry.error;
    slot.entry.ack = ack;
    slot.inFlight = undefined;
    this.slots.delete(ack.client_msg_id);
    this.forget(ack.client_msg_id);
    const entry = copy(slot.entry);
    for (const w of slot.waiters) w.resolve(ack);
    this.hooks.changed(entry);
    return entry;
  }

  /**
   * ERROR for a SEND. Retryable errors hold the entry back for the hint (or a growing delay);
   * anything else fails it for good.
   */
  fail(clientMsgId: string, err: EdgechatError, retryDelayMs: (retries: number) => number): void {
    const slot = this.slots.get(clientMsgId);
    if (!slot || slot.entry.state !== "sending") return;
    slot.inFlight = undefined;
    if (err.retryable) {
      slot.notBefore = this.clock.now() + Math.max(err.backoffHintMs ?? 0, retryDelayMs(slot.retries));
      slot.retries += 1;
      return;
    }
    slot.entry.state = "failed";
    slot.entry.error = { code: err.code, message: err.message };
    this.persist(slot.entry);
    const waiters = slot.waiters.splice(0);
    for (const w of waiters) w.reject(err);
    this.hooks.changed(copy(slot.entry));
  }

  /** A SEND went unanswered: send it again (same client_msg_id). */
  requeue(clientMsgId: string): void {
    const slot = this.slots.get(clientMsgId);
    if (slot) slot.inFlight = undefined;
  }

  /** The socket dropped: everything in flight goes out again on the next connection. */
  requeueAll(): void {
    for (const slot of this.slots.values()) slot.inFlight = undefined;
  }

  /** Puts a failed entry back in the queue (same client_msg_id). Returns a promise of its ack. */
  retry(clientMsgId: string): Promise<SendAck> | undefined {
    const slot = this.slots.get(clientMsgId);
    if (!slot) return undefined;
    const ack = this.wait(slot);
    if (slot.entry.state === "failed") {
      slot.entry.state = "sending";
      delete slot.entry.error;
      slot.notBefore = 0;
      slot.retries = 0;
      this.persist(slot.entry);
      this.hooks.changed(copy(slot.entry));
    }
    return ack;
  }

  /**
   * Drops an entry. If it was already written to a socket, the server may still store it; the
   * ack is then ignored.
   */
  discard(clientMsgId: string): boolean {
    const slot = this.slots.get(clientMsgId);
    if (!slot) return false;
    this.slots.delete(clientMsgId);
    this.forget(clientMsgId);
    const err = new EdgechatError({ code: "discarded", message: "The message was discarded before it was sent.", clientMsgId });
    for (const w of slot.waiters) w.reject(err);
    return true;
  }

  private persist(entry: OutboxEntry): void {
    this.storage.put(copy(entry)).catch((err: unknown) => this.hooks.storageFailed(err));
  }

  private forget(clientMsgId: string): void {
    this.storage.delete(clientMsgId).catch((err: unknown) => this.hooks.storageFailed(err));
  }
}

/**
 * The default storage: memory only, so sends survive reconnects but not a reload.
 *
 * @example
 * const client = createClient({ url, deviceId, storage: memoryStorage() });
 */
export function memoryStorage(): OutboxStorage {
  const entries = new Map<string, OutboxEntry>();
  return {
    load: async () => [...entries.values()].map(copy),
    put: async (entry) => {
      entries.set(entry.client_msg_id, copy(entry));
    },
    delete: async (clientMsgId) => {
      entries.delete(clientMsgId);
    },
  };
}
