/** (a) One sender, one receiver in a 1:1 channel: the round trip of a single conversation. */
import { closeAll, connectAll, drain, newTracker, nth, sendAll, type Scenario } from "./scenario.js";

export const oneToOne: Scenario = {
  id: "a",
  title: "1 sender → 1 receiver",
  users: () => 2,
  params: (quick, pattern) => ({ messages: quick ? 1000 : 5000, window: pattern.window, rate_per_sender: pattern.ratePerSec }),
  async run(ctx, p) {
    ctx.phase = "creating the channel";
    const users = await ctx.target.users(2);
    const channel = await ctx.target.createDm(nth(users, 0), nth(users, 1));
    const tracker = newTracker(ctx);
    const devices = await connectAll(ctx, users, () => [channel], tracker);
    const [sender, receiver] = [nth(devices, 0), nth(devices, 1)];
    await sendAll(ctx, tracker, [{ device: sender, channelId: channel, count: p.messages!, recipients: [receiver.key], idPrefix: `${ctx.runTag}-a` }]);
    const done = await drain(ctx, tracker);
    await closeAll(devices, ctx);
    const traffic = tracker.report();
    return {
      traffic, timedOut: !done,
      headline: { label: "messages/s", value: traffic.msgsPerSec ?? 0, unit: "msg/s", better: "higher" },
      extra: {},
    };
  },
};
