/**
 * One logical realtime connection over a series of WebSockets: opens them, keeps them alive with
 * a text heartbeat, and decides after every close whether, when and how to come back.
 *
 * Close codes (docs/protocol.md): 4401 = the token was rejected → renew it, then reconnect;
 * 4410 = the session was signed out → stop (the client forgets its tokens and says so);
 * 4409 = another connection of this device replaced this one and 4009 = too many devices → stop,
 * since reconnecting would just fight the other connection or be refused again. Anything else
 * (4408 = the server heard nothing, not even a ping, for 90 s) → reconnect with jittered
 * exponential backoff, reset once a RESUME completes. 4403 = a browser page from an origin the
 * server does not allow → stop.
 *
 * A dead socket (the network went away without a close) is noticed by the heartbeat: a text
 * `ping` every interval, and the socket is given up if nothing at all (the `pong`, any frame)
 * arrives within the heartbeat timeout after it. In browsers the `offline` and `online` events
 * send a ping at once, so a lost network shows within the timeout rather than an interval later.
 *
 * The connection knows frames only as far as it must (decode, heartbeat); the protocol
 * conversation (HELLO, RESUME, ...) belongs to the client, which reports progress back through
 * markResuming()/markReady().
 */
import { decodeFrame, encodeFrame, type Encoding, type Frame, type FrameInit } from "../protocol/codec.js";
import { PING, PONG, SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO } from "../protocol/limits.js";
import { backoffDelay, goAwayDelay } from "./backoff.js";
import { damageReports } from "./damaged-text.js";
import { EdgechatError } from "./errors.js";
import type { Clock, ConnectionState, ConnectionStateChange, Scheduler, SocketEvent, WebSocketConstructor, WebSocketLike } from "./types.js";

export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_REPLACED = 4409;
export const CLOSE_TOO_MANY_DEVICES = 4009;
export const CLOSE_FORBIDDEN_ORIGIN = 4403;
/** The socket's session was signed out: stop, forget the tokens, show the sign-in screen. */
export const CLOSE_SIGNED_OUT = 4410;
/** Our own code for a socket we gave up on (heartbeat or connect timeout). */
export const CLOSE_DEAD = 4000;
/** Consecutive 4401s, each after a successful renewal, before the client stops trying. */
const MAX_AUTH_REJECTIONS = 3;
const OPEN = 1;

export interface ConnectionHooks {
  /** The URL to open, token included. A non-retryable rejection stops the connection. */
  socketUrl(): Promise<string>;
  /** After a 4401: renew the token. A non-retryable rejection stops the connection. */
  renewAuth(): Promise<void>;
  /** The socket is open (HELLO comes next). */
  opened(): void;
  frame(frame: Frame): void;
  /** The socket is gone, whatever the reason; called before any reconnect is scheduled. */
  down(): void;
  state(change: ConnectionStateChange): void;
  /** Something worth telling the app that does not end the connection. */
  warn(err: EdgechatError): void;
  /** The connection stopped for good. */
  fatal(err: EdgechatError): void;
}

export interface ConnectionConfig {
  encoding: Encoding;
  /**
   * Read at every open. Undefined when the platform has none and none was given: the client then
   * loads the `ws` package before start(), and start() without one fails clearly.
   */
  WebSocket: WebSocketConstructor | undefined;
  clock: Clock;
  scheduler: Scheduler;
  random: () => number;
  heartbeatIntervalMs: number;
  /** How long after a ping something must arrive before the socket counts as dead. */
  heartbeatTimeoutMs: number;
  connectTimeoutMs: number;
}

export class Connection {
  private current: ConnectionState = "offline";
  private socket: WebSocketLike | undefined;
  private running = false;
  /** Bumped whenever a socket or attempt is abandoned; stale callbacks compare and bail out. */
  private generation = 0;
  private attempt = 0;
  private authRejections = 0;
  private replacedBy: string | undefined;
  /** Set by GOAWAY: when to move to a new connection; the next reconnect waits for it, not the backoff. */
  private goAwayAt: number | undefined;
  private goAwayTimer: unknown;
  /** Set by ERROR.backoff_hint_ms: the next reconnect waits at least this long. */
  private hintMs = 0;
  private lastReceivedAt = 0;
  /** When the unanswered ping went out, if one is out. */
  private pingSentAt: number | undefined;
  private reconnectTimer: unknown;
  private heartbeatTimer: unknown;
  private pongTimer: unknown;
  private networkListener: (() => void) | undefined;
  private connectTimer: unknown;
  private inbound: Promise<void> | undefined;
  private onlineListener: (() => void) | undefined;

  constructor(
    private readonly config: ConnectionConfig,
    private readonly hooks: ConnectionHooks,
  ) {}

  get state(): ConnectionState {
    return this.current;
  }

  /** True from HELLO's arrival on: frames may be sent. */
  get canSend(): boolean {
    return this.socket !== undefined && this.socket.readyState === OPEN && (this.current === "open" || this.current === "resuming" || this.current === "ready");
  }

  get isRunning(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.authRejections = 0;
    this.replacedBy = undefined;
    this.goAwayAt = undefined;
    this.hintMs = 0;
    void this.open();
  }

  /** Closes the socket and stays closed until start(). */
  stop(reason = "disconnect()"): void {
    const wasRunning = this.running;
    this.running = false;
    this.generation++;
    this.clearReconnect();
    const hadSocket = this.dropSocket(1000, "client disconnect");
    if (hadSocket) this.hooks.down();
    if (wasRunning || this.current !== "closed") this.setState("closed", { reason });
  }

  /** Encodes and writes a frame; false if there is no open socket. */
  send(frame: FrameInit): boolean {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) return false;
    socket.send(encodeFrame(frame, this.config.encoding));
    return true;
  }

  markResuming(): void {
    this.setState("resuming");
  }

  /** RESUMED: the connection works, so the next drop starts the backoff from scratch. */
  markReady(): void {
    this.attempt = 0;
    this.authRejections = 0;
    this.setState("ready");
  }

  /** CONFLICT: another connection of this device took over; the close that follows is final. */
  markReplaced(reason: string): void {
    this.replacedBy = reason || "another connection of this device took over";
  }

  /** ERROR.backoff_hint_ms on a connection-level error: honour it if the socket then drops. */
  hint(backoffMs: number): void {
    this.hintMs = Math.max(this.hintMs, backoffMs);
  }

  /**
   * GOAWAY: the server wants this connection moved at a moment it spread over its drain window.
   * Keep using this socket until the server's delay plus jitter is up, then reconnect at once and
   * RESUME; if the server closes the socket first, the reconnect still waits for that moment.
   */
  goAway(reconnectAfterMs: number): void {
    if (!this.running) return;
    const delay = goAwayDelay(reconnectAfterMs, this.config.random);
    this.goAwayAt = this.config.clock.now() + delay;
    this.config.scheduler.clearTimeout(this.goAwayTimer);
    const gen = this.generation;
    this.goAwayTimer = this.config.scheduler.setTimeout(() => {
      this.goAwayTimer = undefined;
      if (gen === this.generation && this.running) this.abandon(1000, "goaway", "goaway");
    }, delay);
  }

  private async open(): Promise<void> {
    const gen = ++this.generation;
    this.clearReconnect();
    this.setState("connecting");
    let url: string;
    try {
      url = await this.hooks.socketUrl();
    } catch (err) {
      if (gen !== this.generation || !this.running) return;
      this.retryOrGiveUp(asError(err));
      return;
    }
    if (gen !== this.generation || !this.running) return;
    const WebSocketImpl = this.config.WebSocket;
    if (!WebSocketImpl) {
      this.fatal(new EdgechatError({ code: "invalid_argument", message: "No WebSocket implementation: pass createClient({ WebSocket }) (e.g. the `ws` package on Node)." }));
      return;
    }
    let socket: WebSocketLike;
    try {
      socket = new WebSocketImpl(url, [this.config.encoding === "json" ? SUBPROTOCOL_JSON : SUBPROTOCOL_PROTO]);
      socket.binaryType = "arraybuffer";
    } catch (err) {
      this.hooks.warn(new EdgechatError({ code: "network_error", message: `Opening the WebSocket failed: ${asError(err).message}`, retryable: true }));
      this.scheduleReconnect("socket constructor failed");
      return;
    }
    this.socket = socket;
    this.inbound = undefined;
    this.connectTimer = this.config.scheduler.setTimeout(() => {
      if (this.socket === socket) this.abandon(CLOSE_DEAD, "connect timeout", "connect timeout");
    }, this.config.connectTimeoutMs);
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      this.config.scheduler.clearTimeout(this.connectTimer);
      this.lastReceivedAt = this.config.clock.now();
      this.setState("open");
      this.scheduleHeartbeat(socket);
      this.watchNetwork(socket);
      this.hooks.opened();
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return;
      this.lastReceivedAt = this.config.clock.now();
      // Anything at all answers the ping that is out.
      this.pingSentAt = undefined;
      this.config.scheduler.clearTimeout(this.pongTimer);
      this.receive(socket, event);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.closed(event);
    });
    // Errors are always followed by a close event; the listener also keeps the `ws` package
    // from treating the error as unhandled.
    socket.addEventListener("error", () => {});
  }

  private receive(socket: WebSocketLike, event: SocketEvent): void {
    const data = event.data;
    if (this.inbound === undefined && !isBlob(data)) {
      this.handleData(data);
      return;
    }
    // binaryType was not honoured and a Blob arrived: decode asynchronously, keeping frame order.
    this.inbound = (this.inbound ?? Promise.resolve())
      .then(async () => (isBlob(data) ? new Uint8Array(await data.arrayBuffer()) : data))
      .then((bytes) => {
        if (this.socket === socket) this.handleData(bytes);
      });
  }

  private handleData(data: unknown): void {
    if (data === PONG) return;
    let wire: Uint8Array | string;
    if (typeof data === "string") wire = data;
    else if (data instanceof Uint8Array) wire = data;
    else if (ArrayBuffer.isView(data)) wire = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else if (Object.prototype.toString.call(data) === "[object ArrayBuffer]") wire = new Uint8Array(data as ArrayBuffer);
    else {
      this.hooks.warn(new EdgechatError({ code: "malformed_frame", message: "The server sent a WebSocket message of an unknown kind." }));
      return;
    }
    const result = decodeFrame(wire, this.config.encoding);
    if (!result.ok && result.code === "invalid_text") {
      // Only the bad text is lost: keep the frame (repaired with U+FFFD) and say which messages.
      for (const report of damageReports(result)) this.hooks.warn(report);
      this.hooks.frame(result.repaired);
      return;
    }
    if (!result.ok) {
      this.hooks.warn(new EdgechatError({ code: result.code, message: `The server sent an unreadable frame: ${result.message}` }));
      return;
    }
    this.hooks.frame(result.frame);
  }

  private scheduleHeartbeat(socket: WebSocketLike): void {
    this.heartbeatTimer = this.config.scheduler.setTimeout(() => {
      if (this.socket !== socket) return;
      this.probe(socket);
      this.scheduleHeartbeat(socket);
    }, this.config.heartbeatIntervalMs);
  }

  /** Sends a ping and gives the socket up if nothing arrives within the heartbeat timeout. */
  private probe(socket: WebSocketLike): void {
    if (this.socket !== socket || socket.readyState !== OPEN || this.pingSentAt !== undefined) return;
    const sentAt = this.config.clock.now();
    this.pingSentAt = sentAt;
    socket.send(PING);
    const timeout = this.config.heartbeatTimeoutMs;
    this.pongTimer = this.config.scheduler.setTimeout(() => {
      if (this.socket !== socket || this.pingSentAt !== sentAt) return;
      this.abandon(CLOSE_DEAD, "heartbeat timeout", `no pong within ${timeout} ms of a ping`);
    }, timeout);
  }

  /** Browsers: a network change may have killed the socket silently; ask it at once. */
  private watchNetwork(socket: WebSocketLike): void {
    const target = globalThis as { addEventListener?: (type: string, fn: () => void) => void };
    if (typeof target.addEventListener !== "function") return;
    const listener = (): void => this.probe(socket);
    this.networkListener = listener;
    target.addEventListener("offline", listener);
    target.addEventListener("online", listener);
  }

  private closed(event: SocketEvent): void {
    const code = typeof event.code === "number" ? event.code : 1006;
    const reason = typeof event.reason === "string" ? event.reason : "";
    this.dropSocket();
    this.hooks.down();
    if (!this.running) return;
    if (code === CLOSE_REPLACED || this.replacedBy !== undefined) {
      this.fatal(new EdgechatError({ code: "replaced", message: `Connection replaced: ${this.replacedBy ?? (reason || "another connection of this device took over")}.` }));
    } else if (code === CLOSE_SIGNED_OUT) {
      this.fatal(new EdgechatError({ code: "session_revoked", message: reason && reason !== "signed out" ? reason : "This session was signed out; log in again." }));
    } else if (code === CLOSE_TOO_MANY_DEVICES) {
      this.fatal(new EdgechatError({ code: "too_many_devices", message: reason || "This account has 10 devices already; remove one with DELETE /v1/devices/{id}." }));
    } else if (code === CLOSE_FORBIDDEN_ORIGIN) {
      this.fatal(new EdgechatError({ code: "forbidden", message: "The server does not accept connections from this page's origin (close 4403)." }));
    } else if (code === CLOSE_UNAUTHORIZED) {
      void this.reauthenticate(reason);
    } else {
      this.scheduleReconnect(`closed ${code}${reason ? ` ${reason}` : ""}`);
    }
  }

  private async reauthenticate(reason: string): Promise<void> {
    this.authRejections++;
    if (this.authRejections > MAX_AUTH_REJECTIONS) {
      this.fatal(new EdgechatError({ code: "unauthorized", message: `The server keeps rejecting renewed tokens (${reason || "close 4401"}).` }));
      return;
    }
    const gen = ++this.generation;
    this.setState("reconnecting", { reason: `close 4401 ${reason}`.trim() });
    try {
      await this.hooks.renewAuth();
    } catch (err) {
      if (gen !== this.generation || !this.running) return;
      this.retryOrGiveUp(asError(err));
      return;
    }
    if (gen !== this.generation || !this.running) return;
    // The first renewal reconnects at once; repeated rejections back off like any failure.
    if (this.authRejections === 1) void this.open();
    else this.scheduleReconnect("token rejected again");
  }

  /** Gives up on the current socket ourselves (no close event needed) and plans the comeback. */
  private abandon(code: number, closeReason: string, why: string): void {
    this.generation++;
    this.dropSocket(code, closeReason);
    this.hooks.down();
    if (this.running) this.scheduleReconnect(why);
  }

  /** A failure while (re)connecting: try again later if it may pass, else stop for good. */
  private retryOrGiveUp(e: EdgechatError): void {
    if (e.retryable) this.scheduleReconnect(e.message);
    else this.fatal(e);
  }

  private scheduleReconnect(reason: string): void {
    this.clearReconnect();
    let delay: number;
    if (this.goAwayAt !== undefined) {
      delay = Math.max(0, this.goAwayAt - this.config.clock.now());
      this.goAwayAt = undefined;
    } else {
      delay = backoffDelay(this.attempt, this.config.random);
      this.attempt++;
    }
    delay = Math.max(delay, this.hintMs);
    this.hintMs = 0;
    const gen = this.generation;
    this.reconnectTimer = this.config.scheduler.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (gen === this.generation && this.running) void this.open();
    }, delay);
    const offline = isBrowserOffline();
    this.setState(offline ? "offline" : "reconnecting", { reason, retryInMs: delay });
    if (offline) this.reconnectWhenOnline(gen);
  }

  /** Browsers only: come back as soon as the network does, rather than at the next backoff step. */
  private reconnectWhenOnline(gen: number): void {
    const target = globalThis as { addEventListener?: (type: string, fn: () => void) => void; removeEventListener?: (type: string, fn: () => void) => void };
    if (typeof target.addEventListener !== "function") return;
    const listener = (): void => {
      target.removeEventListener?.("online", listener);
      if (this.onlineListener === listener) this.onlineListener = undefined;
      if (gen === this.generation && this.running && this.reconnectTimer !== undefined) void this.open();
    };
    this.onlineListener = listener;
    target.addEventListener("online", listener);
  }

  private clearReconnect(): void {
    if (this.reconnectTimer !== undefined) this.config.scheduler.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    if (this.onlineListener) {
      (globalThis as { removeEventListener?: (type: string, fn: () => void) => void }).removeEventListener?.("online", this.onlineListener);
      this.onlineListener = undefined;
    }
  }

  /** Forgets the socket (closing it if a code is given) and its timers. True if there was one. */
  private dropSocket(code?: number, reason?: string): boolean {
    const socket = this.socket;
    this.socket = undefined;
    this.inbound = undefined;
    this.config.scheduler.clearTimeout(this.heartbeatTimer);
    this.config.scheduler.clearTimeout(this.connectTimer);
    this.config.scheduler.clearTimeout(this.pongTimer);
    this.config.scheduler.clearTimeout(this.goAwayTimer);
    this.goAwayTimer = undefined;
    this.heartbeatTimer = undefined;
    this.connectTimer = undefined;
    this.pongTimer = undefined;
    this.pingSentAt = undefined;
    if (this.networkListener) {
      const target = globalThis as { removeEventListener?: (type: string, fn: () => void) => void };
      target.removeEventListener?.("offline", this.networkListener);
      target.removeEventListener?.("online", this.networkListener);
      this.networkListener = undefined;
    }
    if (socket && code !== undefined) {
      try {
        socket.close(code, reason);
      } catch {
        // Already closing or closed: nothing left to release.
      }
    }
    return socket !== undefined;
  }

  private fatal(err: EdgechatError): void {
    this.running = false;
    this.generation++;
    this.clearReconnect();
    if (this.dropSocket(1000, "client stop")) this.hooks.down();
    this.setState("closed", { reason: err.message });
    this.hooks.fatal(err);
  }

  private setState(state: ConnectionState, extra: { reason?: string; retryInMs?: number } = {}): void {
    const previous = this.current;
    if (previous === state && extra.reason === undefined) return;
    this.current = state;
    const change: ConnectionStateChange = { state, previous };
    if (extra.reason !== undefined) change.reason = extra.reason;
    if (extra.retryInMs !== undefined) change.retryInMs = extra.retryInMs;
    this.hooks.state(change);
  }
}

function asError(err: unknown): EdgechatError {
  if (err instanceof EdgechatError) return err;
  return new EdgechatError({ code: "network_error", message: err instanceof Error ? err.message : String(err), retryable: true });
}

function isBlob(data: unknown): data is { arrayBuffer(): Promise<ArrayBuffer> } {
  return typeof data === "object" && data !== null && !ArrayBuffer.isView(data) && typeof (data as { arrayBuffer?: unknown }).arrayBuffer === "function";
}

function isBrowserOffline(): boolean {
  const nav = (globalThis as { navigator?: { onLine?: unknown } }).navigator;
  return nav?.onLine === false;
}
