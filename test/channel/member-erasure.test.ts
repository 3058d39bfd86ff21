/**
 * A member's erasure in one channel (durable-objects/channel/erasure.ts) through the object's RPC
 * method, without the user's job: batches of tombstones, then the member and every row naming them
 * gone with one "account_deleted" notice, ownership handed over, idempotent once done.
 * test/api/erasure.test.ts runs the whole job across objects.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newId } from "../../shared/ids.js";
import { channelStub } from "../../shared/routing.js";
import type { MemberProfile } from "../../durable-objects/channel/types.js";

function profile(name: string): MemberProfile {
  return { user_id: newId("u"), username: name, display_name: name };
}

describe("eraseMember", () => {
  it("tombstones the member's messages in batches, then removes them with one notice and no row left naming them", async () => {
    const alice = profile("alice"), bob = profile("bob"), carol = profile("carol");
    const id = newId("c");
    const stub = channelStub(env, id);
    const created = await stub.create({ channelId: id, type: "group", name: "Team", creator: alice, members: [bob, carol], jurisdiction: "" });
    expect(created.ok).toBe(true);
    for (let i = 0; i < 5; i++) {
      const r = await stub.append({ userId: i === 2 ? bob.user_id : alice.user_id, deviceId: i === 2 ? "bob-phone" : "alice-phone", clientMsgId: `m${i}`, content: { text: { text: `secret ${i}` } } });
      expect(r.ok).toBe(true);
    }

    expect(await stub.eraseMember(alice.user_id, 2)).toEqual({ done: false, tombstoned: 2, attachments: 0 });
    expect(await stub.eraseMember(alice.user_id, 2)).toEqual({ done: false, tombstoned: 2, attachments: 0 });
    expect(await stub.eraseMember(alice.user_id, 2)).toEqual({ done: true, tombstoned: 0, attachments: 0 });
    expect(await stub.eraseMember(alice.user_id, 2)).toEqual({ done: true, tombstoned: 0, attachments: 0 });

    const page = await stub.history(bob.user_id, { after: 0, limit: 50 });
    if (!page.ok) throw new Error(page.message);
    const posts = page.messages.filter((m) => !m.content.system);
    expect(posts.map((m) => [m.sender_user_id === alice.user_id, m.deleted === true])).toEqual([[true, true], [true, true], [false, false], [true, true], [true, true]]);
    expect(JSON.stringify(page.messages)).not.toContain("alice-phone");
    const notices = page.messages.filter((m) => m.content.system?.event === "account_deleted");
    expect(notices.map((m) => m.content.system?.target_user_ids)).toEqual([[alice.user_id]]);

    const described = await stub.describe(bob.user_id);
    if (!described.ok) throw new Error(described.message);
    expect(described.channel.member_count).toBe(2);
    expect(described.channel.member_list.find((m) => m.role === "owner")?.user_id).toBe(bob.user_id);
    expect(await stub.describe(alice.user_id)).toMatchObject({ ok: false, code: "not_found" });
    const left = await runInDurableObject(stub, (_o, state) => ["members", "watchers"].map((t) =>
      state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${t} WHERE user_id = ?`, alice.user_id).one().n));
    expect(left).toEqual([0, 0]);
  });

  it("a channel that does not exist has nothing to erase", async () => {
    expect(await channelStub(env, newId("c")).eraseMember(newId("u"), 10)).toEqual({ done: true, tombstoned: 0, attachments: 0 });
  });
});
