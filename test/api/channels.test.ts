import { describe, expect, it } from "vitest";
import { call, createGroup, register, type ChannelBody } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

interface Msg { seq: number; content: { text?: { text: string }; system?: { text: string; event: string; actor_user_id: string; target_user_ids: string[] } } }
interface Page { messages: Msg[]; next_cursor: number; has_more: boolean; last_seq: number }
interface List { channels: { channel_id: string; name: string; type: string; unread_count: number; last_seq: number; member_user_ids: string[] }[] }

describe("REST channels", () => {
  it("creates one DM per pair, whoever starts it; the list names no one, it lists both ids", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const first = await call<ChannelBody>("POST", "/v1/channels", { token: alice.access_token, body: { type: "dm", member: bob.username } });
    expect(first.status).toBe(201);
    const again = await call<ChannelBody>("POST", "/v1/channels", { token: bob.access_token, body: { type: "dm", member: alice.user_id } });
    expect(again.status).toBe(200);
    expect(again.body.channel.channel_id).toBe(first.body.channel.channel_id);
    const list = await call<List>("GET", "/v1/channels", { token: bob.access_token });
    expect(list.body.channels).toEqual([expect.objectContaining({ channel_id: first.body.channel.channel_id, type: "dm", name: "" })]);
    expect(list.body.channels[0]!.member_user_ids.sort()).toEqual([alice.user_id, bob.user_id].sort());
    const self = await call("POST", "/v1/channels", { token: alice.access_token, body: { type: "dm", member: alice.username } });
    expect([self.status, self.body.code]).toEqual([400, "invalid_argument"]);
    const nobody = await call("POST", "/v1/channels", { token: alice.access_token, body: { type: "dm", member: "no_such_user" } });
    expect([nobody.status, nobody.body.code]).toEqual([404, "not_found"]);
  });

  it("manages group members with system messages and roles", async () => {
    const [alice, bob, carol] = await Promise.all([register("alice"), register("bob"), register("carol")]);
    const id = await createGroup(alice, [bob], "Launch");
    const denied = await call("POST", `/v1/channels/${id}/members`, { token: bob.access_token, body: { members: [carol.username] } });
    expect([denied.status, denied.body.code]).toEqual([403, "forbidden"]);
    const added = await call<ChannelBody>("POST", `/v1/channels/${id}/members`, { token: alice.access_token, body: { members: [carol.username] } });
    expect(added.body.channel.member_count).toBe(3);
    const removed = await call<ChannelBody>("DELETE", `/v1/channels/${id}/members/${bob.user_id}`, { token: alice.access_token });
    expect(removed.body.channel.member_list.map((m) => m.user_id).sort()).toEqual([alice.user_id, carol.user_id].sort());
    const page = await call<Page>("GET", `/v1/channels/${id}/messages?after=0`, { token: carol.access_token });
    expect(page.body.messages.map((m) => m.content.system?.event)).toEqual(["created", "member_added", "member_removed"]);
    // Ids, not names: clients render "alice added carol" from profiles.
    expect(page.body.messages[1]?.content.system).toMatchObject({ actor_user_id: alice.user_id, target_user_ids: [carol.user_id], text: "added 1 person" });
    const bobsView = await call("GET", `/v1/channels/${id}/messages`, { token: bob.access_token });
    expect([bobsView.status, bobsView.body.code]).toEqual([403, "not_member"]);
    const detail = await call<ChannelBody>("GET", `/v1/channels/${id}`, { token: carol.access_token });
    expect(detail.body.channel.member_list.find((m) => m.user_id === alice.user_id)?.role).toBe("owner");
    // Bob's list keeps no channel he was removed from.
    const bobList = await call<List>("GET", "/v1/channels", { token: bob.access_token });
    expect(bobList.body.channels.map((c) => c.channel_id)).not.toContain(id);
  });

  it("lists channels by last activity with unread counts, and reads them down", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const older = await createGroup(alice, [bob], "Older");
    const newer = await createGroup(alice, [bob], "Newer");
    const b = await onlineDevice(bob.access_token, "b");
    await b.sendText(newer, "one");
    await b.sendText(older, "two");
    await b.sendText(older, "three");
    const list = await call<List>("GET", "/v1/channels", { token: alice.access_token });
    expect(list.body.channels.map((c) => [c.name, c.unread_count])).toEqual([["Older", 2], ["Newer", 1]]);
    const read = await call("POST", `/v1/channels/${older}/read`, { token: alice.access_token, body: { up_to_seq: 2 } });
    expect(read.body).toEqual({ last_read_seq: 2, unread_count: 1 });
    b.close();
  });

  it("pages history with before/after cursors and validates the query", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const id = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    for (let i = 0; i < 9; i++) await a.sendText(id, `m${i}`);
    const newest = await call<Page>("GET", `/v1/channels/${id}/messages?limit=4`, { token: bob.access_token });
    expect(newest.body.messages.map((m) => m.seq)).toEqual([7, 8, 9, 10]);
    const older = await call<Page>("GET", `/v1/channels/${id}/messages?before=${newest.body.next_cursor}&limit=4`, { token: bob.access_token });
    expect(older.body.messages.map((m) => m.seq)).toEqual([3, 4, 5, 6]);
    const fwd = await call<Page>("GET", `/v1/channels/${id}/messages?after=8`, { token: bob.access_token });
    expect([fwd.body.messages.map((m) => m.seq), fwd.body.has_more]).toEqual([[9, 10], false]);
    for (const q of ["limit=0", "limit=abc", "before=-1", "limit=201"]) {
      const bad = await call("GET", `/v1/channels/${id}/messages?${q}`, { token: bob.access_token });
      expect([bad.status, bad.body.code], q).toEqual([400, "invalid_argument"]);
    }
    const unknown = await call("GET", "/v1/channels/not-a-channel/messages", { token: bob.access_token });
    expect(unknown.status).toBe(404);
    a.close();
  });

  it("finds users by username", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const found = await call("GET", `/v1/users?username=${bob.username.toUpperCase()}`, { token: alice.access_token });
    expect(found.body).toEqual({ user_id: bob.user_id, username: bob.username, display_name: bob.display_name });
    expect((await call("GET", `/v1/users/${bob.user_id}`, { token: alice.access_token })).body.username).toBe(bob.username);
    expect((await call("GET", "/v1/users?username=ghost", { token: alice.access_token })).status).toBe(404);
  });

  it("pages a group's members with a cursor and looks up their profiles in one call", async () => {
    const [alice, ...others] = await Promise.all(Array.from({ length: 6 }, (_, i) => register(i === 0 ? "alice" : "member")));
    const id = await createGroup(alice!, others);
    const detail = await call<ChannelBody & { channel: { members_next_cursor: string } }>("GET", `/v1/channels/${id}`, { token: alice!.access_token });
    expect(detail.body.channel.member_list).toHaveLength(6);
    expect(detail.body.channel.members_next_cursor).toBe("");
    const seen: string[] = [];
    let cursor = "";
    do {
      const page = await call<{ members: { user_id: string; role: string }[]; next_cursor: string }>("GET", `/v1/channels/${id}/members?limit=4${cursor ? `&cursor=${cursor}` : ""}`, { token: others[0]!.access_token });
      expect(page.status).toBe(200);
      seen.push(...page.body.members.map((m) => m.user_id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen[0]).toBe(alice!.user_id);
    expect([...seen].sort()).toEqual([alice!.user_id, ...others.map((u) => u.user_id)].sort());
    const bad = await call("GET", `/v1/channels/${id}/members?limit=100000`, { token: alice!.access_token });
    expect([bad.status, bad.body.code]).toEqual([400, "invalid_argument"]);
    const outsider = await register("outsider");
    const hidden = await call("GET", `/v1/channels/${id}/members`, { token: outsider.access_token });
    expect([hidden.status, hidden.body.code]).toEqual([404, "not_found"]);
    const profiles = await call<{ users: { user_id: string; username: string; display_name: string }[] }>("GET", `/v1/users?ids=${seen.slice(0, 3).join(",")},u_g_00000000000000000000000000`, { token: alice!.access_token });
    expect(profiles.body.users.map((u) => u.user_id).sort()).toEqual(seen.slice(0, 3).sort());
    expect(profiles.body.users[0]).toHaveProperty("display_name");
    const tooMany = await call("GET", `/v1/users?ids=${Array.from({ length: 101 }, () => alice!.user_id).map((x, i) => x.slice(0, -2) + String(i).padStart(2, "0")).join(",")}`, { token: alice!.access_token });
    expect([tooMany.status, tooMany.body.code]).toEqual([400, "invalid_argument"]);
  });
});
