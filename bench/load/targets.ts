/**
 * The two implementations of Target: edgechat through its REST API and gateway, and the limit
 * worker (bench/limit) whose rooms need no accounts.
 */
import { randomUUID } from "node:crypto";
import { ConnectFailure, openSocket, type BenchSocket } from "./client.js";
import { pool, sleep } from "./pool.js";
import { workerdOnPort, workerdUnder, type WorkerdProcesses } from "./procs.js";
import { Device, type BenchUser, type ConnectOptions, type Target, type TargetName } from "./target.js";
import type { Tracker } from "./tracker.js";

/**
 * How the target's processes are found: started by this run (wrangler pid) or by someone else.
 * A function, because the bench restarts servers it owns.
 */
export type ProcessSource = () => { rootPid: number } | { external: true };

function portOf(url: string): number {
  const u = new URL(url);
  return Number(u.port || (u.protocol === "https:" ? 443 : 80));
}

function findProcesses(url: string, source: ProcessSource): WorkerdProcesses | undefined {
  const s = source();
  return "rootPid" in s ? workerdUnder(s.rootPid, portOf(url)) : workerdOnPort(portOf(url));
}

const wsUrl = (url: string) => url.replace(/^http/, "ws");
const SETUP_ATTEMPTS = 3;
/** Ids per presence lookup: the route's maximum (workers/api/user-routes.ts). */
const PRESENCE_LOOKUP_MAX = 200;
/** Ids per bulk call: the route's maximum (LIMITS.maxBulkAdd). */
const BULK_PAGE = 1000;

/* ---------------------------------------- edgechat ---------------------------------------- */

interface RegisterAnswer { user_id: string; username: string; access_token: string }
interface ChannelAnswer { channel: { channel_id: string } }

export interface EdgechatOptions {
  /** Parallel registrations (PBKDF2 costs ~50-100 ms of CPU each in workerd). */
  registerConcurrency: number;
  log: (line: string) => void;
}

export class EdgechatTarget implements Target {
  readonly name: TargetName = "edgechat";
  private readonly pool: BenchUser[] = [];
  private readonly runId = `b${Date.now().toString(36)}`;
  private registered = 0;
  /** Time spent registering users, reported beside the scenarios. */
  registerMs = 0;
  /** Setup requests that had to be retried (503 from wrangler's proxy). */
  setupRetries = 0;

  /** Per user id, the channels this bench run made them a member of. */
  private readonly listed = new Map<string, Set<string>>();

  constructor(readonly url: string, private readonly source: ProcessSource, private readonly opts: EdgechatOptions) {}

  async users(n: number): Promise<BenchUser[]> {
    if (this.pool.length < n) {
      const t0 = performance.now();
      const missing = Array.from({ length: n - this.pool.length }, (_, i) => this.pool.length + i);
      const fresh = await pool(missing, this.opts.registerConcurrency, (i) => this.register(`${this.runId}_${i}`));
      this.pool.push(...fresh);
      const ms = performance.now() - t0;
      this.registerMs += ms;
      this.opts.log(`edgechat: registered ${fresh.length} users in ${(ms / 1000).toFixed(1)} s (${this.opts.registerConcurrency} in parallel)`);
    }
    return this.pool.slice(0, n);
  }

  freshUser(label: string): Promise<BenchUser> {
    return this.register(`${this.runId}_${label}${++this.registered}`);
  }

  private async register(username: string): Promise<BenchUser> {
    const credentials = { username, password: "bench-password-123" };
    let body: RegisterAnswer;
    try {
      body = await this.post<RegisterAnswer>("/v1/auth/register", undefined, credentials, 201);
    } catch (err) {
      // A retried registration whose first attempt got through: the account is ours, log in.
      if (!(err instanceof Error && err.message.includes("username_taken"))) throw err;
      body = await this.post<RegisterAnswer>("/v1/auth/login", undefined, credentials, 200);
    }
    return { userId: body.user_id, username: body.username, token: body.access_token };
  }

  async createDm(a: BenchUser, b: BenchUser): Promise<string> {
    const body = await this.post<ChannelAnswer>("/v1/channels", a.token, { type: "dm", member: b.userId }, 201, 200);
    this.joined([a, b], body.channel.channel_id);
    return body.channel.channel_id;
  }

  async createGroup(owner: BenchUser, members: readonly BenchUser[], name: string): Promise<string> {
    const others = members.filter((m) => m.userId !== owner.userId).map((m) => m.userId);
    const body = await this.post<ChannelAnswer>("/v1/channels", owner.token, { type: "group", name, members: others }, 201);
    this.joined([owner, ...members], body.channel.channel_id);
    return body.channel.channel_id;
  }

  async createBroadcast(owner: BenchUser, name: string): Promise<string> {
    const body = await this.post<ChannelAnswer>("/v1/channels", owner.token, { type: "broadcast", name }, 201);
    this.joined([owner], body.channel.channel_id);
    return body.channel.channel_id;
  }

  async bulkSubscribe(owner: BenchUser, channel: string, userIds: readonly string[]): Promise<number> {
    let memberCount = 0;
    for (let i = 0; i < userIds.length; i += BULK_PAGE) {
      const r = await this.post<{ unknown: number; member_count: number }>(`/v1/channels/${channel}/members/bulk`, owner.token, { user_ids: userIds.slice(i, i + BULK_PAGE) }, 200);
      if (r.unknown > 0) throw new Error(`bulk subscribe: ${r.unknown} ids have no account (seeded accounts missing?)`);
      memberCount = r.member_count;
    }
    return memberCount;
  }

  async joinByInvite(owner: BenchUser, channel: string, users: readonly BenchUser[]): Promise<void> {
    const invite = await this.post<{ code: string }>(`/v1/channels/${channel}/invites`, owner.token, { max_uses: Math.max(1, users.length) }, 201);
    await pool(users, 8, (u) => this.post(`/v1/invites/${invite.code}/join`, u.token, {}, 201, 200));
    this.joined(users, channel);
  }

  async connect(user: BenchUser, deviceId: string, channels: readonly string[], tracker?: Tracker, options: ConnectOptions = {}): Promise<Device> {
    const q = new URLSearchParams({ device_id: deviceId, access_token: user.token });
    const label = `edgechat ${user.username}/${deviceId}`;
    const socket = await openSocket(`${wsUrl(this.url)}/v1/connect?${q}`, label, options.timeoutMs);
    const device = new Device(user, deviceId, new Map([["*", socket]]), tracker);
    // Live from the first message, as the SDK is: RESUME at the end of the scenario's channels
    // (what other channels of a pooled user replay is counted as foreign, not measured).
    const cursors = [...channels, ...(options.holding ?? [])].map((channel_id) => ({ channel_id, last_seq: 2 ** 31 }));
    if (options.resume ?? true) {
      try {
        await device.resume(cursors, Math.max(60_000, options.timeoutMs ?? 0));
      } catch (err) {
        await device.close();
        const message = err instanceof Error ? err.message : String(err);
        // No RESUMED in time: the server is behind, another attempt may get through; so may an
        // ERROR the server marked retryable. Any other ERROR is an answer.
        const late = /no RESUMED/.test(message);
        throw new ConnectFailure(label, late ? "no RESUMED" : "RESUME refused", late || (err as { retryable?: boolean }).retryable === true, message);
      }
    }
    return device;
  }

  async loadObjects(users: readonly BenchUser[]): Promise<void> {
    await pool(users, 16, async (u) => {
      const res = await fetch(`${this.url}/v1/devices`, { headers: { Authorization: `Bearer ${u.token}` } });
      if (!res.ok) throw new Error(`GET /v1/devices: HTTP ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    });
    const [asker] = users;
    for (let i = 0; asker && i < users.length; i += PRESENCE_LOOKUP_MAX) {
      const ids = users.slice(i, i + PRESENCE_LOOKUP_MAX).map((u) => u.userId).join(",");
      const res = await fetch(`${this.url}/v1/presence?user_ids=${ids}`, { headers: { Authorization: `Bearer ${asker.token}` } });
      if (!res.ok) throw new Error(`GET /v1/presence: HTTP ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    }
  }

  listedChannels(user: BenchUser): readonly string[] {
    return [...(this.listed.get(user.userId) ?? [])];
  }

  private joined(users: readonly BenchUser[], channelId: string): void {
    for (const u of users) {
      let set = this.listed.get(u.userId);
      if (!set) this.listed.set(u.userId, (set = new Set()));
      set.add(channelId);
    }
  }

  processes(): WorkerdProcesses | undefined {
    return findProcesses(this.url, this.source);
  }

  /**
   * Setup requests, retried on 503: wrangler's proxy answers a POST with 503 "Your worker
   * restarted mid-request" when its call to the runtime fails (seen once under heavy load).
   */
  private async post<T>(path: string, token: string | undefined, body: unknown, ...okStatus: number[]): Promise<T> {
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(`${this.url}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
      const text = await res.text();
      if (okStatus.includes(res.status)) return JSON.parse(text) as T;
      if (res.status !== 503 || attempt === SETUP_ATTEMPTS) throw new Error(`POST ${path}: ${res.status} ${text.slice(0, 300)}`);
      this.setupRetries++;
      this.opts.log(`edgechat: POST ${path} answered 503 (${text.slice(0, 80)}); retrying`);
      await sleep(250 * attempt);
    }
  }
}

/* ------------------------------------------ limit ------------------------------------------ */

export class LimitTarget implements Target {
  readonly name: TargetName = "limit";
  private readonly runId = `b${Date.now().toString(36)}`;
  private next = 0;

  constructor(readonly url: string, private readonly source: ProcessSource) {}

  async users(n: number): Promise<BenchUser[]> {
    return Array.from({ length: n }, (_, i) => this.user(`${this.runId}_${i}`));
  }

  async freshUser(label: string): Promise<BenchUser> {
    return this.user(`${this.runId}_${label}${++this.next}`);
  }

  private user(name: string): BenchUser {
    return { userId: `u_${name}`, username: name, token: "" };
  }

  async createDm(): Promise<string> {
    return this.room();
  }

  async createGroup(): Promise<string> {
    return this.room();
  }

  async createBroadcast(): Promise<string> {
    return this.room();
  }

  async bulkSubscribe(_owner: BenchUser, _channel: string, userIds: readonly string[]): Promise<number> {
    return userIds.length; // a room has no members: offline subscribers cost the limit nothing
  }

  async joinByInvite(): Promise<void> {}

  private room(): string {
    return `r_${randomUUID()}`;
  }

  async connect(user: BenchUser, deviceId: string, channels: readonly string[], tracker?: Tracker, options: ConnectOptions = {}): Promise<Device> {
    const rooms = channels.length > 0 ? channels : [homeRoom(user)];
    const sockets = new Map<string, BenchSocket>();
    try {
      await pool(rooms, 10, async (room) => {
        const q = new URLSearchParams({ room, device_id: deviceId, user_id: user.userId });
        sockets.set(room, await openSocket(`${wsUrl(this.url)}/v1/connect?${q}`, `limit ${room}/${deviceId}`, options.timeoutMs));
      });
    } catch (err) {
      await Promise.all([...sockets.values()].map((s) => s.close()));
      throw err;
    }
    return new Device(user, deviceId, sockets, tracker);
  }

  listedChannels(): readonly string[] {
    return [];
  }

  async loadObjects(users: readonly BenchUser[]): Promise<void> {
    await pool(users, 16, async (u) => {
      const res = await fetch(`${this.url}/v1/touch?room=${encodeURIComponent(homeRoom(u))}`);
      if (!res.ok) throw new Error(`limit touch: HTTP ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    });
  }

  processes(): WorkerdProcesses | undefined {
    return findProcesses(this.url, this.source);
  }
}

/** The limit's counterpart of a UserObject: a room holding one user's device sockets. */
function homeRoom(user: BenchUser): string {
  return `home_${user.username}`.slice(0, 64);
}
