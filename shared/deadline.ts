/**
 * Deadlines for calls between objects. A Durable Object call has no timeout of its own: a callee
 * that is overloaded, stuck behind a long queue or restarting makes its caller wait as long as it
 * does. `withDeadline` gives up waiting after `ms` (the call itself may still complete: callees
 * must be safe to retry, which every edgechat RPC is). Timers are fine here: the caller is
 * awaiting a call, so it is awake anyway.
 *
 * @example
 * await withDeadline(presenceStub(env, id).report(id, "online", now), 2_000, "presence.report");
 */

/** The call did not answer within its deadline. Retryable: the callee may just be slow. */
export class DeadlineError extends Error {
  override readonly name = "DeadlineError";
  readonly retryable = true;
  constructor(readonly what: string, readonly ms: number) {
    super(`${what}: no answer within ${ms} ms`);
  }
}

/** `call`'s result, or a DeadlineError once `ms` have passed without one. */
export function withDeadline<T>(call: Promise<T>, ms: number, what = "call"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
  });
  // A call that loses the race must not surface later as an unhandled rejection.
  call.catch(() => {});
  return Promise.race([call, late]).finally(() => clearTimeout(timer));
}

/**
 * Many calls under the same deadline, with one timer between them where `withDeadline` starts and
 * clears one per call. A fan-out round makes one call per member, and under nodejs_compat each
 * setTimeout/clearTimeout pair costs tens of microseconds: in a CPU profile of a post to 1,000
 * members, the per-call timers were a third of the isolate's JavaScript time.
 *
 * Calls with one `ms` expire in the order they started, so the pending ones are a queue and the
 * one timer waits for the oldest. It is cleared when the last pending call answers; a call that
 * answers is only marked, and the timer skips it when it fires.
 *
 * @example
 * const deadline = new SharedDeadline(5_000, "deliver to user");
 * await Promise.all(targets.map((t) => deadline.run(stub(t).deliver(batch))));
 */
export class SharedDeadline {
  private queue: { at: number; reject: (err: DeadlineError) => void; done: boolean }[] = [];
  private head = 0;
  private pending = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly ms: number, readonly what = "call", private readonly now: () => number = Date.now) {}

  /** `call`'s result, or a DeadlineError once `ms` have passed without one. */
  run<T>(call: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry = { at: this.now() + this.ms, reject, done: false };
      this.queue.push(entry);
      this.pending++;
      this.timer ??= setTimeout(() => this.expire(), this.ms);
      call.then(
        (value) => { if (this.settle(entry)) resolve(value); },
        (err: unknown) => { if (this.settle(entry)) reject(err); },
      );
    });
  }

  /** Calls waiting for an answer (for tests). */
  get waiting(): number {
    return this.pending;
  }

  /** Marks `entry` answered; false if its deadline had already passed. */
  private settle(entry: { done: boolean }): boolean {
    if (entry.done) return false;
    entry.done = true;
    if (--this.pending === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.queue = [];
      this.head = 0;
    }
    return true;
  }

  private expire(): void {
    this.timer = undefined;
    const now = this.now();
    while (this.head < this.queue.length) {
      const entry = this.queue[this.head]!;
      if (!entry.done) {
        if (entry.at > now) break;
        entry.done = true;
        this.pending--;
        entry.reject(new DeadlineError(this.what, this.ms));
      }
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    const next = this.queue[this.head];
    if (next) this.timer = setTimeout(() => this.expire(), Math.max(1, next.at - now));
  }
}

/** Deadlines, in ms, for the calls edgechat makes between its objects (one place to tune them). */
export const DEADLINES = {
  /** A throttle check (login, registration, channel creation). */
  throttle: 2_000,
  /** A presence report, watch or lookup made by a UserObject or the Worker. */
  presence: 3_000,
  /** One presence delta to one subscriber's UserObject. */
  presenceDelta: 2_000,
  /** Account and session calls from the Worker to a UserObject. */
  account: 5_000,
} as const;

/** Maps `items` through `fn` with at most `limit` calls in flight; results keep the order of `items`. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return out;
}

/** Runs `work` over `items` with at most `limit` in flight; resolves when all are done. */
export async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  await mapLimited(items, limit, work);
}
