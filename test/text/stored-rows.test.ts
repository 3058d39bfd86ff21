/**
 * Issue 8 item 1, second half: text stored before the edges checked it (a lone surrogate in
 * message content, reactions, channel and member names, the user's channel list) is repaired
 * with U+FFFD where it is read, so one bad row never makes a DELIVER, RESUME, HISTORY_PAGE,
 * RESUMED, CHANNEL_UPDATE or REST page undecodable for anyone. The bad rows are written the way
 * the old code wrote them: through the objects' RPC (which the edges now guard) or straight into
 * their SQLite tables.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { illFormedPaths } from "../../protocol/text.js";
import { newId } from "../../shared/ids.js";
import { channelStub, userStub } from "../../shared/routing.js";
import { call, createGroup, register, type TestUser } from "../helpers/api.js";
import { untilOffline } from "../helpers/settle.js";
import { j } from "../helpers/text.js";
import { fullHistory, probeHello, probeOnline, T, type Msg, type ProbeDevice } from "../reliability/support.js";

let alice: TestUser, bob: TestUser;

beforeAll(async () => {
  [alice, bob] = await Promise.all([register("alice"), register("bob")]);
});

/** Closing the last sockets makes each user's object report to its presence shard: let that land. */
afterAll(() => untilOffline(alice, [alice, bob]), 30_000);

const profile = (u: TestUser, display_name = u.display_name) => ({ user_id: u.user_id, username: u.username, display_name });

/** Devices of `user` in both encodings, resumed from nothing. */
async function bothEncodings(user: TestUser): Promise<{ proto: ProbeDevice; json: ProbeDevice; messages: Record<"proto" | "json", Msg[]>; channels: Record<"proto" | "json", { channel_id?: string | null; name?: string | null; members?: { display_name?: string | null }[] | null }[]> }> {
  const proto = await probeHello(user.access_token, undefined, "proto");
  const json = await probeHello(user.access_token, undefined, "json");
  const [p, j] = await Promise.all([proto.resume(), json.resume()]);
  return {
    proto, json,
    messages: { proto: p.messages, json: j.messages },
    channels: { proto: p.resumed.resumed?.channels ?? [], json: j.resumed.resumed?.channels ?? [] },
  };
}

function expectWellFormed(value: unknown, what: string): void {
  expect(illFormedPaths(value).map((p) => p.path), what).toEqual([]);
}



describe("rows stored with text that is not well-formed", () => {
  it("repairs channel and member names: RESUMED, CHANNEL_UPDATE and the REST channel list decode for everyone", async () => {
    // The old REST edge let these through to the channel, which keeps and fans out what it is given.
    const id = newId("c", "");
    const created = await channelStub(env, id).create({
      channelId: id, type: "group", name: "Team\ud800", creator: profile(alice), members: [profile(bob, "Bob\udc00")], jurisdiction: "",
    });
    expect(created.ok).toBe(true);
    expectWellFormed(created, "create() answer");
    const dm = newId("c", "");
    await channelStub(env, dm).create({ channelId: dm, type: "dm", name: "", creator: profile(alice, "Al\ud83dice"), members: [profile(bob)], jurisdiction: "" });

    for (const user of [alice, bob]) {
      const d = await bothEncodings(user);
      for (const encoding of ["proto", "json"] as const) {
        expect(d[encoding].undecodable, `${encoding} device of ${user.username}`).toEqual([]);
        const team = d.channels[encoding].find((c) => c.channel_id === id);
        expect(j(team?.name), encoding).toBe(j("Team\uFFFD"));
        // Lists carry member ids, not names (names come from profiles): nothing stored to repair there.
        expect(team?.members ?? [], encoding).toEqual([]);
      }
      expect(j(d.channels.json.map((c) => [c.channel_id, c.name]))).toBe(j(d.channels.proto.map((c) => [c.channel_id, c.name])));
      d.proto.close();
      d.json.close();
    }
    const bobsDm = await call<{ channels: { channel_id: string; name: string }[] }>("GET", "/v1/channels", { token: bob.access_token });
    expectWellFormed(bobsDm.body, "GET /v1/channels");
    // A DM has no name of its own (clients show the other member's profile name): nothing to repair.
    expect(bobsDm.body.channels.find((c) => c.channel_id === dm)?.name).toBe("");
    const detail = await call("GET", `/v1/channels/${id}`, { token: alice.access_token });
    expectWellFormed(detail.body, "GET /v1/channels/{id}");
    const page = await call("GET", `/v1/channels/${id}/messages`, { token: alice.access_token });
    expectWellFormed(page.body, "history with the creation notice built from the bad names");

    // A membership change sends CHANNEL_UPDATE with the stored names to every device.
    const watcher = await probeOnline(alice.access_token, undefined, "proto");
    const carol = await register("carol");
    expect((await call("POST", `/v1/channels/${id}/members`, { token: alice.access_token, body: { members: [carol.user_id] } })).status).toBe(200);
    const update = await watcher.take((f) => f.type === T.CHANNEL_UPDATE && f.channel_update?.channel?.channel_id === id, 10_000, "CHANNEL_UPDATE");
    expect(j(update.channel_update?.channel?.name)).toBe(j("Team\uFFFD"));
    expect(watcher.undecodable).toEqual([]);
    watcher.close();
  });

  it("repairs a user's stored channel list", async () => {
    const id = await createGroup(alice, [bob], "List");
    // The list row as an older release stored it, its name not well-formed.
    await runInDurableObject(userStub(env, bob.user_id), (_o, state) => {
      state.storage.sql.exec("UPDATE channels SET name = ? WHERE channel_id = ?", "List\ud800", id);
    });
    const d = await bothEncodings(bob);
    for (const encoding of ["proto", "json"] as const) {
      expect(d[encoding].undecodable, encoding).toEqual([]);
      // Repaired where it is read, or already replaced by the channel's own state when the user's
      // object watched the channel again: either way well-formed, never the stored bytes.
      expect(["List\uFFFD", "List"], encoding).toContain(d.channels[encoding].find((c) => c.channel_id === id)?.name);
    }
    d.proto.close();
    d.json.close();
    expectWellFormed((await call("GET", "/v1/channels", { token: bob.access_token })).body, "GET /v1/channels");
  });

  it("repairs message content and reactions: RESUME, HISTORY_PAGE, live changes and REST history decode, the same in both encodings", async () => {
    const id = await createGroup(alice, [bob], "Poisoned");
    const sender = await probeOnline(alice.access_token, undefined, "proto");
    for (const text of ["one", "two", "three", "four"]) expect((await sender.sendText(id, text)).type).toBe(T.SEND_ACK);
    // Seq 1 is the creation notice; 2..5 are "one".."four". Poison 3 and 4 as the old code stored them (proto-JSON).
    await runInDurableObject(channelStub(env, id), (_o, state) => {
      state.storage.sql.exec("UPDATE messages SET content = ? WHERE seq = 3", '{"text":{"text":"t\\ud800wo"}}');
      state.storage.sql.exec("UPDATE messages SET reactions = ? WHERE seq = 4", `[{"emoji":"\\ud83d","user_ids":["${bob.user_id}"]}]`);
    });

    const d = await bothEncodings(bob);
    for (const encoding of ["proto", "json"] as const) {
      expect(d[encoding].undecodable, encoding).toEqual([]);
      const got = d.messages[encoding].filter((m) => m.channel_id === id);
      expect(got.map((m) => Number(m.seq)), encoding).toEqual([1, 2, 3, 4, 5]);
      expect(j(got.slice(1).map((m) => m.content?.text?.text)), encoding).toBe(j(["one", "t\uFFFDwo", "three", "four"]));
      expect(j(got[3]?.reactions?.map((r) => r.emoji)), encoding).toBe(j(["\uFFFD"]));
    }

    // A pull from before the bad rows, and REST history.
    for (const dev of [d.proto, d.json]) {
      const page = await dev.reply(dev.send({ type: T.PULL_HISTORY, pull_history: { channel_id: id, after_seq: 0 } }));
      expect(j(page.history_page?.messages?.map((m) => m.content?.text?.text ?? m.content?.system?.event)), dev.encoding).toBe(j(["created", "one", "t\uFFFDwo", "three", "four"]));
    }
    const rest = await fullHistory(bob, id);
    expectWellFormed(rest, "REST history");
    expect(j(rest[2]?.content?.text?.text)).toBe(j("t\uFFFDwo"));

    // A change to the bad message is fanned out with the message as it is now.
    const react = await sender.reply(sender.send({ type: T.REACT, react: { channel_id: id, seq: 3, emoji: "👍", op: "add" } }));
    expect(react.type).toBe(T.MESSAGE_UPDATE);
    for (const dev of [d.proto, d.json]) {
      const live = await dev.take((f) => f.type === T.DELIVER && (f.deliver?.messages ?? []).some((m) => Number(m.content?.update?.target_seq) === 3), 10_000, "the change");
      expect(j(live.deliver?.messages?.[0]?.content?.update?.target?.content?.text?.text), dev.encoding).toBe(j("t\uFFFDwo"));
      expect(dev.undecodable, dev.encoding).toEqual([]);
      dev.close();
    }
    // A change goes to the sender's devices too: once it is there, the fan-out is done.
    await sender.take((f) => f.type === T.DELIVER && (f.deliver?.messages ?? []).some((m) => Number(m.content?.update?.target_seq) === 3), 10_000, "the change");
    expect(sender.undecodable).toEqual([]);
    sender.close();
  });
});
