/**
 * The bench's baseline ("limit") Worker: one SQLite Durable Object per room and nothing else.
 *
 *   GET /v1/connect?room=<id>&device_id=<id>&user_id=<id>   WebSocket, subprotocol edgechat.v1.proto
 *   GET /v1/touch?room=<id>   instantiates the room's object without a socket (memory scenario)
 *
 * The socket is accepted straight into the room's object (Hibernation API, tag = device id). The
 * object sends HELLO, then for each frame:
 *   SEND    INSERT one row, SEND_ACK to the sender, one DELIVER (encoded once) to every other socket
 *   RESUME  DELIVER every row after the cursor (pages of 200), then RESUMED {channels: [last_seq]}
 * No auth, no membership, no idempotency, no user objects, no fan-out hop: whatever edgechat
 * spends beyond this is the price of its design, which is what the bench's ratio shows.
 */
import { DurableObject } from "cloudflare:workers";
import { decodeFrame, encodeFrame, pb, type FrameInit } from "../../protocol/codec.js";
import { LIMITS, PING, PONG, SUBPROTOCOL_PROTO } from "../../protocol/limits.js";

interface LimitEnv {
  ROOMS: DurableObjectNamespace<LimitRoom>;
}

/** Kept on each socket across hibernation (ids only). */
interface SocketInfo {
  room: string;
  userId: string;
  deviceId: string;
}

interface Row extends Record<string, SqlStorageValue> {
  seq: number;
  client_msg_id: string;
  sender_user_id: string;
  sender_device_id: string;
  content: ArrayBuffer;
  server_ts: number;
}

const PAGE = 200;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

export class LimitRoom extends DurableObject<LimitEnv> {
  private readonly sql: SqlStorage;
  private lastSeq: number;

  constructor(ctx: DurableObjectState, env: LimitEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS messages (
      seq INTEGER PRIMARY KEY, client_msg_id TEXT NOT NULL, sender_user_id TEXT NOT NULL,
      sender_device_id TEXT NOT NULL, content BLOB NOT NULL, server_ts INTEGER NOT NULL)`);
    this.lastSeq = this.sql.exec<{ n: number }>("SELECT coalesce(max(seq), 0) AS n FROM messages").one().n;
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
  }

  /** Nothing: being called is what loads the object (its SQLite database included). */
  touch(): number {
    return this.lastSeq;
  }

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const info: SocketInfo = {
      room: url.searchParams.get("room") ?? "",
      userId: url.searchParams.get("user_id") ?? "",
      deviceId: url.searchParams.get("device_id") ?? "",
    };
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server, [info.deviceId]);
    server.serializeAttachment(info);
    send(server, {
      type: pb.FrameType.HELLO,
      hello: {
        user_id: info.userId, device_id: info.deviceId, max_frame_bytes: LIMITS.maxFrameBytes,
        max_content_bytes: LIMITS.maxContentBytes, max_unacked_frames: LIMITS.maxUnackedFrames,
        server_ts: Date.now(), protocol: SUBPROTOCOL_PROTO,
      },
    });
    return new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": SUBPROTOCOL_PROTO } });
  }

  override webSocketMessage(ws: WebSocket, data: ArrayBuffer | string): void {
    const decoded = decodeFrame(data, "proto");
    if (!decoded.ok) return error(ws, decoded.requestId, decoded.code, decoded.message);
    const frame = decoded.frame;
    const info = ws.deserializeAttachment() as SocketInfo;
    if (frame.type === pb.FrameType.SEND && frame.send) {
      const s = frame.send;
      const content = pb.MessageContent.encode(s.content ?? {}).finish();
      const seq = ++this.lastSeq;
      const now = Date.now();
      this.sql.exec(
        "INSERT INTO messages (seq, client_msg_id, sender_user_id, sender_device_id, content, server_ts) VALUES (?, ?, ?, ?, ?, ?)",
        seq, s.client_msg_id, info.userId, info.deviceId, content, now,
      );
      send(ws, {
        type: pb.FrameType.SEND_ACK, request_id: frame.request_id,
        send_ack: { client_msg_id: s.client_msg_id, channel_id: info.room, seq, server_ts: now, status: "stored", server_msg_id: String(seq) },
      });
      const bytes = encodeFrame({
        type: pb.FrameType.DELIVER,
        deliver: { messages: [{
          channel_id: info.room, seq, server_msg_id: String(seq), client_msg_id: s.client_msg_id,
          sender_user_id: info.userId, sender_device_id: info.deviceId, server_ts: now, content: s.content,
        }] },
      }, "proto");
      for (const other of this.ctx.getWebSockets()) if (other !== ws) send(other, bytes);
      return;
    }
    if (frame.type === pb.FrameType.RESUME) {
      const cursor = frame.resume?.cursors?.find((c) => c.channel_id === info.room)?.last_seq ?? 0;
      this.resume(ws, info, cursor, frame.request_id);
      return;
    }
    error(ws, frame.request_id, "not_implemented", "The limit worker serves SEND and RESUME only.");
  }

  override webSocketClose(ws: WebSocket, code: number): void {
    // Reciprocate the Close frame, or the client sees 1006; 1005/1006 cannot be sent back.
    try { ws.close(code === 1005 || code === 1006 ? 1000 : code, "bye"); } catch { /* closed already */ }
  }

  private resume(ws: WebSocket, info: SocketInfo, after: number, requestId: number): void {
    let page: Row[] = [];
    const flush = () => {
      if (page.length === 0) return;
      send(ws, { type: pb.FrameType.DELIVER, deliver: { messages: page.map((r) => ({
        channel_id: info.room, seq: r.seq, server_msg_id: String(r.seq), client_msg_id: r.client_msg_id,
        sender_user_id: r.sender_user_id, sender_device_id: r.sender_device_id, server_ts: r.server_ts,
        content: pb.MessageContent.decode(new Uint8Array(r.content)),
      })) } });
      page = [];
    };
    for (const row of this.sql.exec<Row>("SELECT * FROM messages WHERE seq > ? ORDER BY seq", after)) {
      page.push(row);
      if (page.length === PAGE) flush();
    }
    flush();
    send(ws, { type: pb.FrameType.RESUMED, request_id: requestId, resumed: { channels: [{ channel_id: info.room, last_seq: this.lastSeq }] } });
  }
}

function send(ws: WebSocket, frame: FrameInit | Uint8Array | string): void {
  if (ws.readyState !== WebSocket.OPEN) return;
  try {
    ws.send(frame instanceof Uint8Array || typeof frame === "string" ? frame : encodeFrame(frame, "proto"));
  } catch {
    // A socket that is going away is not an error worth raising.
  }
}

function error(ws: WebSocket, requestId: number, code: string, message: string): void {
  send(ws, { type: pb.FrameType.ERROR, request_id: requestId, error: { request_id: requestId, code, message, retryable: false } });
}

export default {
  async fetch(request, env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/v1/health") return Response.json({ ok: true, limit: true });
    const room = url.searchParams.get("room") ?? "";
    if (url.pathname === "/v1/touch" && ID.test(room)) return Response.json({ last_seq: await env.ROOMS.get(env.ROOMS.idFromName(room)).touch() });
    if (url.pathname !== "/v1/connect") return new Response("not found", { status: 404 });
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new Response("WebSocket only", { status: 426 });
    if (!ID.test(room) || !ID.test(url.searchParams.get("device_id") ?? "")) return new Response("room and device_id: 1-64 of A-Za-z0-9_-", { status: 400 });
    return env.ROOMS.get(env.ROOMS.idFromName(room)).fetch(request);
  },
} satisfies ExportedHandler<LimitEnv>;
