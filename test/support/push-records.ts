/**
 * What the loopback push providers (test/support/fake-push.ts) received, read over their HTTP
 * side door, and a poll that waits for it. Plain `fetch` and timers: tests inside workerd (the
 * fake's URL from `inject("fakePushUrl")`) and on Node use the same two.
 *
 * @example
 * const push = await until("the first push", async () =>
 *   (await pushesTo(fakeUrl, "phone")).find((r) => r.payload?.channel_id === dm));
 */
import type { PushRecord } from "./fake-push.js";

/** Every request the fake got for `target` (a Web Push subscription name, an FCM or APNs token), in order. */
export async function pushesTo(fakeUrl: string, target: string): Promise<PushRecord[]> {
  const all = (await (await fetch(`${fakeUrl}/__records`)).json()) as PushRecord[];
  return all.filter((r) => r.target === target);
}

/**
 * Polls `get` until it gives something (neither `undefined` nor `false`) and returns that;
 * throws naming `what` after `timeoutMs`. A positive marker to wait for, never a sleep.
 */
export async function until<T>(what: string, get: () => Promise<T | undefined | false>, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
