/**
 * (e) Reconnect catch-up: one device is offline while 10 members send it messages in 10
 * channels; it reconnects and RESUMEs with its cursors. Measured: from opening the socket until
 * every message is there, each exactly once and in order per channel. Messages a RESUME does not
 * carry (edgechat caps it at 1,000 per channel) are paged in with PULL_HISTORY, as a client would.
 */
import { LIMITS } from "../../protocol/limits.js";
import { pool } from "../load/pool.js";
import type { ChannelCursor } from "../load/target.js";
import { PRIMARY_DEVICE, checkTime, closeAll, connectAll, drain, newTracker, nth, quiesce, sendAll, timeLeft, type Scenario } from "./scenario.js";

export const resumeCatchUp: Scenario = {
  id: "e",
  title: "reconnect catch-up (RESUME)",
  users: () => 10,
  params: (quick, pattern) => ({ channels: 10, messages_per_channel: quick ? 200 : 1000, window: pattern.window, rate_per_sender: pattern.ratePerSec }),
  async run(ctx, p) {
    ctx.phase = "creating the channels";
    const senders = await ctx.target.users(p.channels!);
    const reader = await ctx.target.freshUser("resume");
    const channels = await pool(senders, 8, (s) => ctx.target.createDm(s, reader));
    const mine = new Set(channels);

    // 1. The reader's device learns where each channel stands, then goes offline.
    const first = await ctx.target.connect(reader, PRIMARY_DEVICE, channels, undefined, { resume: false });
    ctx.devices.push(first);
    ctx.phase = "first RESUME";
    const states = await first.resume([], timeLeft(ctx));
    const cursors: ChannelCursor[] = states.filter((c) => mine.has(c.channel_id));
    await first.close();

    // 2. Ten senders, one per channel, while the reader is away.
    const tracker = newTracker(ctx);
    const sendDevices = await connectAll(ctx, senders, (_, i) => [nth(channels, i)], tracker);
    await sendAll(ctx, tracker, sendDevices.map((device, i) => ({
      device, channelId: nth(channels, i), count: p.messages_per_channel!, recipients: [], idPrefix: `${ctx.runTag}-e-${i}`,
    })));
    await closeAll(sendDevices, ctx);
    checkTime(ctx, "sending the backlog");
    // The server may still be working through the burst (edgechat: fan-out to the reader's
    // UserObject); catch-up is timed from a quiet server, and the wait is reported.
    ctx.phase = "waiting for a quiet server";
    const settleMs = await quiesce(ctx.target, Math.min(20_000, timeLeft(ctx) / 2));

    // 3. Reconnect and RESUME: time until fully caught up.
    const readerKey = `${reader.userId}/${PRIMARY_DEVICE}`;
    for (const c of channels) tracker.expect(readerKey, tracker.idsIn(c));
    tracker.recordDeliveryLatency = false; // send→deliver is meaningless for a backlog
    ctx.phase = "reconnecting and RESUME";
    const t0 = performance.now();
    const device = await ctx.target.connect(reader, PRIMARY_DEVICE, channels, tracker, { resume: false });
    ctx.devices.push(device);
    const helloMs = performance.now() - t0;
    const after = await device.resume(cursors, timeLeft(ctx));
    const resumedMs = performance.now() - t0;
    let pulls = 0;
    for (const state of after.filter((c) => mine.has(c.channel_id))) {
      let have = tracker.highestSeq(device.key, state.channel_id);
      while (have < state.last_seq) {
        checkTime(ctx, "paging history");
        const page = await device.pullAfter(state.channel_id, have, LIMITS.maxPageSize, timeLeft(ctx));
        pulls++;
        if (page.messages === 0 || page.lastSeq <= have) break;
        have = page.lastSeq;
      }
    }
    const done = await drain(ctx, tracker);
    const caughtUpMs = Math.max(tracker.lastDeliveryAt, t0 + resumedMs) - t0;
    await device.close();
    const backlog = p.channels! * p.messages_per_channel!;
    // Deliveries here are the catch-up, so their rate is the backlog over the catch-up time.
    const report = tracker.report();
    const traffic = { ...report, deliveriesPerSec: report.delivered / (caughtUpMs / 1000) };
    return {
      traffic, timedOut: !done,
      headline: { label: `time to catch up on ${backlog.toLocaleString("en-US")} messages`, value: caughtUpMs, unit: "ms", better: "lower" },
      extra: {
        quiet_after_last_ack_ms: Math.round(settleMs), hello_ms: Math.round(helloMs), resumed_ms: Math.round(resumedMs), pull_history_calls: pulls,
      },
    };
  },
};
