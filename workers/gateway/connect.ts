/**
 * GET /v1/connect: authenticates a device and hands its WebSocket to the user's UserObject,
 * which accepts it with the Hibernation API. The upgrade stays in this Worker and goes to the
 * object with `stub.fetch(request)` unchanged in spirit: proxying a WebSocket through anything
 * else would cost the object its ability to hibernate. Browser pages from origins that are not
 * allowed (origin.ts) are refused before the token is even looked at.
 */
import { signResumeToken, verifyAccessToken, verifyResumeToken } from "../auth/tokens.js";
import { fail, errorResponse } from "../../shared/errors.js";
import { CLOSE, negotiateEncoding, refuseWebSocket } from "../../shared/frames.js";
import { userStub } from "../../shared/routing.js";
import { originAllowed } from "./origin.js";
import { SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO } from "../../protocol/limits.js";

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

export async function connect(request: Request, env: Env): Promise<Response> {
  if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
    return errorResponse(fail("invalid_argument", "GET /v1/connect is a WebSocket endpoint: send Upgrade: websocket."));
  }
  const negotiated = negotiateEncoding(request);
  if (!negotiated) {
    return errorResponse(fail("invalid_argument", `Ask for subprotocol ${SUBPROTOCOL_PROTO} or ${SUBPROTOCOL_JSON}.`));
  }
  const { encoding, header } = negotiated;
  const origin = request.headers.get("Origin");
  if (!originAllowed(origin, request.url, env.ALLOWED_ORIGINS)) {
    return refuseWebSocket(fail("forbidden", `Pages from ${origin} may not connect here; the operator can allow them in ALLOWED_ORIGINS.`), CLOSE.forbiddenOrigin, encoding, header);
  }
  const url = new URL(request.url);
  const deviceId = url.searchParams.get("device_id") ?? "";
  if (!DEVICE_ID.test(deviceId)) {
    return refuseWebSocket(fail("invalid_argument", "device_id must be 1-64 characters of A-Z a-z 0-9 _ -."), CLOSE.badRequest, encoding, header);
  }
  // An access token, or (reconnecting) the resume token this device was given in RESUME_HINT.
  const bearer = request.headers.get("Authorization")?.replace(/^Bearer\s+/i, "") || url.searchParams.get("access_token");
  const resumeToken = url.searchParams.get("resume_token");
  const auth = !bearer && resumeToken ? await verifyResumeToken(env, resumeToken, deviceId) : await verifyAccessToken(env, bearer);
  if (!auth.ok) return refuseWebSocket(auth, CLOSE.unauthorized, encoding, header);
  // Only what this Worker verified reaches the object: client-sent x-edgechat-* never passes.
  const headers = new Headers();
  for (const name of ["Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions"]) {
    const value = request.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  headers.set("x-edgechat-user-id", auth.userId);
  headers.set("x-edgechat-username", auth.username);
  headers.set("x-edgechat-device-id", deviceId);
  // The UserObject owns sessions: it refuses a signed-out session's token and tags the socket
  // with the session, so signing the session out closes it.
  headers.set("x-edgechat-session-id", auth.sessionId);
  headers.set("x-edgechat-encoding", encoding);
  headers.set("x-edgechat-resume-token", await signResumeToken(env, auth, deviceId));
  if (header) headers.set("x-edgechat-protocol", header);
  return userStub(env, auth.userId).fetch(new Request(url.toString(), { headers }));
}
