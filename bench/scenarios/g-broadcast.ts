/**
 * (g) A post to a broadcast channel with C connected devices (1,000 full, 200 quick) at 1,000,
 * 10,000 and 100,000 subscribers: the time until every connected device has it and the server's
 * CPU per post (both workerd processes), which should be flat across the three sizes: offline
 * subscribers cost nothing at post time (docs/decisions/013, 017, 018).
 *
 * One channel grows: the connected users (the owner posts) join by invite link; never-connected
 * subscribers are added through the bulk route up to each size, from accounts seeded into the
 * server's directory before it started (registering 100,000 through REST would hash as many
 * passwords). So edgechat runs on a server of its own, with the notice pump paused
 * (NOTICE_PAGE_SIZE=0, docs/decisions/025): otherwise it would wake 100,000 UserObjects in the
 * background during the measurement. The limit has no members: its room of C sockets is the same
 * at every size, which is the point of comparison.
 *
 * Per post: sent one at a time; CPU is read before the SEND and after the server is quiet again
 * (under 10% of a core for 250 ms, or 10 s at most), so a post's tail (relay rounds, list flushes)
 * is in it. With 1,000 devices connected the server is rarely that quiet (their objects' presence
 * keep-alives, one wake per user per 200 s: docs/decisions/028), so the CPU it spends with nobody
 * posting, read over 2 s just before, is taken off for the net figure; both are reported.
 *
 * Connecting the C devices is reported too: its server CPU per device (worker and proxy, from the
 * quiet server before to the quiet server after, so the watches the connects set up are in it),
 * and how connectAll got them in (bench/load/connect-pool.ts: as many at once as the server
 * answers within 5 s, retries by reason). The C users are registered before the budget starts.
 */
import { seededUserIds } from "../../test/support/seed-accounts.js";
import { percentile } from "../load/percentiles.js";
import { sleep } from "../load/pool.js";
import { cpuSeconds } from "../load/procs.js";
import type { SenderPattern } from "../load/sender.js";
import type { Device } from "../load/target.js";
import { closeAll, connectAll, drain, newTracker, nth, quiesce, sendAll, timeLeft, type Scenario } from "./scenario.js";

const ONE_POST: SenderPattern = { window: 1, ratePerSec: 0 };
/** How long the server's pace with nobody posting is read before each post. */
const IDLE_WINDOW_MS = 2_000;
export const G_SIZES = [1_000, 10_000, 100_000] as const;
const connectedOf = (quick: boolean) => (quick ? 200 : 1000);

export const broadcastScale: Scenario = {
  id: "g",
  title: "a post to a broadcast channel, connected devices fixed, subscribers 1,000 → 100,000",
  // Its connected users are registered before its budget starts, minutes before they connect (and,
  // with --repeat, reused a run later): their access tokens live two hours, not the default 15 minutes.
  ownServer: () => ({ seedAccounts: G_SIZES.at(-1)!, registerUsers: true, vars: { NOTICE_PAGE_SIZE: "0", ACCESS_TOKEN_TTL_SECONDS: "7200" } }),
  // Full: 1,000 devices took 4 to 8 minutes to connect at load averages of 8 to 10 here, and each
  // of the 17 posts waits for a quiet server (at most 10 s) before and after it.
  budgetMs: (quick) => (quick ? 600_000 : 1_500_000),
  users: connectedOf, // on its own server
  params: (quick) => ({ connected: connectedOf(quick), posts: quick ? 3 : 5 }),
  async run(ctx, p) {
    ctx.phase = "registering the connected users";
    const users = await ctx.target.users(p.connected!);
    const owner = nth(users, 0);
    ctx.phase = "creating the channel";
    const channel = await ctx.target.createBroadcast(owner, "bench g");
    await ctx.target.joinByInvite(owner, channel, users.slice(1));
    const tracker = newTracker(ctx);
    const procs = ctx.target.processes();
    const cpuOf = (k: "worker" | "proxy") => (procs ? cpuSeconds(procs[k]) : Number.NaN);
    const cpuNow = () => cpuOf("worker") + cpuOf("proxy");
    // What a connect costs the server under this load, beside how long it took (ctx.connects).
    await quiesce(ctx.target, 10_000);
    const connectCpu0 = { worker: cpuOf("worker"), proxy: cpuOf("proxy") };
    const devices = await connectAll(ctx, users, () => [channel], tracker);
    await quiesce(ctx.target, 10_000); // the watches the connects set up, registered at the relays
    const perDevice = (k: "worker" | "proxy") => Math.round(((cpuOf(k) - connectCpu0[k]) * 1000 / devices.length) * 10) / 10;
    const connectCpu = { connect_worker_cpu_ms_per_device: perDevice("worker"), connect_proxy_cpu_ms_per_device: perDevice("proxy") };
    const sender = nth(devices, 0);
    const recipients = devices.slice(1).map((d) => d.key);

    const post = async (tag: string) => {
      // A device the server closed would never get the post: say so instead of waiting out the budget.
      const gone = devices.filter((d) => d.closedCodes().length > 0);
      if (gone.length > 0) {
        throw new Error(`${gone.length} of ${devices.length} devices were closed before post ${tag} (close codes ${[...new Set(gone.flatMap((d) => d.closedCodes()))].join(", ")})`);
      }
      await quiesce(ctx.target, 10_000);
      // The server's own pace with nobody posting: C connected devices keep it busy by themselves
      // (each UserObject's presence keep-alive, every TTL/3 = 200 s), so it may never fall quiet; that
      // rate times the post's interval is taken off its CPU (`net`), the raw figure kept beside it.
      const idle0 = cpuNow();
      await sleep(IDLE_WINDOW_MS);
      const idlePerMs = (cpuNow() - idle0) / IDLE_WINDOW_MS;
      const cpu0 = cpuNow();
      const sentAt = performance.now();
      await sendAll(ctx, tracker, [{ device: sender, channelId: channel, count: 1, recipients, idPrefix: `${ctx.runTag}-g-${tag}` }], ONE_POST);
      const ok = (await drain(ctx, tracker)) && timeLeft(ctx) > 0;
      const ms = tracker.lastDeliveryAt - sentAt;
      await quiesce(ctx.target, 10_000);
      const cpuMs = (cpuNow() - cpu0) * 1000;
      return { ok, ms, cpuMs, netCpuMs: cpuMs - idlePerMs * 1000 * (performance.now() - sentAt), idleCpuMsPerS: idlePerMs * 1e6 };
    };

    // Unmeasured: the first rounds register the watchers at their relay shards.
    for (let i = 0; i < 2; i++) await post(`warm${i}`);
    let members = users.length;
    const extra: Record<string, number | number[] | string> = { ...connectCpu };
    let timedOut = false;
    let headline: number | undefined;
    for (const size of G_SIZES) {
      if (timedOut) break;
      ctx.phase = `subscribing ${size - members} more (to ${size})`;
      const t0 = performance.now();
      // Seeded ids from 0: the channel's never-connected subscribers, size − connected of them.
      // None at a size the connected users fill already (1,000 of them at 1,000): the bulk route's
      // answer to an empty list is no member count.
      const more = seededUserIds(members - users.length, size - users.length);
      if (more.length > 0) members = await ctx.target.bulkSubscribe(owner, channel, more) + (ctx.target.name === "limit" ? users.length : 0);
      extra[`bulk_to_${size}_ms`] = Math.round(performance.now() - t0);
      const times: number[] = [];
      const cpu: number[] = [];
      const netCpu: number[] = [];
      const idleCpu: number[] = [];
      for (let i = 0; i < p.posts! && !timedOut; i++) {
        await sleep(200);
        const r = await post(`${size}-${i}`);
        if (!r.ok) { timedOut = true; break; }
        times.push(r.ms);
        cpu.push(r.cpuMs);
        netCpu.push(r.netCpuMs);
        idleCpu.push(r.idleCpuMsPerS);
      }
      const median = (xs: number[]) => (xs.length ? Math.round(percentile(xs, 50) * 10) / 10 : Number.NaN);
      extra[`at_${size}_ms`] = times.map((v) => Math.round(v));
      extra[`at_${size}_cpu_ms`] = cpu.map((v) => Math.round(v));
      extra[`at_${size}_median_ms`] = median(times);
      extra[`at_${size}_median_cpu_ms`] = median(cpu);
      extra[`at_${size}_net_cpu_ms`] = netCpu.map((v) => Math.round(v));
      extra[`at_${size}_median_net_cpu_ms`] = median(netCpu);
      extra[`at_${size}_idle_cpu_ms_per_s`] = median(idleCpu);
      if (size === G_SIZES.at(-1)) headline = median(times);
    }
    await closeAll(devices as Device[], ctx);
    return {
      traffic: tracker.report(), timedOut, extra,
      headline: headline === undefined || Number.isNaN(headline) ? undefined : {
        label: `time until all ${recipients.length} other connected devices have a post, 100,000 subscribers (median)`, value: headline, unit: "ms", better: "lower",
      },
    };
  },
};
