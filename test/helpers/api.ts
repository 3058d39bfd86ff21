/** REST helpers for in-workerd tests: real requests through the Worker's fetch handler. */
import { SELF } from "cloudflare:test";

export const BASE = "http://edgechat.test";

export interface TestUser {
  user_id: string;
  username: string;
  display_name: string;
  access_token: string;
  refresh_token: string;
}

let counter = 0;
/** A unique username per call, so tests in one file never collide. */
export function uniqueName(prefix = "user"): string {
  counter++;
  return `${prefix}${counter}_${Math.random().toString(36).slice(2, 7)}`;
}

export async function call<T = Record<string, unknown>>(
  method: string, path: string, opts: { token?: string; body?: unknown; rawBody?: string } = {},
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined || opts.rawBody !== undefined) headers["Content-Type"] = "application/json";
  const res = await SELF.fetch(`${BASE}${path}`, {
    method, headers, body: opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T };
}

export async function register(prefix = "user", password = "correct horse battery"): Promise<TestUser> {
  const username = uniqueName(prefix);
  const r = await call<TestUser>("POST", "/v1/auth/register", { body: { username, password } });
  if (r.status !== 201) throw new Error(`register failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export interface ChannelBody { channel: { channel_id: string; member_count: number; last_seq: number; member_list: { user_id: string; role: string }[] } }

/**
 * Waits until `channelId` is in `user`'s channel list (or, with `left`, marked left there).
 * Members other than the creator hear of a channel from its notice pump, off the creator's path.
 */
export async function waitListed(user: TestUser, channelId: string, { left = false, timeoutMs = 15_000 } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await call<{ channels: { channel_id: string }[] }>("GET", "/v1/channels", { token: user.access_token });
    const listed = r.body.channels?.some((c) => c.channel_id === channelId) ?? false;
    if (listed !== left) return;
    if (Date.now() > deadline) throw new Error(`${user.username}: channel ${channelId} not ${left ? "left" : "listed"} within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 25));
  }
}

/** Creates a group and waits until every member's list shows it. */
export async function createGroup(owner: TestUser, members: TestUser[], name = "Team"): Promise<string> {
  const r = await call<ChannelBody>("POST", "/v1/channels", { token: owner.access_token, body: { type: "group", name, members: members.map((m) => m.user_id) } });
  if (r.status !== 201) throw new Error(`create group failed: ${r.status} ${JSON.stringify(r.body)}`);
  await Promise.all(members.map((m) => waitListed(m, r.body.channel.channel_id)));
  return r.body.channel.channel_id;
}

/** Creates (or finds) the DM and waits until both lists show it. */
export async function createDm(a: TestUser, b: TestUser): Promise<string> {
  const r = await call<ChannelBody>("POST", "/v1/channels", { token: a.access_token, body: { type: "dm", member: b.username } });
  if (r.status !== 201 && r.status !== 200) throw new Error(`create dm failed: ${r.status} ${JSON.stringify(r.body)}`);
  await waitListed(b, r.body.channel.channel_id);
  return r.body.channel.channel_id;
}
