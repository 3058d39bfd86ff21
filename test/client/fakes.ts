/**
 * Test doubles for the client SDK: a manual clock + scheduler, an in-memory WebSocket that plays
 * the server's side through the real codec, and a routed fake fetch. Nothing here waits on wall
 * time except `settle()`, which only lets pending promise callbacks run.
 */
import { decodeFrame, encodeFrame, pb, type Encoding, type Frame, type FrameInit } from "../../protocol/codec.js";
import { PONG, SUBPROTOCOL_JSON } from "../../protocol/limits.js";
import { createClient, type EdgechatClient } from "../../client/index.js";
import type {
  ClientEvents, ClientOptions, Clock, FetchInit, FetchLike, FetchResponse, Scheduler, SocketEvent, WebSocketConstructor, WebSocketLike,
} from "../../client/types.js";

export const T = pb.FrameType;

/** Lets every pending promise callback run (a macrotask turn). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

interface Timer {
  id: number;
  at: number;
  seq: number;
  fn: () => void;
}

/** A clock and scheduler that only move when told to. */
export class FakeTime implements Clock, Scheduler {
  private current = 1_000_000;
  private timers: Timer[] = [];
  private nextId = 1;
  private seq = 0;

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ id, at: this.current + Math.max(0, ms), seq: this.seq++, fn: callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  pending(): number {
    return this.timers.length;
  }

  /** Moves time forward, running due timers in order (including ones they schedule), settling promises between them. */
  async advance(ms: number): Promise<void> {
    const end = this.current + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
    }
    this.current = end;
    await settle();
  }
}

type ListenerMap = Record<"open" | "message" | "close" | "error", ((event: SocketEvent) => void)[]>;

/** One client socket; the test drives the server's half. */
export class FakeSocket implements WebSocketLike {
  binaryType = "blob";
  readyState = 0;
  readonly sent: (string | Uint8Array)[] = [];
  closedWith: { code: number | undefined; reason: string | undefined } | undefined;
  private readonly listeners: ListenerMap = { open: [], message: [], close: [], error: [] };

  constructor(
    readonly url: string,
    readonly protocols: string | string[] | undefined,
  ) {}

  get encoding(): Encoding {
    const p = Array.isArray(this.protocols) ? this.protocols : [this.protocols];
    return p.includes(SUBPROTOCOL_JSON) ? "json" : "proto";
  }

  get params(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  addEventListener(type: keyof ListenerMap, listener: (event: SocketEvent) => void): void {
    this.listeners[type].push(listener);
  }

  send(data: string | Uint8Array): void {
    if (this.readyState !== 1) throw new Error("send() on a socket that is not open");
    this.sent.push(typeof data === "string" ? data : data.slice());
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  private fire(type: keyof ListenerMap, event: SocketEvent): void {
    for (const l of [...this.listeners[type]]) l(event);
  }

  // ---- the server's side ----

  open(): void {
    this.readyState = 1;
    this.fire("open", { type: "open" });
  }

  /** Sends a frame to the client, encoded as this connection's subprotocol says. */
  receive(frame: FrameInit): void {
    const wire = encodeFrame(frame, this.encoding);
    // A real socket hands binary frames over as an ArrayBuffer (binaryType "arraybuffer").
    const data = typeof wire === "string" ? wire : wire.slice().buffer;
    this.fire("message", { type: "message", data });
  }

  receiveText(text: string): void {
    this.fire("message", { type: "message", data: text });
  }

  serverClose(code: number, reason = ""): void {
    this.readyState = 3;
    this.fire("close", { type: "close", code, reason });
  }

  /** Frames the client wrote, decoded (the text heartbeat is left out). */
  frames(): Frame[] {
    return this.sent.filter((d) => d !== "ping").map((d) => {
      const r = decodeFrame(d, this.encoding);
      if (!r.ok) throw new Error(`client sent an undecodable frame: ${r.message}`);
      return r.frame;
    });
  }

  framesOfType(type: number): Frame[] {
    return this.frames().filter((f) => f.type === type);
  }

  pings(): number {
    return this.sent.filter((d) => d === "ping").length;
  }

  /** Test-side sanity: the client must use the encoding its subprotocol promised. */
  wireKinds(): Set<string> {
    return new Set(this.sent.filter((d) => d !== "ping").map((d) => (typeof d === "string" ? "text" : "binary")));
  }
}

export function fakeWebSocket(): { WebSocket: WebSocketConstructor; sockets: FakeSocket[] } {
  const sockets: FakeSocket[] = [];
  class Ctor extends FakeSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  }
  return { WebSocket: Ctor, sockets };
}

export interface FetchCall {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

type Route = (call: FetchCall) => { status: number; body?: unknown } | Promise<{ status: number; body?: unknown }>;

/** fetch that answers from a route table: `"POST /v1/auth/refresh"` → handler. */
export function fakeFetch(routes: Record<string, Route>): { fetch: FetchLike; calls: FetchCall[] } {
  const calls: FetchCall[] = [];
  const fetch: FetchLike = async (url: string, init?: FetchInit): Promise<FetchResponse> => {
    const u = new URL(url);
    const call: FetchCall = {
      method: init?.method ?? "GET",
      path: u.pathname + u.search,
      headers: init?.headers ?? {},
      body: typeof init?.body === "string" ? JSON.parse(init.body) : init?.body,
    };
    calls.push(call);
    const route = routes[`${call.method} ${u.pathname}`];
    const answer = route ? await route(call) : { status: 404, body: { code: "not_found", message: "no route", retryable: false } };
    const text = answer.body === undefined ? "" : JSON.stringify(answer.body);
    return { status: answer.status, ok: answer.status >= 200 && answer.status < 300, text: async () => text };
  };
  return { fetch, calls };
}

export interface Harness {
  client: EdgechatClient;
  time: FakeTime;
  sockets: FakeSocket[];
  socket(): FakeSocket;
  events: { [K in keyof ClientEvents]: ClientEvents[K][] };
}

const EVENT_NAMES: (keyof ClientEvents)[] = ["message", "messageUpdated", "read", "typing", "presence", "channel", "connectionState", "error", "ack", "outbox", "synced", "session", "signedOut"];

/** A client on fake time and sockets, recording every event. */
export function harness(options: Partial<ClientOptions> = {}): Harness {
  const time = new FakeTime();
  const ws = fakeWebSocket();
  const client = createClient({
    url: "https://chat.test",
    deviceId: "dev-1",
    token: "token-1",
    WebSocket: ws.WebSocket,
    clock: time,
    scheduler: time,
    random: () => 0.5,
    fetch: fakeFetch({}).fetch,
    ...options,
  });
  const events = Object.fromEntries(EVENT_NAMES.map((n) => [n, []])) as unknown as Harness["events"];
  const record = <K extends keyof ClientEvents>(name: K): void => {
    client.on(name, (payload) => events[name].push(payload));
  };
  for (const name of EVENT_NAMES) record(name);
  return {
    client,
    time,
    sockets: ws.sockets,
    socket: () => {
      const s = ws.sockets.at(-1);
      if (!s) throw new Error("no socket opened yet");
      return s;
    },
    events,
  };
}

export const ME = "u_g_0000000000000000000000000a";
export const BOB = "u_g_0000000000000000000000000b";

export function channelState(channelId: string, lastSeq: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { channel_id: channelId, type: "group", name: channelId, last_seq: lastSeq, member_count: 2, ...extra };
}

export function message(channelId: string, seq: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    channel_id: channelId,
    seq,
    server_msg_id: `${"0".repeat(16)}${seq.toString(16).padStart(16, "0")}`,
    hlc: seq.toString(16).padStart(16, "0"),
    client_msg_id: `cm-${channelId}-${seq}`,
    sender_user_id: BOB,
    sender_device_id: "bob-phone",
    server_ts: 1_700_000_000_000 + seq,
    content: { text: { text: `msg ${seq}` } },
    ...extra,
  };
}

/** Opens the socket and plays HELLO; returns the socket (the client has sent RESUME). */
export async function openAndHello(h: Harness, hello: Record<string, unknown> = {}): Promise<FakeSocket> {
  await settle();
  const s = h.socket();
  s.open();
  s.receive({ type: T.HELLO, hello: { user_id: ME, device_id: "dev-1", username: "me", max_unacked_frames: 64, max_content_bytes: 65536, ...hello } });
  return s;
}

/** connect() through RESUMED; resolves with the socket. */
export async function connectReady(h: Harness, channels: Record<string, unknown>[] = [], deliver: Record<string, unknown>[] = []): Promise<FakeSocket> {
  const ready = h.client.connect();
  const s = await openAndHello(h);
  if (deliver.length > 0) s.receive({ type: T.DELIVER, deliver: { messages: deliver } });
  s.receive({ type: T.RESUMED, resumed: { channels } });
  await ready;
  return s;
}

/** Seqs of the `message` events for one channel, in emission order. */
export function seqs(h: Harness, channelId: string): number[] {
  return h.events.message.filter((m) => m.channel_id === channelId).map((m) => m.seq);
}
