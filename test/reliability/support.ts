/**
 * Shared helpers for the in-workerd reliability, authorization, abuse and fuzz suites.
 *
 * `ProbeDevice` is a WebSocket device like test/helpers/socket.ts's TestDevice, with two
 * differences that matter when the input is hostile: it never throws from its event listener
 * (a frame the shared codec refuses is recorded in `undecodable`, so a test can assert on it),
 * and every wait has an explicit timeout.
 */
import { SELF } from "cloudflare:test";
import { expect } from "vitest";
import { decodeFrame, encodeFrame, frameTypeName, pb, type Encoding, type Frame, type FrameInit } from "../../protocol/codec.js";
import { SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO } from "../../protocol/limits.js";
import { BASE, call, type TestUser } from "../helpers/api.js";
import { Waiters } from "../helpers/waiters.js";
import type { edgechat } from "../../protocol/generated/chat.js";

export const T = pb.FrameType;
export type Msg = edgechat.v1.IChatMessage;

/** A frame the shared codec refused; `type` is set when it decodes without the size limit. */
export interface Undecodable { bytes: number; code: string; message: string; type?: string }

export class ProbeDevice {
  readonly frames: Frame[] = [];
  /** Every frame received, in arrival order, never removed (for order checks). */
  readonly log: Frame[] = [];
  readonly undecodable: Undecodable[] = [];
  readonly texts: string[] = [];
  closed: { code: number; reason: string } | undefined;
  private readonly changes = new Waiters();
  private nextRequestId = 1;
  private readonly keepAlive: ReturnType<typeof setInterval>;

  constructor(readonly ws: WebSocket, readonly encoding: Encoding, readonly deviceId: string) {
    // Like the SDK, ping every 30 s: a device a file opens in beforeAll and uses minutes later
    // on a slow machine must not be closed as idle (LIMITS.idleTimeoutMs) in between.
    this.keepAlive = setInterval(() => { try { ws.send("ping"); } catch { /* closing */ } }, 30_000);
    ws.addEventListener("message", (e) => {
      const data = e.data as ArrayBuffer | string;
      if (data === "pong") this.texts.push(data);
      else {
        const d = decodeFrame(data, encoding);
        if (d.ok) { this.frames.push(d.frame); this.log.push(d.frame); }
        else {
          const bytes = typeof data === "string" ? new TextEncoder().encode(data).byteLength : data.byteLength;
          // Decode without the codec's size limit, so an oversized but otherwise valid frame is
          // still seen by the test (and recorded as a protocol violation).
          const raw = rawDecode(data, encoding);
          if (raw) { this.frames.push(raw); this.log.push(raw); }
          this.undecodable.push({ bytes, code: d.code, message: d.message, ...(raw ? { type: frameTypeName(raw.type) } : {}) });
        }
      }
      this.wake();
    });
    ws.addEventListener("close", (e) => {
      clearInterval(this.keepAlive);
      this.closed = { code: e.code, reason: e.reason };
      this.wake();
    });
  }

  private wake(): void {
    this.changes.wake();
  }

  private changed(timeoutMs: number): Promise<boolean> {
    return this.changes.wait(timeoutMs);
  }

  /** Removes and returns the first queued frame matching `pred`, or throws after `timeoutMs`. */
  async take(pred: (f: Frame) => boolean, timeoutMs = 5000, what = "a matching frame"): Promise<Frame> {
    const f = await this.maybeTake(pred, timeoutMs);
    if (!f) throw new Error(`${this.deviceId}: no ${what} within ${timeoutMs} ms; queued: ${this.describeQueue()}${this.closed ? `; closed ${this.closed.code}` : ""}`);
    return f;
  }

  /** Like take, but resolves undefined on timeout. */
  async maybeTake(pred: (f: Frame) => boolean, timeoutMs: number): Promise<Frame | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await this.changed(left);
    }
  }

  next(type: number, timeoutMs = 5000): Promise<Frame> {
    return this.take((f) => f.type === type, timeoutMs, frameTypeName(type));
  }

  /** The reply to request `id`: the first frame carrying that request_id. */
  reply(id: number, timeoutMs = 5000): Promise<Frame> {
    return this.take((f) => f.request_id === id && f.type !== T.DELIVER, timeoutMs, `reply to request ${id}`);
  }

  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.deviceId}: socket not closed within ${timeoutMs} ms`);
      await this.changed(left);
    }
    return this.closed;
  }

  describeQueue(): string {
    return this.frames.map((f) => frameTypeName(f.type) + (f.error ? `(${f.error.code})` : "")).join(",") || "(nothing)";
  }

  send(frame: FrameInit): number {
    const request_id = frame.request_id ?? this.nextRequestId++;
    this.ws.send(encodeFrame({ ...frame, request_id }, this.encoding));
    return request_id;
  }

  newRequestId(): number {
    return this.nextRequestId++;
  }

  raw(data: string | ArrayBuffer | Uint8Array): void {
    this.ws.send(data);
  }

  async sendText(channelId: string, text: string, clientMsgId: string = crypto.randomUUID(), timeoutMs = 5000): Promise<Frame> {
    const id = this.send({ type: T.SEND, send: { channel_id: channelId, client_msg_id: clientMsgId, content: { text: { text } } } });
    return this.reply(id, timeoutMs);
  }

  /** RESUME and collect every DELIVER that arrived before RESUMED (later ones stay queued). */
  async resume(cursors: { channel_id: string; last_seq: number }[] = [], timeoutMs = 15_000): Promise<{ messages: Msg[]; resumed: Frame }> {
    const id = this.send({ type: T.RESUME, resume: { cursors } });
    const isResumed = (f: Frame) => f.type === T.RESUMED && f.request_id === id;
    const deadline = Date.now() + timeoutMs;
    while (!this.frames.some(isResumed)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.deviceId}: no RESUMED within ${timeoutMs} ms; queued: ${this.describeQueue()}`);
      await this.changed(left);
    }
    const at = this.frames.findIndex(isResumed);
    const before = this.frames.splice(0, at + 1);
    const resumed = before.pop()!;
    const messages: Msg[] = [];
    const rest: Frame[] = [];
    for (const f of before) {
      if (f.type === T.DELIVER) messages.push(...(f.deliver?.messages ?? []));
      else rest.push(f);
    }
    this.frames.unshift(...rest);
    return { messages, resumed };
  }

  /** Removes every queued DELIVER and returns its messages in arrival order. */
  drainDelivered(): Msg[] {
    const out: Msg[] = [];
    for (let i = 0; i < this.frames.length; ) {
      const f = this.frames[i]!;
      if (f.type === T.DELIVER) { out.push(...(f.deliver?.messages ?? [])); this.frames.splice(i, 1); } else i++;
    }
    return out;
  }

  /**
   * Waits until every message of `channelId` from seq 1 to `seq` has been DELIVERed on this socket
   * at some point (live or in a RESUME); returns them by seq. Reads the never-emptied `log`.
   */
  async deliveredUpTo(channelId: string, seq: number, timeoutMs = 10_000): Promise<Msg[]> {
    const deadline = Date.now() + timeoutMs;
    const seen = new Map<number, Msg>();
    let read = 0;
    const collect = () => {
      for (; read < this.log.length; read++) {
        const f = this.log[read]!;
        if (f.type === T.DELIVER) for (const m of f.deliver?.messages ?? []) if (m.channel_id === channelId) seen.set(Number(m.seq), m);
      }
    };
    for (;;) {
      collect();
      let have = true;
      for (let s = 1; s <= seq && have; s++) if (!seen.has(s)) have = false;
      if (have) return [...seen.values()].sort((a, b) => Number(a.seq) - Number(b.seq));
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.deviceId}: messages up to seq ${seq} not delivered within ${timeoutMs} ms (have ${seen.size})`);
      await this.changed(left);
    }
  }

  /** Frames that arrived and were not taken yet, optionally only of one type. */
  queued(type?: number): Frame[] {
    return type === undefined ? [...this.frames] : this.frames.filter((f) => f.type === type);
  }

  clear(): void {
    this.frames.length = 0;
  }

  close(): void {
    try { this.ws.close(1000, "done"); } catch { /* closed already */ }
  }
}

function rawDecode(data: ArrayBuffer | string, encoding: Encoding): Frame | undefined {
  try {
    if (encoding === "proto" && typeof data !== "string") return pb.Frame.decode(new Uint8Array(data));
    if (encoding === "json") {
      const obj = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data)) as { type: string; request_id?: number; payload?: object };
      const type = (pb.FrameType as unknown as Record<string, number>)[obj.type]!;
      const field = obj.type.toLowerCase();
      return pb.Frame.fromObject({ type, request_id: obj.request_id ?? 0, [field]: obj.payload ?? {} });
    }
  } catch { /* really undecodable */ }
  return undefined;
}

export interface ConnectOptions {
  encoding?: Encoding;
  /** Send the token as Authorization: Bearer instead of ?access_token=. */
  bearer?: boolean;
  /** Raw query string (overrides device_id/access_token). */
  query?: string;
  protocolHeader?: string | null;
}

/** Opens a socket through the real gateway. Does not wait for HELLO. */
export async function connectProbe(token: string | undefined, deviceId = `dev-${crypto.randomUUID().slice(0, 8)}`, opts: ConnectOptions = {}): Promise<ProbeDevice> {
  const encoding = opts.encoding ?? "proto";
  const params = new URLSearchParams({ device_id: deviceId });
  if (token !== undefined && !opts.bearer) params.set("access_token", token);
  const headers: Record<string, string> = { Upgrade: "websocket" };
  const proto = opts.protocolHeader === undefined ? (encoding === "json" ? SUBPROTOCOL_JSON : SUBPROTOCOL_PROTO) : opts.protocolHeader;
  if (proto !== null) headers["Sec-WebSocket-Protocol"] = proto;
  if (token !== undefined && opts.bearer) headers.Authorization = `Bearer ${token}`;
  const res = await SELF.fetch(`${BASE}/v1/connect?${opts.query ?? params.toString()}`, { headers });
  const ws = res.webSocket;
  if (!ws) throw new Error(`no WebSocket in response: ${res.status} ${await res.text()}`);
  ws.accept();
  ws.binaryType = "arraybuffer";
  return new ProbeDevice(ws, encoding, deviceId);
}

/** Connects and waits for HELLO; the socket awaits RESUME (no live deliveries yet). */
export async function probeHello(token: string, deviceId?: string, encoding: Encoding = "proto"): Promise<ProbeDevice> {
  const d = await connectProbe(token, deviceId, { encoding });
  await d.next(T.HELLO);
  return d;
}

/** Connects and RESUMEs as a fresh device would: the socket is live. */
export async function probeOnline(token: string, deviceId?: string, encoding: Encoding = "proto"): Promise<ProbeDevice> {
  const d = await probeHello(token, deviceId, encoding);
  await d.resume([]);
  return d;
}

/** Every message of a channel over REST, paging forward with ?after= from the start. */
export async function fullHistory(user: TestUser, channelId: string): Promise<Msg[]> {
  const out: Msg[] = [];
  let after = 0;
  for (let page = 0; page < 1000; page++) {
    const r = await call<{ messages: Msg[]; has_more: boolean }>("GET", `/v1/channels/${channelId}/messages?after=${after}&limit=200`, { token: user.access_token });
    if (r.status !== 200) throw new Error(`history failed: ${r.status} ${JSON.stringify(r.body)}`);
    out.push(...r.body.messages);
    if (!r.body.has_more || r.body.messages.length === 0) return out;
    after = Number(r.body.messages.at(-1)!.seq);
  }
  throw new Error("history did not end");
}

/** The storage invariants of one channel's log: seq contiguous from 1, client_msg_ids unique per sender. */
export function expectWellFormedLog(messages: Msg[]): void {
  messages.forEach((m, i) => expect(Number(m.seq), `seq at position ${i}`).toBe(i + 1));
  const keys = messages.filter((m) => m.client_msg_id).map((m) => `${m.sender_user_id}/${m.client_msg_id}`);
  expect(new Set(keys).size, "a (sender, client_msg_id) stored twice").toBe(keys.length);
  for (let i = 1; i < messages.length; i++) expect(messages[i]!.hlc! > messages[i - 1]!.hlc!, `hlc increases at seq ${i + 1}`).toBe(true);
}

/** A REST error body: exactly {code, message, retryable} (+ backoff_hint_ms, trace_id, user_ids for refusals about people). */
export function expectErrorBody(body: unknown, context = ""): void {
  expect(body, context).toBeTypeOf("object");
  const b = body as Record<string, unknown>;
  expect(typeof b.code, `${context} code`).toBe("string");
  expect(typeof b.message, `${context} message`).toBe("string");
  expect(typeof b.retryable, `${context} retryable`).toBe("boolean");
  for (const k of Object.keys(b)) expect(["code", "message", "retryable", "backoff_hint_ms", "trace_id", "user_ids"], `${context} unexpected key ${k}`).toContain(k);
  if ("trace_id" in b) expect(b.trace_id, `${context} trace_id`).toMatch(/^[0-9a-f]{32}$/);
}

/** A raw REST call that never parses as JSON for you: status, content type, text. */
export async function rawCall(method: string, path: string, init: { token?: string; body?: BodyInit; contentType?: string; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token !== undefined) headers.Authorization = `Bearer ${init.token}`;
  if (init.contentType) headers["Content-Type"] = init.contentType;
  const res = await SELF.fetch(`${BASE}${path}`, { method, headers, body: init.body });
  const text = await res.text();
  let json: unknown;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", text, json };
}

/**
 * Sends `frames` in order on `dev` with at most `window` awaiting their reply (as the SDK does;
 * the server's flow-control window is LIMITS.maxUnackedFrames). Answers come back by index.
 */
export async function pipeline(dev: ProbeDevice, frames: FrameInit[], window: number, timeoutMs = 30_000): Promise<Frame[]> {
  const answers: Frame[] = new Array(frames.length);
  let next = 0;
  const worker = async () => {
    while (next < frames.length) {
      const i = next++;
      answers[i] = await dev.reply(dev.send(frames[i]!), timeoutMs);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, frames.length) }, worker));
  return answers;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
