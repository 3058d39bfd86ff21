/**
 * The web app's DOM-free modules: the conversation model, formatting, the per-tab device id and
 * the cross-tab session. Fast, no browser; they run with the browser suite because they belong
 * to the web app.
 */
import { describe, expect, it } from "vitest";
import type { ChannelState, ChatMessage, FetchInit, FetchResponse, OutboxEntry } from "../../client/index.js";
import { DEVICE_KEY, forgetLegacyDevices, LEGACY_POOL_KEY, legacyDeviceIds, profileDeviceId, tabDeviceId, type KeyValueStore } from "../../web/src/device.js";
import { hlcMillis, initials, joinNames, lastSeenText, parseUsernames, typingText } from "../../web/src/format.js";
import {
  addMessages, applyPage, applyUpdate, buildTimeline, hasOlder, olderBefore, moveReadCursor, newConversation, setTyping, sortChannels, typingUsers, TYPING_TTL_MS,
} from "../../web/src/model.js";
import { SESSION_KEY, SessionStore, sharedSessionFetch, type ExclusiveLocks, type TokenChain } from "../../web/src/session.js";
import { ChatState } from "../../web/src/state.js";

const ME = "u_me";
const BOB = "u_bob";
const CAROL = "u_carol";
const T0 = Date.UTC(2026, 2, 3, 12, 0, 0);

function msg(seq: number, sender: string, text: string, ts = T0 + seq * 1_000, extra: Partial<ChatMessage> = {}): ChatMessage {
  return {
    channel_id: "c1", server_msg_id: "", hlc: "", seq, client_msg_id: `cm-${seq}`, sender_user_id: sender, sender_device_id: "d",
    server_ts: ts, content: { text: { text } }, reactions: [], edited_at: 0, deleted: false, hidden: false, ...extra,
  };
}

function pending(id: string, text: string, state: OutboxEntry["state"] = "sending", created = T0 + 500_000): OutboxEntry {
  return { client_msg_id: id, channel_id: "c1", content: { text: { text } }, created_at: created, state, attempts: 1 };
}

const names: Record<string, string> = { [ME]: "Me", [BOB]: "Bob", [CAROL]: "Carol" };
const nameOf = (u: string): string => names[u] ?? "?";

describe("format", () => {
  it("joins names the way a sentence would", () => {
    expect(joinNames([])).toBe("");
    expect(joinNames(["Bob"])).toBe("Bob");
    expect(joinNames(["Bob", "Carol"])).toBe("Bob and Carol");
    expect(joinNames(["Bob", "Carol", "Dave"])).toBe("Bob, Carol and Dave");
    expect(joinNames(["Bob", "Carol", "Dave", "Erin", "Finn"])).toBe("Bob, Carol and 3 others");
    expect(typingText(["Bob"])).toBe("Bob is typing…");
    expect(typingText(["Bob", "Carol"])).toBe("Bob and Carol are typing…");
    expect(typingText(["a", "b", "c", "d"])).toBe("Several people are typing…");
  });

  it("derives initials, HLC times and usernames", () => {
    expect(initials("Ada Lovelace")).toBe("AL");
    expect(initials("bob")).toBe("B");
    expect(initials("jean-luc picard")).toBe("JP");
    expect(initials("  ")).toBe("?");
    expect(hlcMillis(T0.toString(16).padStart(12, "0") + "0003")).toBe(T0);
    expect(hlcMillis("")).toBe(0);
    expect(parseUsernames(" @bob, carol;carol  Dave ")).toEqual(["bob", "carol", "Dave"]);
  });

  it("says when someone was last seen", () => {
    expect(lastSeenText(0, T0)).toBe("");
    expect(lastSeenText(T0 - 20_000, T0)).toBe("last seen just now");
    expect(lastSeenText(T0 - 5 * 60_000, T0)).toBe("last seen 5 min ago");
  });
});

describe("conversation model", () => {
  it("merges pages and live messages by seq and knows when scroll-back ends", () => {
    const conv = newConversation("c1");
    addMessages(conv, [msg(120, BOB, "live")]);
    expect(hasOlder(conv)).toBe(false); // the newest page has not been fetched yet
    applyPage(conv, { channel_id: "c1", messages: [msg(71, BOB, "a"), msg(120, BOB, "live")], next_cursor: 71, has_more: true, last_seq: 120, updates: [] }, "newest");
    expect(hasOlder(conv)).toBe(true);
    applyPage(conv, { channel_id: "c1", messages: [msg(1, BOB, "first"), msg(2, BOB, "b")], next_cursor: 0, has_more: false, last_seq: 120, updates: [] }, "older");
    expect(hasOlder(conv)).toBe(false);
    expect([...conv.messages.keys()].sort((a, b) => a - b)).toEqual([1, 2, 71, 120]);
  });

  it("applies changes to held messages only, and leaves messages deleted for me out of the timeline", () => {
    const conv = newConversation("c1");
    addMessages(conv, [msg(10, BOB, "hi"), msg(11, BOB, "typo")]);
    expect(applyUpdate(conv, msg(11, BOB, "fixed", undefined, { edited_at: T0 }))).toBe(true);
    expect(applyUpdate(conv, msg(3, BOB, "old news"))).toBe(false); // not held: its page brings it
    expect([...conv.messages.keys()].sort((a, b) => a - b)).toEqual([10, 11]);
    applyUpdate(conv, msg(10, BOB, "", undefined, { hidden: true, content: {} }));
    const rows = buildTimeline({ conv, pending: [], me: ME, others: [BOB], nameOf: (u) => u, now: T0 }).filter((i) => i.kind === "message");
    expect(rows.map((r) => [r.seq, r.text, r.edited])).toEqual([[11, "fixed", true]]);
    // A page's changes reach messages held from before.
    applyPage(conv, { channel_id: "c1", messages: [msg(12, BOB, "new")], next_cursor: 0, has_more: false, last_seq: 13, updates: [{ kind: "reactions", message: msg(11, BOB, "fixed", undefined, { reactions: [{ emoji: "👍", user_ids: [ME] }] }) }] }, "newest");
    expect(conv.messages.get(11)?.reactions).toEqual([{ emoji: "👍", user_ids: [ME] }]);
  });

  it("keeps scrolling back past a page that holds only changes", () => {
    const conv = newConversation("c1");
    // The newest 50 seqs are all reactions: nothing to show, but older messages exist.
    applyPage(conv, { channel_id: "c1", messages: [], next_cursor: 151, has_more: true, last_seq: 200, updates: [] }, "newest");
    expect(hasOlder(conv)).toBe(true);
    expect(olderBefore(conv)).toBe(151);
    applyPage(conv, { channel_id: "c1", messages: [msg(120, BOB, "hi")], next_cursor: 101, has_more: true, last_seq: 200, updates: [] }, "older");
    expect(olderBefore(conv)).toBe(101);
    applyPage(conv, { channel_id: "c1", messages: [], next_cursor: 51, has_more: true, last_seq: 200, updates: [] }, "older");
    expect(hasOlder(conv)).toBe(true);
    expect(olderBefore(conv)).toBe(51);
  });

  it("moves read cursors forward only", () => {
    const conv = newConversation("c1");
    expect(moveReadCursor(conv, BOB, 5)).toBe(true);
    expect(moveReadCursor(conv, BOB, 3)).toBe(false);
    expect(conv.readCursors.get(BOB)).toBe(5);
  });

  it("expires typing indicators", () => {
    const conv = newConversation("c1");
    setTyping(conv, BOB, true, T0);
    setTyping(conv, CAROL, true, T0);
    setTyping(conv, CAROL, false, T0 + 10);
    expect(typingUsers(conv, T0 + 1_000)).toEqual([BOB]);
    expect(typingUsers(conv, T0 + TYPING_TTL_MS + 1)).toEqual([]);
  });

  it("orders channels by latest activity and hides the ones left", () => {
    const base = { type: "dm", last_seq: 1, last_activity_at: 0, last_read_seq: 0, unread_count: 0, muted: false, member_count: 2, member_user_ids: [], members: [] };
    const sorted = sortChannels([
      { ...base, channel_id: "old", name: "Old", last_activity_hlc: "0000000000010000", left: false },
      { ...base, channel_id: "new", name: "New", last_activity_hlc: "0000000000020000", left: false },
      { ...base, channel_id: "gone", name: "Gone", last_activity_hlc: "0000000000030000", left: true },
    ]);
    expect(sorted.map((c) => c.channel_id)).toEqual(["new", "old"]);
  });

  it("shows pending messages after stored ones, and one status line under the last sent one", () => {
    const conv = newConversation("c1");
    addMessages(conv, [msg(1, BOB, "hi"), msg(2, ME, "hello"), msg(3, ME, "how are you?")]);
    const input = { conv, me: ME, others: [BOB], nameOf, now: T0 + 600_000 };
    let items = buildTimeline({ ...input, pending: [pending("p1", "still going"), pending("cm-3", "how are you?")] });
    const rows = items.filter((i) => i.kind === "message");
    expect(rows.map((r) => r.text)).toEqual(["hi", "hello", "how are you?", "still going"]);
    expect(rows.map((r) => r.status)).toEqual([undefined, undefined, "Sent", "Sending…"]);
    expect(items[0]).toMatchObject({ kind: "day" });

    moveReadCursor(conv, BOB, 3);
    items = buildTimeline({ ...input, pending: [pending("p1", "oops", "failed")] });
    const after = items.filter((i) => i.kind === "message");
    expect(after.map((r) => r.status)).toEqual([undefined, undefined, "Read by Bob", "Not sent"]);
    expect(after.at(-1)).toMatchObject({ state: "failed", mine: true });
  });

  it("groups a sender's consecutive messages into one run", () => {
    const conv = newConversation("c1");
    addMessages(conv, [msg(1, BOB, "a", T0), msg(2, BOB, "b", T0 + 60_000), msg(3, ME, "c", T0 + 61_000), msg(4, BOB, "d", T0 + 3_600_000)]);
    const rows = buildTimeline({ conv, pending: [], me: ME, others: [BOB], nameOf, now: T0 }).filter((i) => i.kind === "message");
    expect(rows.map((r) => [r.first, r.last])).toEqual([[true, false], [false, true], [true, true], [true, true]]);
  });

  it("lists the readers of a group message by name", () => {
    const conv = newConversation("c1");
    addMessages(conv, [msg(1, ME, "lunch?"), msg(2, BOB, "sure", T0 + 5_000, { content: { system: { event: "member_added", actor_user_id: BOB, target_user_ids: [], text: "Bob added Carol" } } })]);
    moveReadCursor(conv, BOB, 2);
    moveReadCursor(conv, CAROL, 1);
    const items = buildTimeline({ conv, pending: [], me: ME, others: [BOB, CAROL], nameOf, now: T0 });
    expect(items.find((i) => i.kind === "message" && i.mine)).toMatchObject({ status: "Read by Bob and Carol" });
    expect(items.find((i) => i.kind === "system")).toMatchObject({ text: "Bob added Carol" });
  });
});

function memoryStore(): KeyValueStore & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
    removeItem: (k) => void data.delete(k),
  };
}

describe("one device per browser profile", () => {
  let n = 0;
  const newId = (): string => `web-${++n}`;

  it("keeps the profile's device in localStorage, whatever the tab", () => {
    const local = memoryStore();
    const first = profileDeviceId(local, newId);
    expect(local.getItem(DEVICE_KEY)).toBe(first);
    expect(profileDeviceId(local, newId)).toBe(first);
    expect(legacyDeviceIds(local, first)).toEqual([]);
  });

  it("adopts the first device of an earlier version's per-tab pool and names the rest for removal", () => {
    const local = memoryStore();
    local.setItem(LEGACY_POOL_KEY, JSON.stringify(["web-old1", "web-old2", "bad id!", "web-old3"]));
    const id = profileDeviceId(local, newId);
    expect(id).toBe("web-old1");
    expect(legacyDeviceIds(local, id)).toEqual(["web-old2", "web-old3"]);
    forgetLegacyDevices(local);
    expect(legacyDeviceIds(local, id)).toEqual([]);
    expect(profileDeviceId(local, newId)).toBe("web-old1");
  });

  it("gives each tab its own device where tabs cannot share one, kept across reloads", () => {
    const session = memoryStore();
    const id = tabDeviceId(session, newId);
    expect(tabDeviceId(session, newId)).toBe(id);
    expect(tabDeviceId(memoryStore(), newId)).not.toBe(id);
  });
});

describe("session shared by the tabs of a profile", () => {
  const serialLocks: ExclusiveLocks = {
    request: (() => {
      let tail: Promise<unknown> = Promise.resolve();
      return <T>(_name: string, callback: () => Promise<T>): Promise<T> => {
        const next = tail.then(callback);
        tail = next.catch(() => {});
        return next;
      };
    })(),
  };

  /** A server that rotates refresh tokens and revokes the session when a used one comes back. */
  function fakeServer() {
    let current = "r1";
    let rotations = 0;
    let revoked = false;
    const calls: { path: string; body: Record<string, unknown> }[] = [];
    const fetch = async (url: string, init?: FetchInit): Promise<FetchResponse> => {
      const path = new URL(url).pathname;
      const body = JSON.parse(typeof init?.body === "string" ? init.body : "{}") as Record<string, unknown>;
      calls.push({ path, body });
      const reply = (status: number, json: unknown): FetchResponse => ({ status, ok: status < 300, text: async () => JSON.stringify(json) });
      if (path === "/v1/auth/login") return reply(200, { user_id: ME, username: "me", display_name: "Me", refresh_token: current, access_token: "a" });
      if (path === "/v1/auth/refresh") {
        if (revoked || body.refresh_token !== current) {
          revoked = true;
          return reply(401, { code: "unauthorized" });
        }
        current = `r${++rotations + 1}`;
        return reply(200, { user_id: ME, username: "me", display_name: "Me", refresh_token: current, access_token: `a${rotations}` });
      }
      return reply(200, {});
    };
    return { fetch, calls, revoked: () => revoked };
  }

  it("stores the session on login and keeps one token chain across tabs", async () => {
    const server = fakeServer();
    const local = memoryStore();
    const store = new SessionStore(local);
    const tabA = sharedSessionFetch(server.fetch, store, serialLocks, () => ME);
    const tabB = sharedSessionFetch(server.fetch, store, serialLocks, () => ME);
    await tabA("http://x/v1/auth/login", { method: "POST", body: JSON.stringify({ username: "me", password: "pw" }) });
    expect(store.get()).toMatchObject({ user_id: ME, refresh_token: "r1" });

    // Both tabs hold r1 in memory; each refreshes. Without coordination the second would
    // present a used token and the server would revoke the session.
    const [a, b] = await Promise.all([
      tabA("http://x/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: "r1" }) }),
      tabB("http://x/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: "r1" }) }),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(server.revoked()).toBe(false);
    expect(server.calls.filter((c) => c.path === "/v1/auth/refresh").map((c) => c.body.refresh_token)).toEqual(["r1", "r2"]);
    expect(store.get()?.refresh_token).toBe("r3");
    expect(JSON.parse(await b.text()).refresh_token).toBe("r3");
  });

  /** An IndexedDB stand-in: one value every tab reads at once; `failing` makes writes throw. */
  function memoryChain(): TokenChain & { failing: boolean; head: { user_id: string; refresh_token: string } | undefined } {
    const chain = {
      failing: false,
      head: undefined as { user_id: string; refresh_token: string } | undefined,
      newest: async (userId: string) => (chain.head?.user_id === userId ? chain.head.refresh_token : undefined),
      advance: async (userId: string, token: string) => {
        if (chain.failing) throw new Error("quota");
        chain.head = { user_id: userId, refresh_token: token };
      },
      forget: async () => void (chain.head = undefined),
    };
    return chain;
  }

  it("keeps the chain when a tab reads a stale localStorage (Chromium's per-process copy)", async () => {
    // Each tab sees its own copy of localStorage, and no write reaches the other copy in time:
    // what Chromium does across renderer processes when a tab takes the lock right after another.
    const server = fakeServer();
    const viewA = new SessionStore(memoryStore());
    const viewB = new SessionStore(memoryStore());
    const chain = memoryChain();
    const tabA = sharedSessionFetch(server.fetch, viewA, serialLocks, () => ME, chain);
    const tabB = sharedSessionFetch(server.fetch, viewB, serialLocks, () => ME, chain);
    await tabA("http://x/v1/auth/login", { method: "POST", body: JSON.stringify({ username: "me", password: "pw" }) });
    viewB.save(viewA.get()!); // the login itself had long reached tab B
    const a = await tabA("http://x/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: "r1" }) });
    const b = await tabB("http://x/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: "r1" }) });
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(server.revoked()).toBe(false);
    expect(server.calls.filter((c) => c.path === "/v1/auth/refresh").map((c) => c.body.refresh_token)).toEqual(["r1", "r2"]);
    expect(chain.head?.refresh_token).toBe("r3");

    // The same two tabs without the chain: tab B presents the used token and the session ends.
    const bare = fakeServer();
    const staleA = new SessionStore(memoryStore());
    const staleB = new SessionStore(memoryStore());
    const bareA = sharedSessionFetch(bare.fetch, staleA, serialLocks, () => ME);
    const bareB = sharedSessionFetch(bare.fetch, staleB, serialLocks, () => ME);
    await bareA("http://x/v1/auth/login", { method: "POST", body: JSON.stringify({ username: "me", password: "pw" }) });
    staleB.save(staleA.get()!);
    await bareA("http://x/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: "r1" }) });
    expect((await bareB("http://x/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: "r1" }) })).status).toBe(401);
    expect(bare.revoked()).toBe(true);
  });

  it("falls back to localStorage when the chain cannot store a token, never to an older one", async () => {
    const server = fakeServer();
    const store = new SessionStore(memoryStore());
    const chain = memoryChain();
    const f = sharedSessionFetch(server.fetch, store, serialLocks, () => ME, chain);
    await f("http://x/v1/auth/login", { method: "POST", body: JSON.stringify({ username: "me", password: "pw" }) });
    expect(chain.head?.refresh_token).toBe("r1");
    chain.failing = true;
    await f("http://x/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: "r1" }) });
    // r2 could not be stored in the chain, so the chain forgot r1 rather than hand it out again.
    expect(chain.head).toBeUndefined();
    expect(store.get()?.refresh_token).toBe("r2");
    chain.failing = false;
    const again = await f("http://x/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: "r1" }) });
    expect(again.status).toBe(200);
    expect(server.revoked()).toBe(false);
    expect(chain.head?.refresh_token).toBe("r3");
  });

  it("never presents another account's token, and leaves other requests alone", async () => {
    const server = fakeServer();
    const local = memoryStore();
    local.setItem(SESSION_KEY, JSON.stringify({ user_id: "u_other", username: "o", display_name: "O", refresh_token: "other" }));
    const f = sharedSessionFetch(server.fetch, new SessionStore(local), serialLocks, () => ME);
    await f("http://x/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: "r1" }) });
    expect(server.calls[0]!.body.refresh_token).toBe("r1");
    await f("http://x/v1/channels", { method: "GET" });
    expect(server.calls[1]).toEqual({ path: "/v1/channels", body: {} });
  });
});

describe("the state views draw", () => {
  const me = { user_id: ME, username: "me", display_name: "Me" };
  const dm = (id: string): ChannelState => ({
    channel_id: id, type: "dm", name: "", last_seq: 3, last_activity_hlc: "", last_activity_at: 0, last_read_seq: 0, unread_count: 2,
    muted: false, member_count: 2, left: false, member_user_ids: [ME, BOB], members: [],
  });

  it("names DMs after the other person, looking unknown people up once", () => {
    const lookups: string[] = [];
    const state = new ChatState(me, "web-1", (u) => lookups.push(u));
    state.channels.set("c1", dm("c1"));
    state.members.set("c1", [ME, BOB]);
    expect(state.channelTitle(state.channels.get("c1")!)).toBe("Someone");
    expect(lookups).toEqual([BOB]);
    state.users.set(BOB, { user_id: BOB, username: "bob", display_name: "Bob" });
    expect(state.channelTitle(state.channels.get("c1")!)).toBe("Bob");
    expect(state.unreadTotal()).toBe(2);
  });

  it("previews the last message, the user's own pending one first", () => {
    const state = new ChatState(me, "web-1");
    state.channels.set("c1", { ...dm("c1"), type: "group", name: "Team" });
    state.users.set(BOB, { user_id: BOB, username: "bob", display_name: "Bob" });
    state.lastMessage.set("c1", { ...msg(3, BOB, "see you"), channel_id: "c1" });
    expect(state.previewOf("c1")).toBe("Bob: see you");
    state.pending.set("p1", pending("p1", "on my way"));
    expect(state.previewOf("c1")).toBe("You: on my way");
    expect(state.canModerate("c1")).toBe(false);
    state.roles.set("c1", "admin");
    expect(state.canModerate("c1")).toBe(true);
  });
});
