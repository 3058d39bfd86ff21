/**
 * What connected, idle users cost the server (docs/decisions/028): starts `wrangler dev`, connects
 * N users (each in a DM with the next, so their keep-alive watches a contact), waits for the
 * server to settle, then reads the Worker's and the proxy's CPU and counts `user.woke` lines (a
 * UserObject woken from hibernation with sockets open) over a window in which nobody sends
 * anything. CPU per wake = the window's CPU / its wakes.
 *
 *   npx tsx bench/keepalive-probe.ts [--users 200] [--window-s 120] [--ttl-ms 600000]
 */
import { parseArgs } from "node:util";
import { startDevServer } from "../test/support/dev-server.js";
import { pool, sleep } from "./load/pool.js";
import { cpuSeconds, workerdUnder } from "./load/procs.js";
import { EdgechatTarget } from "./load/targets.js";
import type { Device } from "./load/target.js";

const { values: args } = parseArgs({
  options: {
    users: { type: "string", default: "200" },
    "window-s": { type: "string", default: "120" },
    "ttl-ms": { type: "string", default: "600000" },
  },
});
const users = Number(args.users);
const windowMs = Number(args["window-s"]) * 1000;
const ttlMs = args["ttl-ms"]!;
const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

const server = await startDevServer({ migrate: true, vars: { PRESENCE_TTL_MS: ttlMs, PRESENCE_OFFLINE_GRACE_MS: "15000", SEND_RATE_PER_SECOND: "0" } });
const devices: Device[] = [];
try {
  const procs = workerdUnder(server.process.pid!, server.port);
  if (!procs) throw new Error("workerd processes not found");
  const cpu = () => cpuSeconds(procs.worker) + cpuSeconds(procs.proxy);
  const target = new EdgechatTarget(server.url, () => ({ rootPid: server.process.pid! }), { registerConcurrency: 8, log });
  const list = await target.users(users);
  await pool(list.slice(1), 8, async (u, i) => { await target.createDm(list[i]!, u); });
  log(`${users} users registered, ${users - 1} DMs`);
  const t0 = performance.now();
  devices.push(...(await pool(list, 8, (u) => target.connect(u, "probe", []))));
  log(`${devices.length} devices connected in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // Settle: the connects' own work (watches, RESUMEs, list flushes) is over within a few seconds.
  await sleep(20_000);
  const woke = () => server.log.filter((l) => l.includes("user.woke")).length;
  const idle = () => server.log.filter((l) => l.includes("socket.idle_closed")).length;
  const [cpu0, woke0, idle0] = [cpu(), woke(), idle()];
  await sleep(windowMs);
  const cpuMs = (cpu() - cpu0) * 1000;
  const wakes = woke() - woke0;
  const closed = devices.filter((d) => d.closedCodes().length > 0).length;
  log(`PRESENCE_TTL_MS=${ttlMs}: ${users} idle connected users over ${windowMs / 1000} s: ${wakes} wakes (${(wakes / users / (windowMs / 3_600_000)).toFixed(1)} per user per hour), ` +
    `server CPU ${cpuMs.toFixed(0)} ms (${(cpuMs / (windowMs / 1000)).toFixed(1)} ms/s), ${wakes > 0 ? (cpuMs / wakes).toFixed(2) : "–"} ms per wake; ` +
    `idle closes ${idle() - idle0}, devices closed ${closed}`);
} finally {
  await Promise.all(devices.map((d) => d.close().catch(() => {})));
  await server.stop();
}
