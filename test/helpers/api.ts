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

export async function createGroup(owner: TestUser, members: TestUser[], name = "Team"): Promise<string> {
  const r = await call<ChannelBody>("POST", "/v1/channels", { token: owner.access_token, body: { type: "group", name, members: members.map((m) => m.user_id) } });
  if (r.status !== 201) throw new Error(`create group failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.channel.channel_id;
}

export async function createDm(a: TestUser, b: TestUser): Promise<string> {
  const r = await call<ChannelBody>("POST", "/v1/channels", { token: a.access_token, body: { type: "dm", member: b.username } });
  if (r.status !== 201 && r.status !== 200) throw new Error(`create dm failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.channel.channel_id;
}
