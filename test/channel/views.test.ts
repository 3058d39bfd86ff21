/**
 * ChannelViews on its own (durable-objects/channel/views.ts) over a channel's real tables: what a
 * member may read (details, member pages, history, state), what a stranger and a subscriber of a
 * broadcast channel are refused.
 */
import { describe, expect, it } from "vitest";
import { HLC_ZERO } from "../../durable-objects/channel/hlc.js";
import { Membership } from "../../durable-objects/channel/membership.js";
import { SenderRateLimiter } from "../../durable-objects/channel/rate-limit.js";
import { Retention, retentionConfig } from "../../durable-objects/channel/retention.js";
import { Sequencer } from "../../durable-objects/channel/sequencer.js";
import type { ChannelType } from "../../durable-objects/channel/types.js";
import { ChannelViews, createChannelRow } from "../../durable-objects/channel/views.js";
import { inFreshChannel } from "../helpers/object-sql.js";

const CHANNEL = "c_g_00000000000000000000000000";

function setup(sql: SqlStorage, type: ChannelType) {
  const row = createChannelRow(sql, { channelId: CHANNEL, type, name: "News", createdBy: "u_owner", jurisdiction: "" }, 1);
  const members = new Membership(sql);
  members.load();
  const log = new Sequencer(sql, new SenderRateLimiter({ perSecond: 0, burst: 10 }), () => {});
  log.start(CHANNEL, 0, HLC_ZERO);
  const retention = new Retention(sql, retentionConfig({}));
  retention.load();
  members.add("u_owner", "owner", 1, 0);
  members.add("u_sub", "member", 1, 0);
  const views = new ChannelViews({
    sql, members, log, retention, row: () => row, activity: () => ({ hlc: "", at: 0 }), supersededBy: () => undefined,
    requireMember: (userId) => members.require(userId),
  });
  return { views, log };
}

describe("ChannelViews", () => {
  it("a broadcast channel lists its subscribers to its owner and admins only; strangers hear it does not exist", async () => {
    await inFreshChannel((sql) => {
      const { views } = setup(sql, "broadcast");
      expect(views.memberPage("u_sub", "", 10)).toMatchObject({ ok: false, code: "forbidden" });
      const page = views.memberPage("u_owner", "", 10);
      expect(page.ok && page.members.map((m) => m.user_id)).toEqual(["u_owner", "u_sub"]);
      expect(views.describe("u_sub")).toMatchObject({ ok: true, channel: { member_list: [], member_count: 2 } });
      for (const read of [views.describe("u_x"), views.memberPage("u_x", "", 10), views.state("u_x"), views.history("u_x", { after: 0, limit: 5 })]) {
        expect(read).toMatchObject({ ok: false, code: "not_found" });
      }
    });
  });

  it("history carries the low-water mark; state is the member's own", async () => {
    await inFreshChannel((sql) => {
      const { views, log } = setup(sql, "group");
      log.append({ userId: "u_owner", deviceId: "d", clientMsgId: "m1", content: { text: { text: "hi" } } });
      const page = views.history("u_sub", { after: 0, limit: 5 });
      expect(page).toMatchObject({ ok: true, min_seq: 1 });
      expect(page.ok && page.messages.map((m) => m.seq)).toEqual([1]);
      expect(views.state("u_sub")).toMatchObject({ ok: true, state: { member: true, last_seq: 1, unread_count: 1 } });
      expect(views.memberPage("u_sub", "", 10)).toMatchObject({ ok: true });
    });
  });
});
