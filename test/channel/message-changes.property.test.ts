/**
 * Property: any sequence of reactions, edits and deletes by a group's members leaves the channel
 * exactly where a plain model of the rules says, keeps the log contiguous, and a device that
 * replays the log's changes in seq order over the messages as first sent ends at the same state.
 */
import { env } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { newId } from "../../shared/ids.js";
import { channelStub } from "../../shared/routing.js";
import type { ChatMessageData, MemberProfile, Reaction } from "../../durable-objects/channel/types.js";

const RUNS = Number(process.env.EDGECHAT_FUZZ_RUNS ?? 40);

const USERS = ["owner", "ann", "ben"] as const;
const EMOJI = ["👍", "❤️", ":tada:"];

type Command =
  | { op: "react"; user: number; target: number; emoji: string; add: boolean }
  | { op: "edit"; user: number; target: number; text: string }
  | { op: "delete"; user: number; target: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  // Few targets and emoji, so commands collide: add-then-remove, edit-then-delete, and so on.
  { weight: 3, arbitrary: fc.record({ op: fc.constant("react" as const), user: fc.nat(2), target: fc.nat(2), emoji: fc.constantFrom(...EMOJI), add: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("edit" as const), user: fc.nat(2), target: fc.nat(2), text: fc.constantFrom("v2", "v3", "fixed", "v2") }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("delete" as const), user: fc.nat(2), target: fc.nat(2) }) },
);

interface ModelMessage { sender: number; text: string; deleted: boolean; reactions: Reaction[] }

/** The rules, written plainly: what the channel must answer and how the message must end up. */
function applyModel(m: ModelMessage, c: Command, ids: string[]): { ok: boolean; code?: string; changed: boolean } {
  const user = ids[c.user]!;
  if (c.op === "react") {
    if (m.deleted) return { ok: false, code: "invalid_argument", changed: false };
    const entry = m.reactions.find((r) => r.emoji === c.emoji);
    const has = entry?.user_ids.includes(user) ?? false;
    if (c.add === has) return { ok: true, changed: false };
    if (c.add) {
      if (entry) entry.user_ids.push(user); else m.reactions.push({ emoji: c.emoji, user_ids: [user] });
    } else {
      entry!.user_ids = entry!.user_ids.filter((u) => u !== user);
      m.reactions = m.reactions.filter((r) => r.user_ids.length > 0);
    }
    return { ok: true, changed: true };
  }
  if (c.op === "edit") {
    if (m.sender !== c.user) return { ok: false, code: "forbidden", changed: false };
    if (m.deleted) return { ok: false, code: "invalid_argument", changed: false };
    if (m.text === c.text) return { ok: true, changed: false };
    m.text = c.text;
    return { ok: true, changed: true };
  }
  if (m.deleted) return { ok: true, changed: false };
  if (m.sender !== c.user && c.user !== 0) return { ok: false, code: "forbidden", changed: false }; // user 0 owns the group
  m.deleted = true;
  m.reactions = [];
  return { ok: true, changed: true };
}

/** What a device shows after applying a logged change: the target as the change carries it. */
function view(m: ChatMessageData): { text: string; deleted: boolean; reactions: Reaction[] } {
  return { text: m.deleted ? "" : (m.content.text?.text ?? ""), deleted: m.deleted === true, reactions: m.reactions ?? [] };
}

describe("message changes, property", () => {
  it("match a model of the rules, keep the log contiguous, and replay to the same state", async () => {
    await fc.assert(fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 25 }), async (commands) => {
      const members: MemberProfile[] = USERS.map((name) => ({ user_id: newId("u"), username: name, display_name: name }));
      const ids = members.map((m) => m.user_id);
      const id = newId("c");
      const stub = channelStub(env, id);
      const created = await stub.create({ channelId: id, type: "group", name: "prop", creator: members[0]!, members: members.slice(1), jurisdiction: "" });
      expect(created.ok).toBe(true);
      // Five messages, seqs 2..6, from owner, ann, ben, owner, ann.
      const model: ModelMessage[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await stub.append({ userId: ids[i % 3]!, deviceId: "d", clientMsgId: `m${i}`, content: { text: { text: `v1-${i}` } } });
        expect(r.ok).toBe(true);
        model.push({ sender: i % 3, text: `v1-${i}`, deleted: false, reactions: [] });
      }
      let changes = 0;
      for (const c of commands) {
        const seq = c.target + 2;
        const expected = applyModel(model[c.target]!, c, ids);
        const user = ids[c.user]!;
        const r = c.op === "react" ? await stub.react(user, "d", seq, c.emoji, c.add ? "add" : "remove")
          : c.op === "edit" ? await stub.edit(user, "d", seq, { text: { text: c.text } })
          : await stub.deleteForEveryone(user, "d", seq);
        expect(r.ok, JSON.stringify(c)).toBe(expected.ok);
        if (!r.ok) { expect(r.code, JSON.stringify(c)).toBe(expected.code); continue; }
        expect(r.changed, JSON.stringify(c)).toBe(expected.changed);
        if (expected.changed) changes++;
        const m = model[c.target]!;
        expect(view(r.message), JSON.stringify(c)).toEqual({ text: m.deleted ? "" : m.text, deleted: m.deleted, reactions: m.reactions });
      }
      const page = await stub.history(ids[0]!, { after: 0, limit: 200 });
      if (!page.ok) throw new Error(page.message);
      // Contiguous: the notice, five messages, one entry per change that changed something.
      expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: 6 + changes }, (_, i) => i + 1));
      for (let i = 0; i < 5; i++) {
        const m = model[i]!;
        expect(view(page.messages[i + 1]!), `message ${i + 2}`).toEqual({ text: m.deleted ? "" : m.text, deleted: m.deleted, reactions: m.reactions });
      }
      // A device that held the messages as first sent and applies each change in seq order ends
      // where the channel is (every change carries its target as it is now, so order cannot hurt).
      const device = new Map<number, ReturnType<typeof view>>();
      for (let i = 0; i < 5; i++) device.set(i + 2, { text: `v1-${i}`, deleted: false, reactions: [] });
      for (const m of page.messages.slice(6)) {
        const u = m.content.update!;
        expect(u.target, `change at seq ${m.seq}`).toBeDefined();
        device.set(Number(u.target_seq), view(u.target as ChatMessageData));
      }
      for (let i = 0; i < 5; i++) expect(device.get(i + 2)).toEqual(view(page.messages[i + 1]!));
    }), { numRuns: RUNS, interruptAfterTimeLimit: 15_000, markInterruptAsFailure: false });
  });
});
