/**
 * One raw WebSocket speaking edgechat's binary frames (the `ws` package, binaryType arraybuffer,
 * protocol/codec.ts). Every decoded frame goes to `onFrame` with its arrival time; `next()` waits
 * for one frame with an explicit timeout (HELLO, RESUMED).
 */
import WebSocket from "ws";
import { decodeFrame, encodeFrame, frameTypeName, pb, type Frame, type FrameInit } from "../../protocol/codec.js";
import { SUBPROTOCOL_PROTO } from "../../protocol/limits.js";

export type FrameHandler = (frame: Frame, at: number) => void;

interface Waiter {
  pred: (f: Frame) => boolean;
  resolve: (f: Frame) => void;
}

export class BenchSocket {
  onFrame: FrameHandler | undefined;
  /** Frames the server sent that the codec could not decode (must stay 0). */
  undecodable = 0;
  closeCode: number | undefined;
  private nextRequestId = 1;
  private waiters: Waiter[] = [];
  private readonly closed: Promise<void>;

  constructor(private readonly ws: WebSocket, readonly label: string) {
    ws.binaryType = "arraybuffer";
    ws.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
      const at = performance.now();
      if (!isBinary || !(data instanceof ArrayBuffer)) return; // "pong" heartbeats
      const d = decodeFrame(data, "proto");
      if (!d.ok) { this.undecodable++; return; }
      if (this.waiters.length > 0) {
        const w = this.waiters.find((x) => x.pred(d.frame));
        if (w) { this.waiters = this.waiters.filter((x) => x !== w); w.resolve(d.frame); }
      }
      this.onFrame?.(d.frame, at);
    });
    this.closed = new Promise((resolve) => ws.once("close", (code: number) => { this.closeCode = code; resolve(); }));
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a frame; the request id is assigned here unless given. */
  send(frame: FrameInit): number {
    const request_id = frame.request_id ?? this.nextRequestId++;
    this.ws.send(encodeFrame({ ...frame, request_id }, "proto"));
    return request_id;
  }

  /** The next frame matching `pred` (frames that arrived before the call are not searched). */
  next(pred: (f: Frame) => boolean, timeoutMs: number, what: string): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== waiter);
        reject(new Error(`${this.label}: no ${what} within ${timeoutMs} ms${this.closeCode === undefined ? "" : ` (closed ${this.closeCode})`}`));
      }, timeoutMs);
      const waiter: Waiter = { pred, resolve: (f) => { clearTimeout(timer); resolve(f); } };
      this.waiters.push(waiter);
    });
  }

  /** Closes cleanly and waits for the server's Close; terminates after `timeoutMs`. */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    try { this.ws.close(1000, "bench done"); } catch { /* not open yet */ }
    const timer = setTimeout(() => this.ws.terminate(), timeoutMs);
    await this.closed;
    clearTimeout(timer);
  }
}

/** Opens a socket and waits for the server's HELLO (the first frame on every connection). */
export async function openSocket(url: string, label: string, timeoutMs = 15_000): Promise<BenchSocket> {
  const ws = new WebSocket(url, SUBPROTOCOL_PROTO, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
  const socket = new BenchSocket(ws, label);
  const hello = socket.next((f) => f.type === pb.FrameType.HELLO || f.type === pb.FrameType.ERROR, timeoutMs, "HELLO");
  // Handled from the start: a handshake slower than the timeout must fail this connect, not
  // crash the bench with an unhandled rejection while it still awaits `opened` (leaving both servers running).
  hello.catch(() => undefined);
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", (err: Error) => reject(new Error(`${label}: ${err.message}`)));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`${label}: HTTP ${res.statusCode} instead of a WebSocket`)));
  });
  try {
    await opened;
    const first = await hello;
    if (first.type !== pb.FrameType.HELLO) {
      throw new Error(`${label}: ${frameTypeName(first.type)} ${first.error?.code ?? ""} ${first.error?.message ?? ""} instead of HELLO`);
    }
  } catch (err) {
    ws.terminate();
    throw err;
  }
  return socket;
}
