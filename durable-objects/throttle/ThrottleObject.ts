/**
 * ThrottleObject: one small object per throttled key ("login-user:alice", "login-addr:198.51.100.7",
 * "register:198.51.100.7", "create:u_…"), so limits hold across every isolate and location and
 * keys never contend with each other (docs/decisions/015-throttling.md says why not the Rate
 * Limiting binding). Its state is two or three numbers in the object's synchronous KV storage,
 * and it deletes itself (deleteAll from its alarm) once it holds nothing worth remembering.
 *
 * Two shapes of limit:
 * - a token bucket (`take`): `burst` actions at once, then one more every `everyMs`;
 * - login backoff (`loginWait` before checking a password, `loginResult` after): `free` failures
 *   are allowed, each further one locks the key for twice as long as the last (1 s, 2 s, 4 s …
 *   up to `maxMs`); a success clears the key; failures are forgotten `forgetMs` after the last.
 *
 * Both answer 0 (go ahead) or how many ms to wait: the `backoff_hint_ms` of a rate_limited answer.
 */
import { DurableObject } from "cloudflare:workers";

export interface BucketRule {
  /** Actions allowed at once; 0 turns the limit off. */
  burst: number;
  /** One more action is allowed every this many ms. */
  everyMs: number;
}

export interface BackoffRule {
  /** Failures allowed before the first lockout. */
  free: number;
  /** The first lockout; each later failure doubles it. */
  baseMs: number;
  /** The longest lockout. */
  maxMs: number;
  /** Failures are forgotten this long after the last one. */
  forgetMs: number;
}

interface Bucket { tokens: number; at: number }
interface Failures { count: number; last: number; lockedUntil: number }

export class ThrottleObject extends DurableObject<Env> {
  private readonly kv: SyncKvStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.kv = ctx.storage.kv;
  }

  /** Takes one action from the bucket: 0 if it may go, else ms until the next one may. */
  take(rule: BucketRule, now = Date.now()): number {
    if (!(rule.burst > 0) || !(rule.everyMs > 0)) return 0;
    const b = this.kv.get<Bucket>("bucket") ?? { tokens: rule.burst, at: now };
    const tokens = Math.min(rule.burst, b.tokens + Math.max(0, now - b.at) / rule.everyMs);
    if (tokens < 1) {
      this.kv.put("bucket", { tokens, at: now });
      return Math.ceil((1 - tokens) * rule.everyMs);
    }
    this.kv.put("bucket", { tokens: tokens - 1, at: now });
    // Full again after this long: nothing left to remember.
    this.forgetAt(now + Math.ceil((rule.burst - tokens + 1) * rule.everyMs));
    return 0;
  }

  /** Before checking a password: 0, or ms until this key may try again. */
  loginWait(now = Date.now()): number {
    const f = this.kv.get<Failures>("failures");
    return f && f.lockedUntil > now ? f.lockedUntil - now : 0;
  }

  /**
   * After checking a password. A success clears the key (`clearOnSuccess`: per username, not per
   * address, or an attacker would reset their address with their own account). A failure counts,
   * and past `free` locks the key; returns the lockout now in force (0 for none).
   */
  loginResult(success: boolean, rule: BackoffRule, clearOnSuccess: boolean, now = Date.now()): number {
    if (success) {
      if (clearOnSuccess) this.clear();
      return 0;
    }
    const prev = this.kv.get<Failures>("failures");
    const count = prev && now - prev.last < rule.forgetMs ? prev.count + 1 : 1;
    const over = count - rule.free;
    const lockMs = over > 0 ? Math.min(rule.maxMs, rule.baseMs * 2 ** Math.min(over - 1, 30)) : 0;
    const lockedUntil = Math.max(prev?.lockedUntil ?? 0, now + lockMs);
    this.kv.put("failures", { count, last: now, lockedUntil } satisfies Failures);
    this.forgetAt(Math.max(now + rule.forgetMs, lockedUntil));
    return lockedUntil > now ? lockedUntil - now : 0;
  }

  /** Nothing left to remember: storage (and with it the object) goes. */
  override async alarm(): Promise<void> {
    const until = this.kv.get<number>("until") ?? 0;
    if (until > Date.now()) {
      await this.ctx.storage.setAlarm(until);
      return;
    }
    this.clear();
  }

  /** Keeps the state at least until `at`, and lets the alarm delete it then. */
  private forgetAt(at: number): void {
    const until = this.kv.get<number>("until") ?? 0;
    if (at <= until) return;
    this.kv.put("until", at);
    void this.ctx.storage.setAlarm(at);
  }

  private clear(): void {
    void this.ctx.storage.deleteAll();
  }
}
