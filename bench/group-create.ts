/**
 * `npx tsx bench/group-create.ts`: how long `POST /v1/channels {type: "group"}` with 999 other
 * members takes under a real `wrangler dev` (issue 9: creating a 1,000-member group must not wake
 * 1,000 user objects on the request's path). Starts its own wrangler dev, registers the members
 * through the REST API (not timed), then times `--creates` group creations one after the other,
 * each by a different creator. With `--restricted N`, N of the members chose `group_adds:
 * "contacts"` and share a DM with every creator, so each create must ask those N.
 *
 * While the channel's notice pump tells the members, a `GET /v1/me` is sent every second (one at a
 * time) and timed: the local server must keep answering during the pump (docs/decisions/030).
 * `--var NAME=VALUE` (repeatable) passes a var to wrangler dev (e.g. `NOTICE_PAGE_SIZE=0`,
 * `LOG_LEVEL=debug`, `COUNT_SQL_WRITES=1`, `METRICS_LOG=1`); `--log FILE` writes the server's
 * output there at the end. `--cold` restarts wrangler dev (same state) after the registrations, so
 * every member's UserObject is cold when the pump reaches it (a team that creates the group later).
 *
 *   npx tsx bench/group-create.ts [--members 1000] [--creates 5] [--restricted 0] [--var K=V] [--log FILE] [--cold]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startDevServer } from "../test/support/dev-server.js";
import { pool } from "./load/pool.js";
import { parseVars } from "./load/servers.js";

const { values: args } = parseArgs({
  options: {
    members: { type: "string", default: "1000" }, creates: { type: "string", default: "5" }, restricted: { type: "string", default: "0" },
    var: { type: "string", multiple: true, default: [] }, log: { type: "string" }, cold: { type: "boolean", default: false },
  },
});
const extraVars = parseVars(args.var);
const members = Number(args.members), creates = Number(args.creates), restricted = Number(args.restricted);

interface User { user_id: string; access_token: string }

const stateDir = mkdtempSync(join(tmpdir(), "edgechat-bench-"));
const serverOptions = { stateDir, vars: { CHANNEL_CREATE_BURST: "1000", ...extraVars } };
let server = await startDevServer(serverOptions);
const serverLog: string[] = [];
async function post<T>(path: string, token: string | undefined, body: unknown): Promise<{ status: number; body: T }> {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${server.url}${path}`, {
      method: path.endsWith("/settings") ? "PATCH" : "POST",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    // wrangler's proxy answers 503 "worker restarted mid-request" now and then under load.
    if (res.status === 503 && attempt < 3 && !path.startsWith("/v1/channels")) continue;
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = { text: text.slice(0, 120) };
    }
    return { status: res.status, body: parsed as T };
  }
}

async function timedMe(user: User): Promise<number> {
  const t = performance.now();
  await (await fetch(`${server.url}/v1/me`, { headers: { Authorization: `Bearer ${user.access_token}` } })).arrayBuffer();
  return performance.now() - t;
}

/** GET /v1/me once a second, one at a time, until `stop` resolves: how the server answers meanwhile. */
async function probeWhile(user: User, stop: Promise<void>): Promise<number[]> {
  let done = false;
  void stop.then(() => { done = true; });
  const times: number[] = [];
  while (!done) {
    times.push(await timedMe(user));
    await new Promise((r) => setTimeout(r, 1000));
  }
  return times;
}

/** Resolves once the channel logged that its notice pump has told every member (or after 600 s). */
async function drained(channelId: string): Promise<void> {
  const deadline = Date.now() + 600_000;
  while (Date.now() < deadline && !server.log.some((l) => l.includes('"event":"notice.drained"') && l.includes(channelId))) {
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function listed(user: User, channelId: string): Promise<void> {
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${server.url}/v1/channels`, { headers: { Authorization: `Bearer ${user.access_token}` }, signal: AbortSignal.timeout(30_000) });
      const body = (await res.json().catch(() => ({}))) as { channels?: { channel_id: string }[] };
      if (body.channels?.some((c) => c.channel_id === channelId)) return;
    } catch {
      // A list that does not answer within 30 s (the machine is busy): ask again.
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  console.log(`(the last member still does not list ${channelId} after 300 s)`);
}

try {
  const run = `gc${Date.now().toString(36)}`;
  const t0 = performance.now();
  const users = await pool(Array.from({ length: members + creates - 1 }, (_, i) => i), 6, async (i) => {
    const r = await post<User>("/v1/auth/register", undefined, { username: `${run}_${i}`, password: "bench-password-123" });
    if (r.status !== 201) throw new Error(`register: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  });
  console.log(`registered ${users.length} users in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (args.cold) {
    serverLog.push(...server.log);
    await server.stop();
    server = await startDevServer(serverOptions);
    console.log("restarted wrangler dev: every member's object is cold");
  }
  const creators = users.slice(0, creates);
  const others = users.slice(creates);
  const limited = others.slice(0, restricted);
  await pool(limited, 6, async (u) => {
    const s = await post("/v1/me/settings", u.access_token, { group_adds: "contacts" });
    if (s.status !== 200) throw new Error(`settings: HTTP ${s.status} ${JSON.stringify(s.body)}`);
    for (const c of creators) {
      const dm = await post("/v1/channels", c.access_token, { type: "dm", member: u.user_id });
      if (dm.status !== 201 && dm.status !== 200) throw new Error(`dm: HTTP ${dm.status} ${JSON.stringify(dm.body)}`);
    }
  });
  const times: number[] = [];
  let failures = 0;
  for (const [i, creator] of creators.entries()) {
    // The members: everyone else but this creator, i.e. a group of `members` people in all.
    const group = [...creators.filter((c) => c !== creator), ...others].slice(0, members - 1);
    const ids = group.map((u) => u.user_id);
    const t = performance.now();
    const r = await post<{ channel?: { channel_id: string; member_count: number } }>("/v1/channels", creator.access_token, { type: "group", name: `bench ${i}`, members: ids });
    const ms = performance.now() - t;
    if (r.status !== 201 || !r.body.channel) {
      console.log(`create ${i + 1}: HTTP ${r.status} after ${ms.toFixed(0)} ms: ${JSON.stringify(r.body)}`);
      failures++;
      await new Promise((res) => setTimeout(res, 10_000));
      continue;
    }
    times.push(ms);
    // The Worker's own figure for the request (its log line), and how long a plain GET /v1/me
    // takes right after, while the channel's notice pump is telling the 999 members.
    const line = server.log.filter((l) => l.includes('"route":"/v1/channels"') && l.includes('"method":"POST"') && l.includes('"status":201')).at(-1);
    const workerMs = line ? /"ms":(\d+)/.exec(line)?.[1] : undefined;
    const busy = await timedMe(creator);
    console.log(`create ${i + 1}: ${r.body.channel.member_count} members, ${restricted} restricted: ${ms.toFixed(0)} ms (Worker: ${workerMs ?? "?"} ms; a GET /v1/me just after: ${busy.toFixed(0)} ms)`);
    // The next create starts once this group's notice pump reached the last member (not timed).
    // The pump is done when the channel logs `notice.drained` (every member told); the last
    // member's list must then show the group.
    const t1 = performance.now();
    const channelId = r.body.channel.channel_id;
    const done = drained(channelId);
    const probes = (await Promise.all([done, probeWhile(creator, done)]))[1].sort((a, b) => a - b);
    const pct = (q: number) => probes[Math.min(probes.length - 1, Math.floor(probes.length * q))]!.toFixed(0);
    const drainedLine = server.log.find((l) => l.includes('"event":"notice.drained"') && l.includes(channelId));
    console.log(`  (every member told ${((performance.now() - t1) / 1000).toFixed(1)} s after the answer: ${drainedLine ?? "no notice.drained line"})`);
    const t2 = performance.now();
    for (const member of [group.at(-1)!, group[0]!, group[Math.floor(group.length / 2)]!]) await listed(member, channelId);
    console.log(`  (3 members' lists show it, checked in ${((performance.now() - t2) / 1000).toFixed(1)} s; a GET /v1/me then: ${(await timedMe(creator)).toFixed(0)} ms)`);
    if (probes.length > 0) console.log(`  (GET /v1/me during the pump, one a second: ${probes.length} answered, median ${pct(0.5)} ms, p90 ${pct(0.9)} ms, max ${pct(1)} ms)`);
  }
  const sorted = [...times].sort((a, b) => a - b);
  if (sorted.length > 0) console.log(`median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms, min ${sorted[0]!.toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms`);
  console.log(`${times.length} created, ${failures} failed; load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
} finally {
  if (args.log) writeFileSync(args.log, [...serverLog, ...server.log].join("\n") + "\n");
  await server.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
