/**
 * (f) Idle connected devices: resident memory per connection in both workerd processes of
 * wrangler dev (the proxy that owns the port, and the runtime with the Durable Objects). Every
 * user has two devices online; the limit puts each user's two sockets in one room, the
 * counterpart of edgechat's UserObject. Runs on freshly restarted servers, edgechat's its own and
 * without [assets] (decision 026: the assets router wrangler dev runs in the same process relays
 * every socket); each target first loads the objects the devices will use (edgechat: a REST call
 * per user, and presence lookups for the presence shards; limit: a touch per room), and that cost
 * is reported apart, so the headline is the price of the sockets alone. Local workerd evicts an
 * object 10 s after its last event: on a slow machine some are built again while devices connect. Stays below 3,000 sockets: the proxy holds ~6 file
 * descriptors per WebSocket and crashes near 3,300 with ulimit -n 20000.
 */
import { rssKiB } from "../load/procs.js";
import { sleep } from "../load/pool.js";
import type { Device } from "../load/target.js";
import { closeAll, connectAll, type Scenario } from "./scenario.js";

const SETTLE_MS = 2000;

export const idleMemory: Scenario = {
  id: "f",
  title: "idle connected devices",
  freshServer: true,
  // The web app's assets router would relay every socket inside the measured process (decision 026).
  ownServer: () => ({ seedAccounts: 0, vars: {}, withoutAssets: true, registerUsers: true }),
  users: (quick) => (quick ? 200 : 1000),
  params: (quick) => ({ devices: quick ? 400 : 2000, devices_per_user: 2 }),
  async run(ctx, p) {
    const procs = ctx.target.processes();
    if (!procs) throw new Error("cannot find the target's workerd processes (is it a wrangler dev on this machine?)");
    const users = await ctx.target.users(p.devices! / p.devices_per_user!);
    const rss = () => ({ proxy: rssKiB(procs.proxy), worker: rssKiB(procs.worker) });
    const unloaded = rss();
    ctx.phase = `loading ${users.length} objects`;
    await ctx.target.loadObjects(users);
    await sleep(SETTLE_MS);
    const before = rss();
    const t0 = performance.now();
    const devices: Device[] = [];
    // Idle devices that hold everything already, as a device reconnecting with its cursors does:
    // what a brand-new device replays is (e)'s subject, and the limit's rooms have no history.
    const holding = (u: (typeof users)[number]) => ({ holding: ctx.target.listedChannels(u) });
    for (let d = 0; d < p.devices_per_user!; d++) devices.push(...(await connectAll(ctx, users, () => [], undefined, `bench-${d}`, holding)));
    const connectMs = performance.now() - t0;
    await sleep(SETTLE_MS);
    const after = rss();
    const n = devices.length;
    await closeAll(devices, ctx);
    await sleep(SETTLE_MS);
    const closed = rss();
    const perConn = (k: "proxy" | "worker") => (after[k] - before[k]) / n;
    return {
      traffic: undefined,
      headline: { label: "KiB per idle connection (proxy + worker)", value: perConn("proxy") + perConn("worker"), unit: "KiB", better: "lower" },
      extra: {
        proxy_kib_per_conn: Math.round(perConn("proxy")), worker_kib_per_conn: Math.round(perConn("worker")),
        proxy_rss_mib_before: mib(before.proxy), proxy_rss_mib_after: mib(after.proxy), proxy_rss_mib_closed: mib(closed.proxy),
        worker_rss_mib_before: mib(before.worker), worker_rss_mib_after: mib(after.worker), worker_rss_mib_closed: mib(closed.worker),
        worker_kib_per_object_loaded: Math.round((before.worker - unloaded.worker) / users.length),
        connect_ms: Math.round(connectMs), connects_per_sec: Math.round(n / (connectMs / 1000)),
        proxy_pid: procs.proxy, worker_pid: procs.worker,
      },
    };
  },
};

const mib = (kib: number) => Math.round(kib / 102.4) / 10;
