/**
 * (d) One post to a 1,000-member group with every member online: how long until the last of the
 * 999 other members has it. Posts go one at a time, each after the previous one fully arrived.
 */
import { percentile } from "../load/percentiles.js";
import type { SenderPattern } from "../load/sender.js";
import { sleep } from "../load/pool.js";
import { closeAll, connectAll, drain, newTracker, nth, sendAll, timeLeft, type Scenario } from "./scenario.js";

/** One message at a time: the window and rate do not apply to single posts. */
const ONE_POST: SenderPattern = { window: 1, ratePerSec: 0 };

export const group1000: Scenario = {
  id: "d",
  title: "one post to a large group, all online",
  users: (quick) => (quick ? 200 : 1000),
  params: (quick) => ({ members: quick ? 200 : 1000, posts: quick ? 3 : 10 }),
  // 1,000 connects (~35 s) and ten posts of ~2 s each do not fit the default 60 s: the last full
  // run was cut after its seventh post and reported as timed out.
  budgetMs: (quick) => (quick ? 60_000 : 180_000),
  async run(ctx, p) {
    ctx.phase = "creating the group";
    const users = await ctx.target.users(p.members!);
    const owner = nth(users, 0);
    const channel = await ctx.target.createGroup(owner, users, "bench d");
    const tracker = newTracker(ctx);
    const connectStart = performance.now();
    const devices = await connectAll(ctx, users, () => [channel], tracker);
    const connectMs = performance.now() - connectStart;
    const sender = nth(devices, 0);
    const recipients = devices.slice(1).map((d) => d.key);
    const allDelivered: number[] = [];
    let timedOut = false;
    for (let i = 0; i < p.posts! && !timedOut; i++) {
      await sleep(200); // let the previous post's tail (acks, closes) settle
      const sentAt = performance.now();
      await sendAll(ctx, tracker, [{ device: sender, channelId: channel, count: 1, recipients, idPrefix: `${ctx.runTag}-d-${i}` }], ONE_POST);
      timedOut = !(await drain(ctx, tracker)) || timeLeft(ctx) === 0;
      if (!timedOut) allDelivered.push(tracker.lastDeliveryAt - sentAt);
    }
    await closeAll(devices, ctx);
    const traffic = tracker.report();
    return {
      traffic, timedOut,
      headline: allDelivered.length === 0 ? undefined : {
        label: `time until all ${recipients.length} members have a post (median)`, value: percentile(allDelivered, 50), unit: "ms", better: "lower",
      },
      extra: { all_delivered_ms: allDelivered.map((v) => Math.round(v)), connect_ms: Math.round(connectMs) },
    };
  },
};
