/**
 * What the loopback push providers (test/support/fake-push.ts) received, read over their HTTP
 * side door, and `until` (test/support/until.ts, re-exported) to wait for it. Plain `fetch` and
 * timers: tests inside workerd (the fake's URL from `inject("fakePushUrl")`) and on Node use both.
 *
 * @example
 * const push = await until("the first push", async () =>
 *   (await pushesTo(fakeUrl, "phone")).find((r) => r.payload?.channel_id === dm));
 */
import type { PushRecord } from "./fake-push.js";

export { until } from "./until.js";

/** Every request the fake got for `target` (a Web Push subscription name, an FCM or APNs token), in order. */
export async function pushesTo(fakeUrl: string, target: string): Promise<PushRecord[]> {
  const all = (await (await fetch(`${fakeUrl}/__records`)).json()) as PushRecord[];
  return all.filter((r) => r.target === target);
}
