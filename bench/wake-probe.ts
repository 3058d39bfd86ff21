/**
 * What a post costs when its recipients' objects have hibernated, against the same post a moment
 * later with them awake. In a group or broadcast channel that posts now and then (the common
 * case), every online member's UserObject has hibernated since the last post, so each delivery
 * is also a wake. Starts `wrangler dev`, connects N members of one group, waits past the
 * hibernation timeout (~10 s idle under wrangler dev), then sends posts in pairs: the first after
 * `--idle-s` of silence, the second right after the first fully arrived. Per post: time until all
 * have it, the Worker's CPU (workerd + proxy) and the `user.woke` lines it caused.
 *
 *   npx tsx bench/wake-probe.ts [--members 200] [--pairs 3] [--idle-s 30]
 */
import { parseArgs } from "node:util";
import { startDevServer } from "../test/support/dev-server.js";
import { pool, sleep } from "./load/pool.js";
import { cpuSeconds, workerdUnder } from "./load/procs.js";
import { EdgechatTarget } from "./load/targets.js";
import type { Device } from "./load/target.js";
import { Tracker } from "./load/tracker.js";

const { values: args } = parseArgs({
  options: {
    members: { type: "string", default: "200" },
    pairs: { type: "string", default: "3" },
    "idle-s": { type: "string", default: "30" },
  },
});
const members = Number(args.members);
const pairs = Number(args.pairs);
const idleMs = Number(args["idle-s"]) * 1000;
const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

const server = await startDevServer({ migrate: true, vars: { PRESENCE_TTL_MS: "600000", PRESENCE_OFFLINE_GRACE_MS: "15000", SEND_RATE_PER_SECOND: "0" } });
const devices: Device[] = [];
try {
  const procs = workerdUnder(server.process.pid!, server.port);
  if (!procs) throw new Error("workerd processes not found");
  const cpu = () => cpuSeconds(procs.worker) + cpuSeconds(procs.proxy);
  const woke = () => server.log.filter((l) => l.includes("user.woke")).length;
  const target = new EdgechatTarget(server.url, () => ({ rootPid: server.process.pid! }), { registerConcurrency: 8, log });
  const users = await target.users(members);
  const channel = await target.createGroup(users[0]!, users, "wake probe");
  const tracker = new Tracker();
  devices.push(...(await pool(users, 8, (u) => target.connect(u, "probe", [channel], tracker))));
  log(`${members} members connected`);
  const sender = devices[0]!;
  const recipients = devices.slice(1).map((d) => d.key);
  const rows: { kind: string; ms: number; cpuMs: number; wakes: number }[] = [];
  const post = async (kind: string, id: string) => {
    const [cpu0, woke0, t0] = [cpu(), woke(), performance.now()];
    tracker.sent(id, channel, recipients);
    sender.sendText(channel, id, `${kind} post`);
    if (!(await tracker.whenIdle(120_000))) throw new Error(`${kind} post did not reach everyone in 120 s`);
    const ms = performance.now() - t0;
    await sleep(1_000); // the round's tail (acks, list marks) counted with it
    rows.push({ kind, ms, cpuMs: (cpu() - cpu0) * 1000, wakes: woke() - woke0 });
    log(`${kind}: all ${recipients.length} have it after ${ms.toFixed(0)} ms; CPU ${((cpu() - cpu0) * 1000).toFixed(0)} ms; ${woke() - woke0} wakes`);
  };
  for (let i = 0; i < pairs; i++) {
    await sleep(idleMs);
    await post("cold", `wake-cold-${i}`);
    await post("warm", `wake-warm-${i}`);
  }
  const med = (kind: string, f: (r: (typeof rows)[number]) => number) => {
    const xs = rows.filter((r) => r.kind === kind).map(f).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!;
  };
  for (const kind of ["cold", "warm"]) {
    log(`${kind} (median of ${pairs}): ${med(kind, (r) => r.ms).toFixed(0)} ms to all, CPU ${med(kind, (r) => r.cpuMs).toFixed(0)} ms ` +
      `(${(med(kind, (r) => r.cpuMs) / recipients.length).toFixed(2)} ms per delivery), ${med(kind, (r) => r.wakes)} wakes`);
  }
  const report = tracker.report();
  log(`lost ${report.lost}, duplicated ${report.duplicated}, out of order ${report.outOfOrder}`);
} finally {
  await Promise.all(devices.map((d) => d.close().catch(() => {})));
  await server.stop();
}
