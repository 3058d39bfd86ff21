/**
 * What a post costs when its recipients' objects have hibernated, against the same post a moment
 * later with them awake. In a group or broadcast channel that posts now and then (the common
 * case), every online member's UserObject has hibernated since the last post, so each delivery
 * is also a wake. Starts `wrangler dev`, connects N members of one group, waits past the
 * hibernation timeout (~10 s idle under wrangler dev), then sends posts in threes: the first after
 * `--idle-s` of silence, the second right after the first fully arrived; then a third, "spaced",
 * 3 s after the second (objects awake, the channel list's flush window over). Per post: time until
 * all have it, the Worker's CPU (workerd + proxy) and the `user.woke` lines it caused.
 *
 *   npx tsx bench/wake-probe.ts [--members 200] [--rounds 3] [--idle-s 30] [--bystanders 0]
 *                               [--count-writes] [--profile DIR]
 *
 * --bystanders N  N more users connected who are not in the group (loaded objects and open
 *                sockets that the post does not reach)
 * --count-writes  also count the SQL statements that wrote rows, per object kind, over each post
 *                and the 5 s after it (its list flush included); the counting lines cost CPU, so
 *                time with it off
 * --profile DIR  a CPU profile of the Worker's isolate per post (DIR/cold-0.cpuprofile, ...), to
 *                open in Chrome DevTools; sampling itself slows the posts it watches
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startDevServer } from "../test/support/dev-server.js";
import { ServerLines, workOf } from "../test/support/work-log.js";
import { Inspector } from "./load/inspector.js";
import { pool, sleep } from "./load/pool.js";
import { cpuSeconds, workerdUnder } from "./load/procs.js";
import { EdgechatTarget } from "./load/targets.js";
import type { Device } from "./load/target.js";
import { Tracker } from "./load/tracker.js";

const { values: args } = parseArgs({
  options: {
    members: { type: "string", default: "200" },
    rounds: { type: "string", default: "3" },
    "idle-s": { type: "string", default: "30" },
    profile: { type: "string" },
    "count-writes": { type: "boolean", default: false },
    bystanders: { type: "string", default: "0" },
  },
});
const members = Number(args.members);
const rounds = Number(args.rounds);
const idleMs = Number(args["idle-s"]) * 1000;
const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

const counting = args["count-writes"]!;
const server = await startDevServer({
  migrate: true,
  vars: {
    PRESENCE_TTL_MS: "600000", PRESENCE_OFFLINE_GRACE_MS: "15000", SEND_RATE_PER_SECOND: "0",
    ...(counting ? { METRICS_LOG: "1", COUNT_SQL_WRITES: "1", LOG_LEVEL: "debug" } : {}),
  },
});
const lines = new ServerLines(server.process);
const devices: Device[] = [];
let inspector: Inspector | undefined;
try {
  if (args.profile) {
    mkdirSync(args.profile, { recursive: true });
    const argv = server.process.spawnargs;
    inspector = await Inspector.open(Number(argv[argv.indexOf("--inspector-port") + 1]));
  }
  const procs = workerdUnder(server.process.pid!, server.port);
  if (!procs) throw new Error("workerd processes not found");
  const cpu = () => cpuSeconds(procs.worker) + cpuSeconds(procs.proxy);
  const woke = () => server.log.filter((l) => l.includes("user.woke")).length;
  const target = new EdgechatTarget(server.url, () => ({ rootPid: server.process.pid! }), { registerConcurrency: 8, log });
  const everyone = await target.users(members + Number(args.bystanders));
  const users = everyone.slice(0, members);
  const channel = await target.createGroup(users[0]!, users, "wake probe");
  const tracker = new Tracker();
  devices.push(...(await pool(everyone, 8, (u, i) => target.connect(u, "probe", i < members ? [channel] : [], i < members ? tracker : undefined))));
  log(`${members} members and ${everyone.length - members} bystanders connected`);
  const sender = devices[0]!;
  const recipients = devices.slice(1, members).map((d) => d.key);
  const rows: { kind: string; ms: number; cpuMs: number; wakes: number }[] = [];
  const post = async (kind: string, id: string) => {
    await inspector?.startProfile();
    const [cpu0, woke0, t0, mark] = [cpu(), woke(), performance.now(), lines.mark()];
    tracker.sent(id, channel, recipients);
    sender.sendText(channel, id, `${kind} post`);
    if (!(await tracker.whenIdle(120_000))) {
      const r = tracker.report();
      throw new Error(`${kind} post did not reach everyone in 120 s: ${r.lost} missing, ${r.delivered} delivered, errors: ${r.firstErrors.join("; ") || "none"}`);
    }
    const ms = performance.now() - t0;
    await sleep(counting ? 5_000 : 1_000); // the round's tail (acks, list marks and flushes) counted with it
    if (inspector) await inspector.stopProfile(join(args.profile!, `${id.replace("wake-", "")}.cpuprofile`));
    const row = { kind, ms, cpuMs: (cpu() - cpu0) * 1000, wakes: woke() - woke0 };
    rows.push(row);
    const work = counting ? workOf(lines.since(mark)) : undefined;
    log(`${kind}: all ${recipients.length} have it after ${ms.toFixed(0)} ms; CPU ${row.cpuMs.toFixed(0)} ms; ${row.wakes} wakes` +
      (work ? `; rows written by users ${work.userWrites}, channel ${work.channelWrites}, relays ${work.relayWrites}` : ""));
  };
  for (let i = 0; i < rounds; i++) {
    await sleep(idleMs);
    await post("cold", `wake-cold-${i}`);
    await post("warm", `wake-warm-${i}`);
    // Awake still (well within the ~10 s before hibernation), within the channel list's mark
    // linger (MARK_LINGER_MS): the rows of the two posts before are still in memory.
    await sleep(2_000);
    await post("spaced", `wake-spaced-${i}`);
  }
  const med = (kind: string, f: (r: (typeof rows)[number]) => number) => {
    const xs = rows.filter((r) => r.kind === kind).map(f).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!;
  };
  for (const kind of ["cold", "warm", "spaced"]) {
    log(`${kind} (median of ${rounds}): ${med(kind, (r) => r.ms).toFixed(0)} ms to all, CPU ${med(kind, (r) => r.cpuMs).toFixed(0)} ms ` +
      `(${(med(kind, (r) => r.cpuMs) / recipients.length).toFixed(2)} ms per delivery), ${med(kind, (r) => r.wakes)} wakes`);
  }
  const report = tracker.report();
  log(`lost ${report.lost}, duplicated ${report.duplicated}, out of order ${report.outOfOrder}`);
} finally {
  inspector?.close();
  await Promise.all(devices.map((d) => d.close().catch(() => {})));
  await server.stop();
}
