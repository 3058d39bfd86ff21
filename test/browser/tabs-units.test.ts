/**
 * TabClient (web/src/tabs.ts) without a browser: Web Locks and BroadcastChannel as a browser
 * profile has them (one lock holder at a time, waiters served in order; messages to every other
 * tab, later), and a stand-in for the SDK client that holds the socket. The real thing runs in
 * Chromium in chat.test.ts; these pin the protocol between tabs.
 */
import { describe, expect, it } from "vitest";
import {
  attachmentContent, Emitter, type ChannelState, type ClientEvents, type ConnectionState, type EdgechatClient, type OutboxEntry, type SendAck,
  type SendContent, type UploadedAttachment, type UploadOptions,
} from "../../client/index.js";
import { EdgechatError } from "../../client/index.js";
import { TabClient, type TabChannel, type TabLocks } from "../../web/src/tabs.js";

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

/** Web Locks of one profile: exclusive, waiters granted in request order, released with the tab. */
class ProfileLocks {
  private readonly held = new Map<string, { tab: string; release: () => void }>();
  private readonly waiting = new Map<string, { tab: string; grant: () => void }[]>();

  forTab(tab: string): TabLocks & { crash(): void } {
    return {
      request: (name, options, callback) => new Promise<unknown>((resolve, reject) => {
        if (!this.held.has(name)) {
          this.grantWith(name, tab, callback, resolve);
          return;
        }
        if (options.ifAvailable) {
          void Promise.resolve(callback(null)).then(resolve);
          return;
        }
        const queue = this.waiting.get(name) ?? [];
        const entry = { tab, grant: () => this.grantWith(name, tab, callback, resolve) };
        queue.push(entry);
        this.waiting.set(name, queue);
        options.signal?.addEventListener("abort", () => {
          const q = this.waiting.get(name) ?? [];
          const i = q.indexOf(entry);
          if (i >= 0) {
            q.splice(i, 1);
            reject(new Error("AbortError"));
          }
        });
      }),
      query: async () => ({ held: [...this.held.entries()].map(([name]) => ({ name })) }),
      crash: () => {
        for (const [name, h] of [...this.held]) {
          if (h.tab !== tab) continue;
          this.held.delete(name);
          this.next(name);
        }
        for (const [name, q] of this.waiting) this.waiting.set(name, q.filter((w) => w.tab !== tab));
      },
    };
  }

  private grantWith(name: string, tab: string, callback: (lock: unknown) => Promise<void> | void, resolve: (v: unknown) => void): void {
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      if (this.held.get(name)?.tab === tab) this.held.delete(name);
      this.next(name);
      resolve(undefined);
    };
    this.held.set(name, { tab, release });
    void Promise.resolve(callback({ name })).then(release, release);
  }

  private next(name: string): void {
    if (this.held.has(name)) return;
    const q = this.waiting.get(name) ?? [];
    const w = q.shift();
    if (w) w.grant();
  }

}

/** BroadcastChannel: a message reaches every other open channel of the same name, later. */
class Bus {
  private readonly members = new Map<string, Set<{ listeners: ((e: { data: unknown }) => void)[] }>>();
  open(name: string): TabChannel {
    const me = { listeners: [] as ((e: { data: unknown }) => void)[] };
    const set = this.members.get(name) ?? new Set();
    set.add(me);
    this.members.set(name, set);
    return {
      postMessage: (message) => {
        const copy = structuredClone(message);
        for (const other of set) if (other !== me) setTimeout(() => other.listeners.forEach((l) => l({ data: copy })), 0);
      },
      close: () => void set.delete(me),
      addEventListener: (_type, listener) => void me.listeners.push(listener),
    };
  }
}

/** The SDK client that holds the socket, reduced to what TabClient uses and what tests check. */
class FakeSocketClient {
  readonly events = new Emitter<ClientEvents>();
  state: ConnectionState = "offline";
  readonly sent: { channelId: string; text: string; clientMsgId: string }[] = [];
  /** What each send carried, by client_msg_id (attachments as well as text). */
  readonly contents = new Map<string, SendContent>();
  readonly presence: string[] = [];
  readonly reads: [string, number][] = [];
  private readonly entries = new Map<string, { entry: OutboxEntry; waiters: ((a: SendAck) => void)[] }>();
  states: ChannelState[] = [];

  on<K extends keyof ClientEvents>(type: K, listener: (p: ClientEvents[K]) => void): () => void {
    return this.events.on(type, listener);
  }
  connect(): Promise<void> {
    if (this.state === "ready") return Promise.resolve();
    this.move("connecting");
    return new Promise(() => {});
  }
  disconnect(): void {
    this.move("closed");
  }
  ready(states: ChannelState[] = []): void {
    this.states = states;
    this.move("ready");
    this.events.emit("synced", { channels: states, truncated: [] });
  }
  private move(state: ConnectionState): void {
    const previous = this.state;
    this.state = state;
    this.events.emit("connectionState", { state, previous });
  }
  channelStates(): ChannelState[] {
    return this.states.map((s) => ({ ...s }));
  }
  readonly outbox = {
    list: (): OutboxEntry[] => [...this.entries.values()].map((e) => e.entry),
    retry: (): Promise<SendAck> => new Promise(() => {}),
    discard: (id: string): boolean => this.entries.delete(id),
  };
  send(channelId: string, body: string | SendContent, options: { clientMsgId: string }): Promise<SendAck> {
    const id = options.clientMsgId;
    const content = typeof body === "string" ? { text: { text: body } } : body;
    const text = "text" in content ? content.text.text : "";
    let slot = this.entries.get(id);
    if (!slot) {
      this.contents.set(id, content);
      slot = { entry: { client_msg_id: id, channel_id: channelId, content, created_at: 1, state: "sending", attempts: 0 }, waiters: [] };
      this.entries.set(id, slot);
      this.sent.push({ channelId, text, clientMsgId: id });
      this.events.emit("outbox", slot.entry);
    }
    const s = slot;
    return new Promise<SendAck>((resolve) => s.waiters.push(resolve));
  }
  ack(clientMsgId: string, seq: number): void {
    const slot = this.entries.get(clientMsgId)!;
    this.entries.delete(clientMsgId);
    const ack: SendAck = { channel_id: slot.entry.channel_id, client_msg_id: clientMsgId, server_msg_id: `m${seq}`, hlc: "", seq, server_ts: 1, status: "stored" };
    this.events.emit("outbox", { ...slot.entry, state: "sent", ack });
    for (const w of slot.waiters) w(ack);
  }
  markRead(channelId: string, seq: number): Promise<void> {
    this.reads.push([channelId, seq]);
    const s = this.states.find((x) => x.channel_id === channelId);
    if (s) {
      s.last_read_seq = seq;
      s.unread_count = 0;
    }
    return Promise.resolve();
  }
  typing(): Promise<void> {
    return Promise.resolve();
  }
  setPresence(status: string): Promise<void> {
    this.presence.push(status);
    return Promise.resolve();
  }
}

function channelState(id: string, unread: number): ChannelState {
  return {
    channel_id: id, type: "dm", name: "", last_seq: unread, last_activity_hlc: "", last_activity_at: 0, last_read_seq: 0,
    unread_count: unread, muted: false, member_count: 2, left: false, member_user_ids: [], members: [],
  };
}

/** An upload a tab's own REST client is running; the test finishes it. */
interface Upload {
  tab: string;
  size: number;
  options: UploadOptions;
  finish(): void;
}

/** A profile whose tabs open one after another. */
function profile() {
  const locks = new ProfileLocks();
  const bus = new Bus();
  const sockets = new Map<string, FakeSocketClient>();
  const uploads: Upload[] = [];
  const tab = (name: string): TabClient & { locksOf: ReturnType<ProfileLocks["forTab"]> } => {
    const tabLocks = locks.forTab(name);
    // Each tab's socketless client; its uploads report progress, and end when the test says.
    const rest = {
      logout: () => Promise.resolve(),
      on: () => () => {},
      attachments: {
        upload: (file: Blob, options: UploadOptions) => new Promise<UploadedAttachment>((resolve) => {
          const attachment_id = `att-${uploads.length + 1}`;
          options.onProgress?.({ attachment_id, loaded: 0, total: file.size });
          uploads.push({
            tab: name, size: file.size, options,
            finish: () => {
              options.onProgress?.({ attachment_id, loaded: file.size, total: file.size });
              resolve({ attachment_id, channel_id: options.channelId, file_name: "photo.webp", content_type: "image/webp", size_bytes: file.size, sha256: "ab".repeat(32) });
            },
          });
        }),
      },
    } as unknown as EdgechatClient;
    const client = new TabClient({
      deviceId: "web-profile", userId: "u1", rest, tabId: name, locks: tabLocks, openChannel: (n) => bus.open(n),
      createSocketClient: () => {
        const s = new FakeSocketClient();
        sockets.set(name, s);
        return s as unknown as EdgechatClient;
      },
    });
    return Object.assign(client, { locksOf: tabLocks });
  };
  return { locks, sockets, tab, uploads };
}

describe("one socket for the tabs of a profile", () => {
  it("lets the first tab lead; another tab follows, mirrors its state and sends through it", async () => {
    const p = profile();
    const a = p.tab("a");
    a.start();
    await settle();
    expect(a.leading).toBe(true);
    const socket = p.sockets.get("a")!;
    socket.ready([channelState("c1", 2)]);

    const b = p.tab("b");
    const synced: number[] = [];
    b.on("synced", ({ channels }) => synced.push(channels.length));
    const ready = b.connect();
    b.start();
    await ready;
    expect(b.leading).toBe(false);
    expect(b.state).toBe("ready");
    expect(synced).toEqual([1]);
    expect(b.channelStates()[0]).toMatchObject({ channel_id: "c1", unread_count: 2 });

    const outbox: string[] = [];
    b.on("outbox", (e) => outbox.push(e.state));
    const sending = b.send("c1", "hello from b");
    await settle();
    expect(socket.sent).toEqual([{ channelId: "c1", text: "hello from b", clientMsgId: expect.any(String) }]);
    expect(b.outbox.list().map((e) => e.client_msg_id)).toEqual([socket.sent[0]!.clientMsgId]);
    socket.ack(socket.sent[0]!.clientMsgId, 3);
    expect((await sending).seq).toBe(3);
    await settle();
    expect(outbox).toEqual(["sending", "sent"]);
    expect(b.outbox.list()).toEqual([]);

    // A read made in the follower moves the leader's state, and the follower hears of it.
    await b.markRead("c1", 2);
    expect(socket.reads).toEqual([["c1", 2]]);
    expect(b.channelStates()[0]).toMatchObject({ unread_count: 0, last_read_seq: 2 });
  });

  it("hands the socket to the next tab when the leader goes, which sends again what was not answered", async () => {
    const p = profile();
    const a = p.tab("a");
    a.start();
    await settle();
    p.sockets.get("a")!.ready();
    const b = p.tab("b");
    b.start();
    await b.connect();
    const pending = b.send("c1", "across the handover");
    await settle();
    const first = p.sockets.get("a")!.sent[0]!;

    // The leader's tab crashes: no goodbye, the browser drops its locks.
    a.locksOf.crash();
    await settle();
    expect(b.leading).toBe(true);
    const socket = p.sockets.get("b")!;
    expect(socket.sent).toEqual([{ channelId: "c1", text: "across the handover", clientMsgId: first.clientMsgId }]);
    socket.ready();
    socket.ack(first.clientMsgId, 9);
    expect((await pending).seq).toBe(9);
  });

  it("uploads a file in the tab it was dropped in, which hears the progress, and sends the message through the leader", async () => {
    const p = profile();
    const a = p.tab("a");
    a.start();
    await settle();
    const socket = p.sockets.get("a")!;
    socket.ready([channelState("c1", 0)]);
    const b = p.tab("b");
    b.start();
    await b.connect();

    const progress: number[] = [];
    const uploading = b.attachments.upload(new Blob([new Uint8Array(5000)], { type: "image/webp" }), { channelId: "c1", onProgress: ({ loaded }) => progress.push(loaded) });
    await settle();
    expect(p.uploads.map((u) => [u.tab, u.size])).toEqual([["b", 5000]]);
    p.uploads[0]!.finish();
    const uploaded = await uploading;
    expect(progress).toEqual([0, 5000]);

    const thumbnail = Uint8Array.from([0x52, 0x49, 0x46, 0x46, 1, 2, 3]);
    const sending = b.send("c1", attachmentContent(uploaded, { thumbnail, thumbnail_type: "image/webp", width: 800, height: 600 }));
    await settle();
    const [sent] = socket.sent;
    const content = socket.contents.get(sent!.clientMsgId) as Extract<SendContent, { attachment: unknown }>;
    expect(content.attachment).toMatchObject({ attachment_id: "att-1", size_bytes: 5000, width: 800, height: 600, thumbnail_type: "image/webp" });
    expect(content.attachment.thumbnail).toBeInstanceOf(Uint8Array);
    expect([...content.attachment.thumbnail!]).toEqual([...thumbnail]);
    socket.ack(sent!.clientMsgId, 1);
    expect((await sending).seq).toBe(1);
  });

  it("keeps an upload going when the leader's tab goes; the file's message goes out through the next leader", async () => {
    const p = profile();
    const a = p.tab("a");
    a.start();
    await settle();
    p.sockets.get("a")!.ready();
    const b = p.tab("b");
    b.start();
    await b.connect();
    const c = p.tab("c");
    c.start();
    await c.connect();

    const uploading = c.attachments.upload(new Blob([new Uint8Array(1234)]), { channelId: "c1" });
    await settle();
    a.close();
    await settle();
    expect(b.leading).toBe(true);
    const socket = p.sockets.get("b")!;
    socket.ready();
    await settle();

    // Nothing restarted: the one upload finishes where it began.
    expect(p.uploads.map((u) => u.tab)).toEqual(["c"]);
    p.uploads[0]!.finish();
    const sending = c.send("c1", attachmentContent(await uploading));
    await settle();
    expect(p.sockets.get("a")!.sent).toEqual([]);
    const [sent] = socket.sent;
    expect(socket.contents.get(sent!.clientMsgId)).toMatchObject({ attachment: { attachment_id: "att-1", size_bytes: 1234 } });
    socket.ack(sent!.clientMsgId, 4);
    expect((await sending).seq).toBe(4);
  });

  it("is online while any tab is visible, and forgets tabs that close", async () => {
    const p = profile();
    const a = p.tab("a");
    a.start();
    await settle();
    const socket = p.sockets.get("a")!;
    socket.ready();
    const b = p.tab("b");
    b.start();
    await b.connect();

    await a.setPresence("online");
    await b.setPresence("away");
    await a.setPresence("away");
    expect(socket.presence).toEqual(["online", "away"]);
    await b.setPresence("online");
    expect(socket.presence).toEqual(["online", "away", "online"]);
    b.close();
    await settle();
    expect(socket.presence).toEqual(["online", "away", "online", "away"]);
  });

  it("settles connect() with the leader's final error, in every tab", async () => {
    const p = profile();
    const a = p.tab("a");
    a.start();
    await settle();
    const b = p.tab("b");
    b.start();
    await settle();
    const inA = a.connect();
    const inB = b.connect();
    p.sockets.get("a")!.events.emit("error", new EdgechatError({ code: "too_many_devices", message: "10 devices already" }));
    await expect(inA).rejects.toMatchObject({ code: "too_many_devices" });
    await expect(inB).rejects.toMatchObject({ code: "too_many_devices" });
  });
});
