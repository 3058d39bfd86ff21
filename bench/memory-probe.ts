/**
 * What a loaded object and a connected device hold in the Worker's workerd, stage by stage (the
 * tool behind decision 026 and bench (f)'s notes). Starts a `wrangler dev` of its own, registers
 * N users, restarts it (objects on disk, none in memory), then:
 *
 *   loaded   GET /v1/devices per user (each UserObject loaded)
 *   shards   presence lookups (the presence shards a first connect reports to)
 *   dev1     one device per user connects and RESUMEs (the user goes live)
 *   dev2     a second device per user
 *
 * After each stage, settled: VmRSS of both workerd processes and the isolate's JS heap after a
 * full GC (Chrome DevTools protocol through wrangler's inspector port); the per-object and
 * per-socket deltas follow. The JS heap is a small part: most of an object is native (its SQLite
 * database with its page cache and the statements it compiled, the runtime's actor state).
 *
 *   npx tsx bench/memory-probe.ts [--users 200] [--without-assets] [--limit] [--snapshots DIR]
 *
 * --without-assets  wrangler.toml minus [assets], as bench (f) runs (the assets router relays sockets)
 * --limit           the bench's limit worker instead (one room per user, no RESUME)
 * --snapshots DIR   a heap snapshot per stage, and per stage the constructors that grew
 *
 * Run it from a quiet clone (as the bench): wrangler reloads when the checkout changes. RSS moves
 * by some tens of KiB per socket between runs on a shared machine; compare runs, not single figures.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Inspector } from "./load/inspector.js";
import { pool, sleep } from "./load/pool.js";
import { rssKiB } from "./load/procs.js";
import { configWithoutAssets, OwnedServer } from "./load/servers.js";
import type { Device, Target } from "./load/target.js";
import { EdgechatTarget, LimitTarget } from "./load/targets.js";

const { values: args } = parseArgs({
  options: {
    users: { type: "string", default: "200" },
    "without-assets": { type: "boolean", default: false },
    limit: { type: "boolean", default: false },
    snapshots: { type: "string" },
  },
  strict: true,
});

const SETTLE_MS = 2000;
const root = new URL("../", import.meta.url).pathname;

/** Self size and count per constructor ("object:UserObject", "native:workerd / SqlStorage", "(array)"...). */
function byConstructor(path: string): Map<string, { n: number; bytes: number }> {
  const s = JSON.parse(readFileSync(path, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[];
  };
  const fields = s.snapshot.meta.node_fields, types = s.snapshot.meta.node_types[0];
  const width = fields.length, iType = fields.indexOf("type"), iName = fields.indexOf("name"), iSize = fields.indexOf("self_size");
  const out = new Map<string, { n: number; bytes: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!]!;
    const key = type === "object" || type === "native" ? `${type}:${s.strings[s.nodes[i + iName]!]}` : `(${type})`;
    const e = out.get(key) ?? { n: 0, bytes: 0 };
    e.n++;
    e.bytes += s.nodes[i + iSize]!;
    out.set(key, e);
  }
  return out;
}

function growth(before: string, after: string, per: number, top = 12): string[] {
  const [a, b] = [byConstructor(before), byConstructor(after)];
  return [...b].map(([k, v]) => ({ k, n: (v.n - (a.get(k)?.n ?? 0)) / per, kib: (v.bytes - (a.get(k)?.bytes ?? 0)) / 1024 / per }))
    .sort((x, y) => y.kib - x.kib).slice(0, top)
    .map((r) => `    ${r.kib.toFixed(2).padStart(7)} KiB ${r.n.toFixed(1).padStart(6)}×  ${r.k}`);
}

async function main(): Promise<void> {
  const n = Number(args.users);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--users must be a positive integer; got ${args.users}`);
  const config = args.limit ? join(root, "bench/limit/wrangler.toml") : args["without-assets"] ? configWithoutAssets() : undefined;
  const server = await OwnedServer.start(args.limit ? "limit" : "edgechat", {
    stateDir: mkdtempSync(join(tmpdir(), "edgechat-probe-")), startTimeoutMs: 180_000,
    ...(config ? { config } : {}), ...(args.limit ? { migrate: false } : {}),
    vars: { SEND_RATE_PER_SECOND: "0", PRESENCE_TTL_MS: "90000", PRESENCE_OFFLINE_GRACE_MS: "15000" },
  }, (line) => console.error(line));
  let inspector: Inspector | undefined;
  const devices: Device[] = [];
  try {
    const target: Target = args.limit ? new LimitTarget(server.url, () => server.source())
      : new EdgechatTarget(server.url, () => server.source(), { registerConcurrency: 8, log: (line) => console.error(line) });
    const users = await target.users(n);
    await server.restart();
    // wrangler dev was started with --inspector-port <free port> (test/support/dev-server.ts).
    const argv = readFileSync(`/proc/${server.source().rootPid}/cmdline`, "utf8").split("\0");
    inspector = await Inspector.open(Number(argv[argv.indexOf("--inspector-port") + 1]));
    const procs = target.processes();
    if (!procs) throw new Error("cannot find the workerd processes");

    type Reading = { stage: string; heap: number; worker: number; proxy: number; snapshot?: string };
    const readings: Reading[] = [];
    const stage = async (name: string) => {
      await sleep(SETTLE_MS);
      const r: Reading = { stage: name, heap: await inspector!.heapKiB(), worker: rssKiB(procs.worker), proxy: rssKiB(procs.proxy) };
      // RSS first: a snapshot's own allocations would count in the next stage's figure otherwise.
      if (args.snapshots) await inspector!.snapshot((r.snapshot = join(args.snapshots, `${name}.heapsnapshot`)));
      readings.push(r);
      console.log(`${name.padEnd(8)} worker ${r.worker} KiB, proxy ${r.proxy} KiB, JS heap ${r.heap} KiB`);
    };
    await stage("start");
    // As bench (f) loads them (bench/load/targets.ts): objects, then (edgechat) the presence shards.
    await target.loadObjects(users);
    await stage("loaded");
    const connect = async (deviceId: string) => {
      devices.push(...(await pool(users, 50, (u) => target.connect(u, deviceId, [], undefined, { holding: [] }))));
    };
    await connect("probe-0");
    await stage("dev1");
    await connect("probe-1");
    await stage("dev2");

    const delta = (from: string, to: string, per: number, what: string) => {
      const a = readings.find((r) => r.stage === from)!, b = readings.find((r) => r.stage === to)!;
      const f = (x: number) => (x / per).toFixed(0).padStart(4);
      console.log(`${what.padEnd(34)} worker ${f(b.worker - a.worker)} KiB  (JS heap ${f(b.heap - a.heap)})  proxy ${f(b.proxy - a.proxy)} KiB`);
      if (a.snapshot && b.snapshot) for (const line of growth(a.snapshot, b.snapshot, per)) console.log(line);
    };
    console.log(`\nper unit, ${n} users (${args.limit ? "limit" : args["without-assets"] ? "edgechat without [assets]" : "edgechat"}):`);
    delta("start", "loaded", n, "loaded object (+ shards)");
    delta("loaded", "dev1", n, "first device of a user");
    delta("dev1", "dev2", n, "second device of a user");
    delta("loaded", "dev2", 2 * n, "per socket (both)");
  } finally {
    await Promise.all(devices.map((d) => d.close()));
    inspector?.close();
    await server.stop();
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`memory probe failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
