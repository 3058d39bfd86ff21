/**
 * Is an access token's session still signed in? Access tokens are stateless JWTs, so a signed-out
 * session's tokens would otherwise work until they expire (15 min). The user's UserObject owns
 * the sessions; the Worker asks it, and remembers an "active" answer in this isolate for at most
 * ACTIVE_CACHE_MS, so a burst of requests costs one RPC and a sign-out takes effect everywhere
 * within that time (docs/decisions/011 has the cost measured). A "signed out" answer is final and
 * kept until it falls out of the bounded cache.
 *
 * Sockets need none of this: the UserObject checks the session itself when a socket connects and
 * closes a session's sockets when it is signed out.
 */
import { DEADLINES, withDeadline } from "../../shared/deadline.js";
import { userStub } from "../../shared/routing.js";
import { LruMap } from "../../shared/lru.js";

/** How long this isolate trusts an "active" answer. */
export const ACTIVE_CACHE_MS = 1000;
/** Sessions remembered per isolate. */
const CACHE_MAX = 10_000;

const cache = new LruMap<string, { active: boolean; at: number }>(CACHE_MAX);

export async function sessionActive(env: Env, userId: string, sessionId: string, now = Date.now()): Promise<boolean> {
  const key = `${userId}/${sessionId}`;
  const hit = cache.get(key);
  if (hit && (!hit.active || now - hit.at < ACTIVE_CACHE_MS)) return hit.active;
  // No answer in time: the request fails with a retryable unavailable (never "active" by default).
  const active = await withDeadline(userStub(env, userId).sessionActive(sessionId), DEADLINES.account, "session.active");
  cache.set(key, { active, at: now });
  return active;
}

/** This isolate just signed `sessionId` out: refuse its tokens here at once, not in a second. */
export function forgetSession(userId: string, sessionId: string): void {
  cache.set(`${userId}/${sessionId}`, { active: false, at: Date.now() });
}
