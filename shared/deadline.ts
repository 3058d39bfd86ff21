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
