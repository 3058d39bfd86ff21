/**
 * A device's connection to its UserObject, from the connect to the close. The gateway Worker
 * authenticated the request and set the x-edgechat-* headers (this object is not reachable from
 * outside any other way); what only this object can check is checked here, before anything is
 * written: the account is not being erased, the session is not signed out, the device fits under
 * the cap. Then the socket is accepted (socket-protocol.ts acceptDevice). A socket that closes or
 * fails leaves its device's last-seen time behind, and the concerns that follow the open sockets
 * (presence, live channels, RESUME and SEND state) hear of it through the host.
 */
import type { Encoding } from "../../protocol/codec.js";
import { fail } from "../../shared/errors.js";
import { CLOSE, refuseWebSocket } from "../../shared/frames.js";
import { parseId } from "../../shared/ids.js";
import type { Devices } from "./devices.js";
import { ACCOUNT_DELETED } from "./erasure.js";
import type { Profile } from "./profile.js";
import type { Sessions } from "./sessions.js";
import { acceptDevice, closeQuietly, openSockets, socketInfo } from "./socket-protocol.js";

export interface ConnectionsHost {
  ctx: DurableObjectState;
  sessions: Sessions;
  devices: Devices;
  /** The account is being erased (or this instance wiped it): nothing connects, nothing is written. */
  erasing(): boolean;
  profile(): Profile | undefined;
  /** Writes the profile (UserObject.init): one lost with the object's storage comes back from the headers. */
  init(profile: Profile): Profile;
  /** A socket was accepted: presence, the live channels and the RESUME deadline start. */
  opened(): void;
  /** A socket closed or failed; `remaining` are the sockets still open. */
  gone(ws: WebSocket, remaining: number): void;
}

export class Connections {
  constructor(private readonly host: ConnectionsHost) {}

  /** The WebSocket upgrade the gateway forwarded: a refusal (an ERROR frame, then close) or the accepted socket. */
  connect(request: Request): Response {
    const header = (name: string) => request.headers.get(`x-edgechat-${name}`) ?? "";
    const [userId, username, deviceId, sessionId] = [header("user-id"), header("username"), header("device-id"), header("session-id")];
    const encoding: Encoding = header("encoding") === "json" ? "json" : "proto";
    const protocolHeader = request.headers.get("x-edgechat-protocol") ?? undefined;
    // This object owns the sessions: a signed-out session's token opens nothing, at no extra cost.
    // Checked before anything is written: an erased account's object must stay empty.
    if (this.host.erasing()) {
      return refuseWebSocket(fail("session_revoked", ACCOUNT_DELETED), CLOSE.sessionRevoked, encoding, protocolHeader);
    }
    if (sessionId && !this.host.sessions.isActive(sessionId)) {
      return refuseWebSocket(fail("session_revoked", "This session was signed out; log in again."), CLOSE.sessionRevoked, encoding, protocolHeader);
    }
    // A profile lost with the object's storage comes back in the jurisdiction its id names.
    const profile = this.host.profile()
      ?? this.host.init({ user_id: userId, username, display_name: username, jurisdiction: parseId(userId)?.jurisdiction ?? "" });
    // Recorded (or refused past the cap) without reading the device list back: a connect needs no more.
    const registered = this.host.devices.admit(deviceId);
    if (!registered.ok) {
      const code = registered.code === "too_many_devices" ? CLOSE.tooManyDevices : CLOSE.badRequest;
      return refuseWebSocket(registered, code, encoding, protocolHeader);
    }
    const client = acceptDevice(this.host.ctx, profile, deviceId, sessionId, encoding, protocolHeader, header("resume-token") || undefined);
    if (sessionId) this.host.sessions.used(sessionId, deviceId);
    this.host.opened();
    return new Response(null, { status: 101, webSocket: client, headers: protocolHeader ? { "Sec-WebSocket-Protocol": protocolHeader } : {} });
  }

  /** The peer closed its socket. */
  closed(ws: WebSocket, code: number): void {
    this.gone(ws);
    // Reciprocate the peer's Close frame to complete the handshake. The Hibernation API requires
    // it; without it clients stay in CLOSING and report 1006. 1005/1006 cannot be sent back.
    closeQuietly(ws, code === 1005 || code === 1006 ? 1000 : code, "bye");
  }

  /** The socket closed or failed: its device was last seen now, and the host's concerns follow. */
  gone(ws: WebSocket): void {
    const { deviceId } = socketInfo(ws);
    if (deviceId) this.host.devices.touch(deviceId);
    this.host.gone(ws, openSockets(this.host.ctx).filter((s) => s !== ws).length);
  }
}
