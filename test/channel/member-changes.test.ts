/**
 * The rules of who joins and leaves a channel (durable-objects/channel/member-changes.ts), through
 * the object's RPC methods without the Worker: creation (first members, roles, DMs), adds and removals by role, roles, bulk adds to a
 * broadcast channel (all or nothing, idempotent), invite links (who manages them, one join each).
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newId } from "../../shared/ids.js";
import { channelStub } from "../../shared/routing.js";
import { parseInviteCode } from "../../durable-objects/channel/invites.js";
import type { ChannelType, MemberProfile } from "../../durable-objects/channel/types.js";

const person = (name: string): MemberProfile => ({ user_id: newId("u"), username: name, display_name: name });

async function channel(type: ChannelType, owner: MemberProfile, members: MemberProfile[]) {
  const id = newId("c");
  const stub = channelStub(env, id);
  const r = await stub.create({ channelId: id, type, name: "Team", creator: owner, members, jurisdiction: "" });
  if (!r.ok) throw new Error(r.message);
  return stub;
}

describe("member changes", () => {
  it("creation: the creator owns a group, a DM has exactly two members and is found again, an existing channel is a conflict", async () => {
    const owner = person("owner"), a = person("a"), b = person("b");
    const id = newId("c");
    const stub = channelStub(env, id);
    const input = { channelId: id, type: "group" as const, name: "Team", creator: owner, members: [a, a, owner], jurisdiction: "" };
    const made = await stub.create(input);
    expect(made).toMatchObject({ ok: true, created: true, channel: { member_count: 2 }, notice: { state: { member: true } } });
    const members = await stub.listMembers(owner.user_id);
    expect(members.ok && members.members.map((m) => [m.user_id, m.role])).toEqual([[owner.user_id, "owner"], [a.user_id, "member"]]);
    expect(await stub.create(input)).toMatchObject({ ok: false, code: "conflict" });

    const dmId = newId("c");
    const dm = channelStub(env, dmId);
    const tooMany = { channelId: dmId, type: "dm" as const, name: "", creator: a, members: [b, owner], jurisdiction: "" };
    expect(await dm.create(tooMany)).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(await dm.create({ ...tooMany, members: [b] })).toMatchObject({ ok: true, created: true });
    expect(await dm.create({ ...tooMany, members: [b] })).toMatchObject({ ok: true, created: false, channel: { member_count: 2 } });
    const dmMembers = await dm.listMembers(a.user_id);
    expect(dmMembers.ok && dmMembers.members.map((m) => m.role)).toEqual(["member", "member"]);
    const page = await dm.history(a.user_id, { after: 0, limit: 20 });
    expect(page.ok && page.messages.map((m) => m.content.system?.event)).toEqual(["created"]);
  });

  it("owners and admins add and remove; members only leave; the owner is never removed; only the owner changes roles", async () => {
    const owner = person("owner"), admin = person("admin"), member = person("member"), newcomer = person("newcomer");
    const stub = await channel("group", owner, [admin, member]);
    expect(await stub.setRole(admin.user_id, member.user_id, "admin")).toMatchObject({ ok: false, code: "forbidden" });
    expect(await stub.setRole(owner.user_id, admin.user_id, "admin")).toEqual({ ok: true, member: { user_id: admin.user_id, role: "admin" } });
    expect(await stub.setRole(owner.user_id, owner.user_id, "member")).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(await stub.addMembers(member.user_id, [newcomer])).toMatchObject({ ok: false, code: "forbidden" });
    expect(await stub.addMembers(admin.user_id, [newcomer, newcomer])).toMatchObject({ ok: true, channel: { member_count: 4 } });
    expect(await stub.removeMember(member.user_id, newcomer.user_id)).toMatchObject({ ok: false, code: "forbidden" });
    expect(await stub.removeMember(admin.user_id, owner.user_id)).toMatchObject({ ok: false, code: "forbidden" });
    expect(await stub.removeMember(admin.user_id, newcomer.user_id)).toMatchObject({ ok: true, channel: { member_count: 3 } });
    expect(await stub.removeMember(member.user_id, member.user_id)).toMatchObject({ ok: true, channel: { member_count: 2 } });
    expect(await stub.addMembers(member.user_id, [newcomer])).toMatchObject({ ok: false, code: "not_member" });
    const page = await stub.history(owner.user_id, { after: 0, limit: 20 });
    expect(page.ok && page.messages.map((m) => m.content.system?.event)).toEqual(["created", "member_added", "member_removed", "member_left"]);
  });

  it("a DM's members are fixed and it has no roles or links", async () => {
    const a = person("a"), b = person("b");
    const stub = await channel("dm", a, [b]);
    expect(await stub.mayAddMembers(a.user_id)).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(await stub.removeMember(a.user_id, a.user_id)).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(await stub.setRole(a.user_id, b.user_id, "admin")).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(await stub.createInvite(a.user_id, {})).toMatchObject({ ok: false, code: "invalid_argument" });
  });

  it("bulk adds go to broadcast channels only, by admins, silently, all or nothing past the cap, counting who was in already", async () => {
    const owner = person("owner"), sub = person("sub");
    const group = await channel("group", owner, [sub]);
    expect(await group.bulkAdd(owner.user_id, [newId("u")])).toMatchObject({ ok: false, code: "invalid_argument" });
    const stub = await channel("broadcast", owner, [sub]);
    await runInDurableObject(stub, (obj) => void ((obj as unknown as { subscriberCap: number }).subscriberCap = 4));
    expect(await stub.bulkAdd(sub.user_id, [newId("u")])).toMatchObject({ ok: false, code: "forbidden" });
    const one = newId("u");
    expect(await stub.bulkAdd(owner.user_id, [one, one, sub.user_id])).toEqual({ ok: true, added: 1, already: 1, member_count: 3 });
    expect(await stub.bulkAdd(owner.user_id, [newId("u"), newId("u")])).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(await stub.bulkAdd(owner.user_id, [newId("u")])).toMatchObject({ ok: true, added: 1, member_count: 4 });
    const page = await stub.history(owner.user_id, { after: 0, limit: 20 });
    expect(page.ok && page.messages.map((m) => m.content.system?.event)).toEqual(["created"]);
  });

  it("invite links: admins manage them, a preview shows no members, each person joins once, a revoked link stops working", async () => {
    const owner = person("owner"), member = person("member"), joiner = person("joiner");
    const stub = await channel("group", owner, [member]);
    expect(await stub.createInvite(member.user_id, {})).toMatchObject({ ok: false, code: "forbidden" });
    const created = await stub.createInvite(owner.user_id, { maxUses: 5 });
    if (!created.ok) throw new Error(created.message);
    const { secret } = parseInviteCode(created.invite.code)!;
    expect(await stub.previewInvite(joiner.user_id, secret)).toMatchObject({ ok: true, member: false, channel: { name: "Team", type: "group", member_count: 2 } });
    expect(await stub.joinByInvite(joiner.user_id, secret)).toMatchObject({ ok: true, joined: true, notice: { state: { member: true } } });
    expect(await stub.joinByInvite(joiner.user_id, secret)).toMatchObject({ ok: true, joined: false });
    expect(await stub.listInvites(owner.user_id)).toMatchObject({ ok: true, invites: [{ uses: 1, max_uses: 5 }] });
    expect(await stub.revokeInvite(owner.user_id, secret)).toEqual({ ok: true });
    expect((await stub.joinByInvite(person("late").user_id, secret)).ok).toBe(false);
  });
});
