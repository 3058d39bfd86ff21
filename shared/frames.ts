/**
 * Building and sending frames on server-side sockets, and refusing a WebSocket with a readable
 * reason (an ERROR frame, then a close code) instead of a bare HTTP error a browser cannot read.
 */
import { encodeFrame, pb, type Encoding, type FrameInit } from "../protocol/codec.js";
import { SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO } from "../protocol/limits.js";
import type { Failure } from "./errors.js";
import { log } from "./log.js";
import { count } from "./metrics.js";

export const CLOSE = {
  badRequest: 4400,
  unauthorized: 4401,
  /** A browser page from an origin not in ALLOWED_ORIGINS. */
  forbiddenOrigin: 4403,
  /** The socket's session was signed out: log in again (do not refresh, do not reconnect). */
  sessionRevoked: 4410,
  tooManyDevices: 4009,
  replaced: 4409,
  idle: 4408,
  goingAway: 1001,
} as const;

/** An ERROR frame answering `requestId`; every one is counted as an error by code. */
export function errorFrame(requestId: number, f: Failure, extra: { channel_id?: string; client_msg_id?: string; trace_id?: string } = {}): FrameInit {
  count("error", 1, { code: f.code, via: "ws" });
  return {
    type: pb.FrameType.ERROR,
    request_id: requestId,
    error: {
      request_id: requestId, code: f.code, message: f.message, retryable: f.retryable,
      backoff_hint_ms: f.backoffHintMs ?? 0, ...extra,
    },
  };
}

/** Sends if the socket is open; a socket that is closing or gone is not an error worth raising. */
export function sendFrame(ws: WebSocket, frame: FrameInit | Uint8Array | string, encoding: Encoding): boolean {
  if (ws.readyState !== WebSocket.OPEN) return false;
  try {
    ws.send(frame instanceof Uint8Array || typeof frame === "string" ? frame : encodeFrame(frame, encoding));
    return true;
  } catch (err) {
    log("warn", "ws.send_failed", { object: "socket" }, err);
    return false;
  }
}

/** The subprotocol the client asked for; proto when it asked for none. */
export function negotiateEncoding(request: Request): { encoding: Encoding; header?: string } | undefined {
  const offered = (request.headers.get("Sec-WebSocket-Protocol") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (offered.length === 0) return { encoding: "proto" };
  if (offered.includes(SUBPROTOCOL_PROTO)) return { encoding: "proto", header: SUBPROTOCOL_PROTO };
  if (offered.includes(SUBPROTOCOL_JSON)) return { encoding: "json", header: SUBPROTOCOL_JSON };
  return undefined;
}

/** Accepts the upgrade only to say why it is refused, then closes with `closeCode`. */
export function refuseWebSocket(f: Failure, closeCode: number, encoding: Encoding, protocolHeader?: string): Response {
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  server.accept();
  sendFrame(server, errorFrame(0, f), encoding);
  server.close(closeCode, f.code);
  const headers = protocolHeader ? { "Sec-WebSocket-Protocol": protocolHeader } : undefined;
  return new Response(null, { status: 101, webSocket: client, headers });
}
