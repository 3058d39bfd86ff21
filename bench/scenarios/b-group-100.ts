/** (b) A 100-member group, every member online with one device, 10 members sending at once. */
import { closeAll, connectAll, drain, newTracker, nth, sendAll, type Scenario } from "./scenario.js";

export const group100: Scenario = {
  id: "b",
  title: "group chat, concurrent senders",
  users: () => 100,
  params: (quick, pattern) => ({ members: 100, senders: 10, messages_per_sender: quick ? 40 : 500, window: pattern.window, rate_per_sender: pattern.ratePerSec }),
  async run(ctx, p) {
    ctx.phase = "creating the group";
    const users = await ctx.target.users(p.members!);
    const channel = await ctx.target.createGroup(nth(users, 0), users, "bench b");
    const tracker = newTracker(ctx);
    const devices = await connectAll(ctx, users, () => [channel], tracker);
    const senders = devices.slice(0, p.senders!);
    await sendAll(ctx, tracker, senders.map((device, i) => ({
      device, channelId: channel, count: p.messages_per_sender!,
      recipients: devices.filter((d) => d !== device).map((d) => d.key), idPrefix: `${ctx.runTag}-b-${i}`,
    })));
    const done = await drain(ctx, tracker);
    await closeAll(devices, ctx);
    const traffic = tracker.report();
    return {
      traffic, timedOut: !done,
      headline: { label: "deliveries/s", value: traffic.deliveriesPerSec ?? 0, unit: "deliveries/s", better: "higher" },
      extra: {},
    };
  },
};
