/**
 * Throttling at the edge (issue: login, registration and channel creation had no limit). Each
 * limited key is a ThrottleObject; the rules come from the Worker's vars (wrangler.toml), so an
 * operator can tune them and tests can switch one off. docs/decisions/015-throttling.md.
 *
 * - login: a backoff per username (5 free failures by default) and per client address (20),
 *   checked before the password is, so a locked key costs no password hashing;
 * - registration: a bucket per client address;
 * - channel creation: a bucket per user.
 *
 * Refusals are `rate_limited` with `backoff_hint_ms`. A throttle object that does not answer in
 * time lets the request through and logs it: limits protect the service, they must not take it down.
 */
import { fail, type Failure } from "../../shared/errors.js";
import { DEADLINES, withDeadline } from "../../shared/deadline.js";
import { log } from "../../shared/log.js";
import type { BackoffRule, BucketRule, ThrottleObject } from "../../durable-objects/throttle/ThrottleObject.js";

type ThrottleVars = Partial<Record<
  | "LOGIN_FREE_FAILURES_PER_USERNAME" | "LOGIN_FREE_FAILURES_PER_ADDRESS" | "LOGIN_LOCKOUT_MAX_MS"
  | "REGISTER_BURST" | "REGISTER_EVERY_MS" | "CHANNEL_CREATE_BURST" | "CHANNEL_CREATE_EVERY_MS", string>>;

function num(value: string | undefined, fallback: number): number {
  const n = Number(value ?? fallback);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

export interface ThrottleRules {
  loginPerUsername: BackoffRule;
  loginPerAddress: BackoffRule;
  register: BucketRule;
  channelCreate: BucketRule;
}

export function throttleRules(env: ThrottleVars): ThrottleRules {
  const maxMs = num(env.LOGIN_LOCKOUT_MAX_MS, 15 * 60_000);
  const forgetMs = 60 * 60_000;
  return {
    loginPerUsername: { free: num(env.LOGIN_FREE_FAILURES_PER_USERNAME, 5), baseMs: 1_000, maxMs, forgetMs },
    loginPerAddress: { free: num(env.LOGIN_FREE_FAILURES_PER_ADDRESS, 20), baseMs: 1_000, maxMs, forgetMs },
    register: { burst: num(env.REGISTER_BURST, 10), everyMs: num(env.REGISTER_EVERY_MS, 6 * 60_000) },
    channelCreate: { burst: num(env.CHANNEL_CREATE_BURST, 20), everyMs: num(env.CHANNEL_CREATE_EVERY_MS, 30_000) },
  };
}

/**
 * The client's address as Cloudflare reports it (CF-Connecting-IP; wrangler dev sets it to the
 * local peer). Null only for requests that did not come through Cloudflare's edge (in-process
 * tests): those get no per-address limit.
 */
export function clientAddress(request: Request): string | null {
  return request.headers.get("CF-Connecting-IP");
}

function throttle(env: Env, key: string): DurableObjectStub<ThrottleObject> {
  return env.THROTTLE.get(env.THROTTLE.idFromName(key));
}

/** Runs a throttle call; one that fails or is late lets the request through (logged). */
async function ask(key: string, call: () => Promise<number>): Promise<number> {
  try {
    return await withDeadline(call(), DEADLINES.throttle, "throttle");
  } catch (err) {
    log("warn", "throttle.unanswered", { object: "worker", key: key.split(":")[0] }, err);
    return 0;
  }
}

function limited(waitMs: number, what: string): Failure {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  return fail("rate_limited", `${what} Try again in ${seconds} s.`, Math.ceil(waitMs));
}

const loginKeys = (username: string, address: string | null): string[] =>
  [`login-user:${username.toLowerCase()}`, ...(address ? [`login-addr:${address}`] : [])];

/** Before a password is checked: a Failure while the username or the address is locked out. */
export async function loginGate(env: Env, username: string, address: string | null): Promise<Failure | null> {
  const waits = await Promise.all(loginKeys(username, address).map((key) => ask(key, () => throttle(env, key).loginWait())));
  const wait = Math.max(0, ...waits);
  return wait > 0 ? limited(wait, "Too many failed sign-ins.") : null;
}

/** After the password was checked: counts a failure on both keys, clears the username's on success. */
export async function loginOutcome(env: Env, username: string, address: string | null, success: boolean): Promise<void> {
  const rules = throttleRules(env);
  const [userKey, addrKey] = loginKeys(username, address);
  await Promise.all([
    ask(userKey!, () => throttle(env, userKey!).loginResult(success, rules.loginPerUsername, true)),
    addrKey && !success ? ask(addrKey, () => throttle(env, addrKey).loginResult(false, rules.loginPerAddress, false)) : null,
  ]);
}

/** One registration from `address`: a Failure when the address registered too many accounts lately. */
export async function registrationGate(env: Env, address: string | null): Promise<Failure | null> {
  const rule = throttleRules(env).register;
  if (!address || rule.burst === 0) return null;
  const key = `register:${address}`;
  const wait = await ask(key, () => throttle(env, key).take(rule));
  return wait > 0 ? limited(wait, "Too many accounts were created from your network lately.") : null;
}

/** One channel created by `userId`: a Failure when they created too many lately. */
export async function channelCreationGate(env: Env, userId: string): Promise<Failure | null> {
  const rule = throttleRules(env).channelCreate;
  if (rule.burst === 0) return null;
  const key = `create:${userId}`;
  const wait = await ask(key, () => throttle(env, key).take(rule));
  return wait > 0 ? limited(wait, "You created many conversations in a short time.") : null;
}
