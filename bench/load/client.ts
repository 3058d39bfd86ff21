/**
 * One raw WebSocket speaking edgechat's binary frames (the `ws` package, binaryType arraybuffer,
 * protocol/codec.ts). Every decoded frame goes to `onFrame` with its arrival time; `next()` waits
 * for one frame with an explicit timeout (HELLO, RESUMED).
 */
import WebSocket from "ws";
import { decodeFrame, encodeFrame, frameTypeName, pb, type Frame, type FrameInit } from "../../protocol/codec.js";
import { PING, SUBPROTOCOL_PROTO } from "../../protocol/limits.js";

/** As the SDK's default heartbeat interval: well inside the server's 90 s idle limit. */
const HEARTBEAT_MS = 30_000;

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
    // A ping every HEARTBEAT_MS, as the SDK sends: a socket that says nothing for 90 s is closed as
    // idle (4408), and a bench holds devices for minutes (1,000 take that long to connect on a
    // loaded machine). Both servers answer it without waking an object (auto-response "pong").
    // (A server too far behind to read its sockets still closes them: BENCHMARKS.md, (g).)
    const heartbeat = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.send(PING); }, HEARTBEAT_MS);
    heartbeat.unref();
    ws.once("close", () => clearInterval(heartbeat));
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

/**
 * A connect that did not get through. `reason` is short and stable (counted per reason in the
 * reports); `retryable` says whether trying again can help: the server was slow or restarting
 * (a handshake or HELLO past its timeout, a reset, a 5xx, an ERROR frame marked retryable), not
 * a refusal (a 4xx, an ERROR such as `unauthorized`).
 */
export class ConnectFailure extends Error {
  constructor(readonly label: string, readonly reason: string, readonly retryable: boolean, detail = reason) {
    super(`${label}: ${detail}`);
  }
}

/** HTTP statuses worth another attempt: the server or wrangler's proxy was busy or restarting. */
const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

/** The reason counted for a socket error (Node's `ws` and `net` messages and codes). */
function socketErrorReason(err: Error & { code?: string }): string {
  if (/handshake has timed out/i.test(err.message)) return "handshake timeout";
  return err.code ?? err.message.slice(0, 40);
}

/** Opens a socket and waits for the server's HELLO (the first frame on every connection), within `timeoutMs` in all. */
export async function openSocket(url: string, label: string, timeoutMs = 15_000): Promise<BenchSocket> {
  const ws = new WebSocket(url, SUBPROTOCOL_PROTO, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
  const socket = new BenchSocket(ws, label);
  const hello = socket.next((f) => f.type === pb.FrameType.HELLO || f.type === pb.FrameType.ERROR, timeoutMs, "HELLO");
  // Handled from the start: a handshake slower than the timeout must fail this connect, not
  // crash the bench with an unhandled rejection while it still awaits `opened` (leaving both servers running).
  hello.catch(() => undefined);
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", (err: Error) => reject(new ConnectFailure(label, socketErrorReason(err), true, err.message)));
    ws.once("unexpected-response", (_req, res) => {
      const status = res.statusCode ?? 0;
      reject(new ConnectFailure(label, `HTTP ${status}`, RETRYABLE_STATUS.has(status), `HTTP ${status} instead of a WebSocket`));
    });
  });
  // Closed by the server before HELLO (no ERROR frame first): a restart or an overload, not an answer.
  const closedEarly = new Promise<never>((_, reject) => {
    ws.once("close", (code: number) => reject(new ConnectFailure(label, `closed ${code} before HELLO`, code < 4000, `closed (${code}) before HELLO`)));
  });
  closedEarly.catch(() => undefined);
  try {
    await opened;
    const first = await Promise.race([hello, closedEarly]).catch((err: unknown) => {
      if (err instanceof ConnectFailure) throw err;
      throw new ConnectFailure(label, "no HELLO", true, err instanceof Error ? err.message.replace(`${label}: `, "") : String(err));
    });
    if (first.type !== pb.FrameType.HELLO) {
      const code = first.error?.code ?? "";
      throw new ConnectFailure(label, `ERROR ${code}`, first.error?.retryable ?? false, `${frameTypeName(first.type)} ${code} ${first.error?.message ?? ""} instead of HELLO`);
    }
  } catch (err) {
    ws.terminate();
    throw err;
  }
  return socket;
}
