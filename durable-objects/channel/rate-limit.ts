/**
 * Per-sender token buckets for one channel (seed §7.2: 10 msg/s per sender per channel, plus a
 * small burst so pasting a few lines is not punished). In memory on purpose: after a restart
 * everyone starts with a full bucket, which errs on the side of letting people talk.
 */
export interface RateLimit {
  /** Sustained messages per second per sender; 0 turns the limit off. */
  perSecond: number;
  /** Messages a sender may send at once before the rate applies. */
  burst: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { perSecond: 10, burst: 20 };

/** Reads the limit from the Worker's vars, falling back to the default for anything unusable. */
export function rateLimitFromEnv(env: { SEND_RATE_PER_SECOND?: string; SEND_RATE_BURST?: string }): RateLimit {
  const perSecond = Number(env.SEND_RATE_PER_SECOND ?? DEFAULT_RATE_LIMIT.perSecond);
  const burst = Number(env.SEND_RATE_BURST ?? DEFAULT_RATE_LIMIT.burst);
  return {
    perSecond: Number.isFinite(perSecond) && perSecond >= 0 ? perSecond : DEFAULT_RATE_LIMIT.perSecond,
    burst: Number.isFinite(burst) && burst >= 1 ? burst : DEFAULT_RATE_LIMIT.burst,
  };
}

export class SenderRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(public limit: RateLimit) {}

  /**
   * Takes one token for `sender` at time `now`. Returns 0 when the message may go, otherwise how
   * many ms until a token is back (the backoff hint for the client).
   */
  take(sender: string, now: number): number {
    const { perSecond, burst } = this.limit;
    if (perSecond <= 0) return 0;
    const b = this.buckets.get(sender) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + (Math.max(0, now - b.at) * perSecond) / 1000);
    b.at = now;
    this.buckets.set(sender, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      if (this.buckets.size > 10_000) this.forgetFull(now);
      return 0;
    }
    return Math.ceil(((1 - b.tokens) * 1000) / perSecond);
  }

  /** Full buckets carry no information: drop them so a busy channel's map stays small. */
  private forgetFull(now: number): void {
    for (const [sender, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * this.limit.perSecond) / 1000 >= this.limit.burst) this.buckets.delete(sender);
    }
  }
}
