/**
 * The project's SDK on Node's `ws` against a test server (test/support/dev-server.ts), for the
 * end-to-end files: a client that signs in with a username and the shared test password, and a
 * WebSocket that records what each connection DELIVERed as it came off the wire, before the
 * SDK's own dedup could hide a repeat. Node-side only.
 *
 * @example
 * const phone = sdkClient(server, "alice_x1", "alice-phone");
 * await phone.register({ username: "alice_x1", password: PASSWORD });
 *
 * const connections: ChatMessage[][] = [];
 * const client = createClient({ ..., WebSocket: recordingWebSocket(connections) });
 * // connections[i]: every message DELIVERed on the i-th socket the client opened, in order
 */
import WebSocket from "ws";
import { createClient, type ChatMessage, type ClientOptions, type EdgechatClient, type WebSocketConstructor } from "../../client/index.js";
import { toChatMessage } from "../../client/wire.js";
import { decodeFrame, pb } from "../../protocol/codec.js";
import { SUBPROTOCOL_JSON } from "../../protocol/limits.js";

/** The password every end-to-end account is registered with. */
export const PASSWORD = "correct horse battery";

/** Node's `ws`, typed as the SDK takes it. */
export const NodeWebSocket = WebSocket as unknown as WebSocketConstructor;

/** A client of `server` for `username` on `deviceId`; it logs in with PASSWORD when it has no token. */
export function sdkClient(server: { url: string }, username: string, deviceId: string, options: Partial<ClientOptions> = {}): EdgechatClient {
  return createClient({ url: server.url, deviceId, credentials: { username, password: PASSWORD }, WebSocket: NodeWebSocket, ...options });
}

/**
 * The `ws` WebSocket, pushing one array per connection onto `connections` and every message
 * DELIVERed on it (protobuf or JSON) into that array in arrival order; `onDeliver` runs after
 * each DELIVER frame is recorded.
 */
export function recordingWebSocket(connections: ChatMessage[][], onDeliver?: () => void): WebSocketConstructor {
  class Recording extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      const delivered: ChatMessage[] = [];
      connections.push(delivered);
      this.on("message", (data: ArrayBuffer | Buffer) => {
        const d = decodeFrame(data, this.protocol === SUBPROTOCOL_JSON ? "json" : "proto");
        if (!d.ok || d.frame.type !== pb.FrameType.DELIVER) return;
        for (const m of d.frame.deliver?.messages ?? []) delivered.push(toChatMessage(m));
        onDeliver?.();
      });
    }
  }
  return Recording as unknown as WebSocketConstructor;
}
