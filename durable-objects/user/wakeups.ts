/**
 * A Durable Object has one alarm; the UserObject needs it for several things (the presence
 * keep-alive, SEND deadlines, send_seq gaps). Each asks for "no later than t"; the alarm is moved
 * only when that is earlier than what is set, so a busy object writes it rarely. The alarm
 * handler runs every concern's check and re-arms for the earliest time still needed.
 *
 * Alarms, not timers: a pending setTimeout keeps a hibernatable object awake.
 */
export class Wakeups {
  /** The alarm as last set or read; null when none is pending. */
  private armedAt: number | null = null;

  constructor(private readonly storage: Pick<DurableObjectStorage, "getAlarm" | "setAlarm">) {}

  /** Reads the pending alarm; call once when the object starts (under blockConcurrencyWhile). */
  async load(): Promise<void> {
    this.armedAt = await this.storage.getAlarm();
  }

  /** Makes sure the alarm fires no later than `at`. */
  atOrBefore(at: number): void {
    if (this.armedAt !== null && this.armedAt <= at) return;
    this.armedAt = at;
    void this.storage.setAlarm(at);
  }

  /**
   * How late the alarm that is firing runs, against the time it was set for (0 when unknown).
   * Call before `fired()`. A late alarm means the object's thread was behind, and so were its
   * sockets' reads: the idle check allows for it (socket-protocol.ts `closeIdleSockets`).
   */
  lateBy(now: number): number {
    return this.armedAt !== null && this.armedAt < now ? now - this.armedAt : 0;
  }

  /** The alarm fired: nothing is pending until someone asks again. */
  fired(): void {
    this.armedAt = null;
  }
}
