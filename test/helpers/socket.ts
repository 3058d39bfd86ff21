/**
 * A device connected through the real gateway: frames are decoded with the protocol codec and
 * queued, so tests can wait for "the next DELIVER" with an explicit timeout.
 */
import { SELF } from "cloudflare:test";
import { decodeFrame, encodeFrame, frameTypeName, pb, type Encoding, type Frame, type FrameInit } from "../../protocol/codec.js";
import { SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO } from "../../protocol/limits.js";
import { BASE } from "./api.js";
import { Waiters } from "./waiters.js";
import type { edgechat } from "../../protocol/generated/chat.js";

export type Msg = edgechat.v1.IChatMessage;

export class TestDevice {
  readonly frames: Frame[] = [];
  /** Every frame received, from the first one, never removed (for order checks). */
  readonly log: Frame[] = [];
  readonly texts: string[] = [];
  closed: { code: number; reason: string } | undefined;
  /** The token from RESUME_HINT, once onlineDevice() has taken it. */
  resumeToken = "";
  private readonly changes = new Waiters();
  private nextRequestId = 1;
  /** The last SEND.send_seq used on this connection (sendTexts numbers its SENDs). */
  private sendSeq = 0;

  constructor(readonly ws: WebSocket, readonly encoding: Encoding, readonly deviceId: string) {
    ws.addEventListener("message", (e) => {
      const data = e.data as ArrayBuffer | string;
      if (data === "pong") this.texts.push(data);
      else {
        const d = decodeFrame(data, encoding);
        if (!d.ok) throw new Error(`server sent an undecodable frame: ${d.message}`);
        this.frames.push(d.frame);
        this.log.push(d.frame);
      }
      this.wake();
    });
    ws.addEventListener("close", (e) => {
      this.closed = { code: e.code, reason: e.reason };
      this.wake();
    });
  }

  private wake(): void {
    this.changes.wake();
  }

  private async changed(timeoutMs: number): Promise<void> {
    if (!(await this.changes.wait(timeoutMs))) {
      throw new Error(`timed out after ${timeoutMs} ms; frames so far: ${this.frames.map((f) => frameTypeName(f.type)).join(",")}`);
    }
  }

  /** Removes and returns the first queued frame matching `pred`, waiting up to `timeoutMs`. */
  async take(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; queued: ${this.frames.map((f) => frameTypeName(f.type)).join(",")}`);
      await this.changed(left);
    }
  }

  /** Waits until a queued frame matches `pred`, leaving it queued. */
  async waitFor(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.frames.some(pred)) await this.changed(Math.max(1, deadline - Date.now()));
  }

  next(type: number, timeoutMs = 5000): Promise<Frame> {
    return this.take((f) => f.type === type, timeoutMs);
  }

  /** Waits until the text message `text` (e.g. "pong") has arrived. */
  async waitForText(text: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.texts.includes(text)) await this.changed(Math.max(1, deadline - Date.now()));
  }

  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) await this.changed(Math.max(1, deadline - Date.now()));
    return this.closed;
  }

  /** Every DELIVERed message until `count` have arrived, flattened, in arrival order. */
  async messages(count: number, timeoutMs = 10_000): Promise<Msg[]> {
    const out: Msg[] = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < count) {
      const f = await this.next(pb.FrameType.DELIVER, Math.max(1, deadline - Date.now()));
      out.push(...(f.deliver?.messages ?? []));
    }
    return out;
  }

  send(frame: FrameInit): number {
    const request_id = frame.request_id ?? this.nextRequestId++;
    this.ws.send(encodeFrame({ ...frame, request_id }, this.encoding));
    return request_id;
  }

  raw(data: string | ArrayBuffer | Uint8Array): void {
    this.ws.send(data);
  }

  /** SEND a text message and wait for its SEND_ACK (or ERROR). */
  async sendText(channelId: string, text: string, clientMsgId: string = crypto.randomUUID()): Promise<Frame> {
    const id = this.send({ type: pb.FrameType.SEND, send: { channel_id: channelId, client_msg_id: clientMsgId, content: { text: { text } } } });
    return this.take((f) => f.request_id === id && (f.type === pb.FrameType.SEND_ACK || f.type === pb.FrameType.ERROR));
  }

  /**
   * SENDs many texts the way the SDK does: pipelined, at most `window` awaiting their SEND_ACK
   * (the server allows LIMITS.maxUnackedFrames), numbered with send_seq so they are stored in the
   * order given. Resolves with each SEND's answer (SEND_ACK or ERROR), by index. Far fewer round
   * trips than one sendText after another, so a test's cost is its work, not the machine's latency.
   */
  async sendTexts(items: { channelId: string; text: string }[], window = 32): Promise<Frame[]> {
    const answers: Frame[] = new Array(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        const { channelId, text } = items[i]!;
        const id = this.send({ type: pb.FrameType.SEND, send: { channel_id: channelId, client_msg_id: crypto.randomUUID(), send_seq: ++this.sendSeq, content: { text: { text } } } });
        answers[i] = await this.take((f) => f.request_id === id && (f.type === pb.FrameType.SEND_ACK || f.type === pb.FrameType.ERROR), 30_000);
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, items.length) }, worker));
    return answers;
  }

  /** RESUME and collect every DELIVER that arrived before RESUMED (later ones stay queued). */
  async resume(cursors: { channel_id: string; last_seq: number }[] = [], timeoutMs = 15_000): Promise<{ messages: Msg[]; resumed: Frame }> {
    const id = this.send({ type: pb.FrameType.RESUME, resume: { cursors } });
    const isResumed = (f: Frame) => f.type === pb.FrameType.RESUMED && f.request_id === id;
    const deadline = Date.now() + timeoutMs;
    while (!this.frames.some(isResumed)) await this.changed(Math.max(1, deadline - Date.now()));
    const at = this.frames.findIndex(isResumed);
    const before = this.frames.splice(0, at + 1);
    const resumed = before.pop()!;
    const messages: Msg[] = [];
    for (const f of before) {
      if (f.type === pb.FrameType.DELIVER) messages.push(...(f.deliver?.messages ?? []));
      else this.frames.unshift(f);
    }
    return { messages, resumed };
  }

  close(): void {
    try { this.ws.close(1000, "done"); } catch { /* closed already */ }
  }
}

export function connectDevice(token: string, deviceId = `dev-${crypto.randomUUID().slice(0, 8)}`, encoding: Encoding = "proto"): Promise<TestDevice> {
  return connectWith({ access_token: token }, deviceId, encoding);
}

/** Connects with the credentials given as query parameters (an access token, a resume token...). */
export async function connectWith(query: Record<string, string>, deviceId = `dev-${crypto.randomUUID().slice(0, 8)}`, encoding: Encoding = "proto"): Promise<TestDevice> {
  const params = new URLSearchParams({ device_id: deviceId, ...query });
  const res = await SELF.fetch(`${BASE}/v1/connect?${params}`, {
    headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": encoding === "json" ? SUBPROTOCOL_JSON : SUBPROTOCOL_PROTO },
  });
  const ws = res.webSocket;
  if (!ws) throw new Error(`no WebSocket in response: ${res.status} ${await res.text()}`);
  ws.accept();
  ws.binaryType = "arraybuffer";
  return new TestDevice(ws, encoding, deviceId);
}

/**
 * Connects and waits for HELLO and the RESUME_HINT after it (its token kept in `resumeToken`); the
 * socket awaits RESUME (no live deliveries yet).
 */
export async function helloDevice(token: string, deviceId?: string, encoding: Encoding = "proto"): Promise<TestDevice> {
  const d = await connectDevice(token, deviceId, encoding);
  await d.next(pb.FrameType.HELLO);
  d.resumeToken = (await d.next(pb.FrameType.RESUME_HINT)).resume_hint?.session_token ?? "";
  return d;
}

/**
 * Connects, then RESUMEs as a fresh device would (what it missed goes to `resumedWith`): the
 * socket is live, and every later DELIVER is a live one.
 */
export async function onlineDevice(token: string, deviceId?: string, encoding: Encoding = "proto"): Promise<TestDevice & { resumedWith: Msg[] }> {
  const d = await helloDevice(token, deviceId, encoding);
  const { messages } = await d.resume([]);
  return Object.assign(d, { resumedWith: messages });
}
