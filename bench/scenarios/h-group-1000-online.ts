/**
 * (h) The cost of a post in a 1,000-member group by how many members are online: first with 10
 * members connected (990 offline), then with all 1,000 connected. Posts go one at a time, each
 * after the previous one fully arrived. Headline: the median time until the other 9 online members
 * have a post with 10 online; the all-online median is beside it (the run's CPU note covers both).
 * In edgechat the group is in the relay tier (more than DIRECT_TIER_MAX_MEMBERS members).
 */
import { percentile } from "../load/percentiles.js";
import type { SenderPattern } from "../load/sender.js";
import { sleep } from "../load/pool.js";
import type { Device } from "../load/target.js";
import type { Tracker } from "../load/tracker.js";
import { closeAll, connectAll, drain, newTracker, nth, sendAll, timeLeft, type Scenario, type ScenarioContext } from "./scenario.js";

const ONE_POST: SenderPattern = { window: 1, ratePerSec: 0 };

async function posts(ctx: ScenarioContext, tracker: Tracker, sender: Device, recipients: string[], channel: string, count: number, tag: string) {
  const times: number[] = [];
  let timedOut = false;
  for (let i = 0; i < count && !timedOut; i++) {
    await sleep(200);
    const sentAt = performance.now();
    await sendAll(ctx, tracker, [{ device: sender, channelId: channel, count: 1, recipients, idPrefix: `${ctx.runTag}-h-${tag}-${i}` }], ONE_POST);
    timedOut = !(await drain(ctx, tracker)) || timeLeft(ctx) === 0;
    if (!timedOut) times.push(tracker.lastDeliveryAt - sentAt);
  }
  return { times, timedOut };
}

export const group1000Online: Scenario = {
  id: "h",
  title: "a post to a 1,000-member group, 10 online vs all online",
  users: (quick) => (quick ? 200 : 1000),
  params: (quick) => ({ members: quick ? 200 : 1000, online_few: 10, posts: quick ? 3 : 10 }),
  // As (d): 1,000 connects and twenty posts do not fit the default 60 s.
  budgetMs: (quick) => (quick ? 60_000 : 240_000),
  async run(ctx, p) {
    ctx.phase = "creating the group";
    const users = await ctx.target.users(p.members!);
    const owner = nth(users, 0);
    const channel = await ctx.target.createGroup(owner, users, "bench h");
    const tracker = newTracker(ctx);
    const few = await connectAll(ctx, users.slice(0, p.online_few!), () => [channel], tracker);
    const sender = nth(few, 0);
    const fewPhase = await posts(ctx, tracker, sender, few.slice(1).map((d) => d.key), channel, p.posts!, "few");
    let allPhase = { times: [] as number[], timedOut: fewPhase.timedOut };
    let rest: Device[] = [];
    if (!fewPhase.timedOut) {
      rest = await connectAll(ctx, users.slice(p.online_few!), () => [channel], tracker);
      const everyone = [...few, ...rest];
      allPhase = await posts(ctx, tracker, sender, everyone.slice(1).map((d) => d.key), channel, p.posts!, "all");
    }
    await closeAll([...few, ...rest], ctx);
    const median = (xs: number[]) => (xs.length === 0 ? NaN : percentile(xs, 50));
    return {
      traffic: tracker.report(),
      timedOut: fewPhase.timedOut || allPhase.timedOut,
      headline: fewPhase.times.length === 0 ? undefined : {
        label: `time until the other ${p.online_few! - 1} online members have a post, ${p.online_few} of ${users.length} online (median)`,
        value: median(fewPhase.times), unit: "ms", better: "lower",
      },
      extra: {
        few_online_ms: fewPhase.times.map((v) => Math.round(v)),
        all_online_ms: allPhase.times.map((v) => Math.round(v)),
        all_online_median_ms: Math.round(median(allPhase.times)),
      },
    };
  },
};
