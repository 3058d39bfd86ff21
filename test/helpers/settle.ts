/**
 * A test file that ends by closing sockets leaves each user's object reporting to its presence
 * shard; if the file's environment is torn down first, those calls fail noisily. Wait until the
 * shard shows everyone offline (a positive marker, not a sleep).
 */
import { call, type TestUser } from "./api.js";

export async function untilOffline(viewer: TestUser, users: TestUser[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await call<{ presence?: { status: string }[] }>("GET", `/v1/presence?user_ids=${users.map((u) => u.user_id).join(",")}`, { token: viewer.access_token });
    if (r.body.presence?.every((p) => p.status === "offline")) return;
    if (Date.now() > deadline) throw new Error(`presence never settled: ${JSON.stringify(r.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
