/**
 * A deadline on one call between objects. Nothing in a fan-out, relay or RESUME path may wait for
 * ever on another object: a call that has not answered within `ms` is treated as failed and goes
 * down the caller's retry path. The call itself may still complete later; callers must be
 * idempotent about that (deliveries are filtered by seq on the receiving side).
 *
 * The timer only runs while the object is busy awaiting the call anyway, and is cleared as soon
 * as the call settles, so it never keeps an idle (hibernatable) object awake.
 *
 * @example
 * const outcome = await withDeadline(stub.deliver(batch), 10_000, "deliver");
 */
export class DeadlineError extends Error {
  readonly retryable = true;
  constructor(what: string, ms: number) {
    super(`${what}: no answer within ${ms} ms`);
    this.name = "DeadlineError";
  }
}

export function withDeadline<T>(call: Promise<T>, ms: number, what = "call"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
  });
  // A call that loses the race must not surface later as an unhandled rejection.
  call.catch(() => {});
  return Promise.race([call, expired]).finally(() => clearTimeout(timer));
}

/** Runs `work` over `items` with at most `limit` in flight; resolves when all have settled. */
export async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
}
