/**
 * Waits for a positive marker, never a sleep: polls `get` until it gives something (neither
 * `undefined` nor `false`) and returns that; throws naming `what` after `timeoutMs`, with
 * `detail()` (e.g. the server's last log lines) appended. Plain timers: tests inside workerd and
 * on Node use the same one.
 *
 * @example
 * await until("bob has alice's message", () => seen.some((m) => m.seq === ack.seq));
 * const push = await until("the first push", async () => (await pushesTo(fakeUrl, "phone")).find((r) => r.payload?.channel_id === dm));
 */
export async function until<T>(
  what: string, get: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 60_000, intervalMs = 100, detail?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail ? `\n${detail()}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
