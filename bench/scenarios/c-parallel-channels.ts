/** (c) 50 independent 1:1 channels at once (100 users): throughput across many channel objects. */
import { pool } from "../load/pool.js";
import { closeAll, connectAll, drain, newTracker, nth, sendAll, type Scenario } from "./scenario.js";

export const parallelChannels: Scenario = {
  id: "c",
  title: "1:1 channels in parallel",
  users: () => 100,
  params: (quick, pattern) => ({ channels: 50, messages_per_channel: quick ? 40 : 200, window: pattern.window, rate_per_sender: pattern.ratePerSec }),
  async run(ctx, p) {
    const pairs = p.channels!;
    ctx.phase = "creating the channels";
    const users = await ctx.target.users(pairs * 2);
    const channels = await pool(Array.from({ length: pairs }, (_, i) => i), 8, (i) => ctx.target.createDm(nth(users, 2 * i), nth(users, 2 * i + 1)));
    const tracker = newTracker(ctx);
    const devices = await connectAll(ctx, users, (_, i) => [nth(channels, Math.floor(i / 2))], tracker);
    await sendAll(ctx, tracker, channels.map((channel, i) => ({
      device: nth(devices, 2 * i), channelId: channel, count: p.messages_per_channel!,
      recipients: [nth(devices, 2 * i + 1).key], idPrefix: `${ctx.runTag}-c-${i}`,
    })));
    const done = await drain(ctx, tracker);
    await closeAll(devices, ctx);
    const traffic = tracker.report();
    return {
      traffic, timedOut: !done,
      headline: { label: "messages/s (all channels)", value: traffic.msgsPerSec ?? 0, unit: "msg/s", better: "higher" },
      extra: {},
    };
  },
};
