/**
 * Access tokens are short-lived HS256 JWTs (jose) that every endpoint and the WebSocket gateway
 * verify without a lookup. Refresh tokens are opaque `<user_id>.<session_id>.<secret>` strings
 * checked and rotated by the user's UserObject, which owns their sessions. Resume tokens (sent in
 * RESUME_HINT, docs/protocol.md) let one device of one session reopen its WebSocket without a
 * fresh access token: HS256 JWTs with their own audience, so neither kind passes for the other.
 */
import { errors, jwtVerify, SignJWT } from "jose";
import { fail, type Failure } from "../../shared/errors.js";
import { isUserId } from "../../shared/ids.js";

const ISSUER = "edgechat";
const AUDIENCE = "edgechat-api";
const RESUME_AUDIENCE = "edgechat-resume";

export interface AccessClaims {
  userId: string;
  username: string;
  sessionId: string;
}

function secretKey(env: Env): Uint8Array {
  const secret = env.JWT_SECRET;
  if (typeof secret !== "string" || secret.length < 32) {
    throw new Error("JWT_SECRET must be set to at least 32 characters (.dev.vars locally, `wrangler secret put JWT_SECRET` in production).");
  }
  return new TextEncoder().encode(secret);
}

export function accessTokenTtl(env: Env): number {
  const ttl = Number(env.ACCESS_TOKEN_TTL_SECONDS);
  return Number.isFinite(ttl) && ttl > 0 ? ttl : 900;
}

export async function signAccessToken(env: Env, claims: AccessClaims, ttlSeconds = accessTokenTtl(env)): Promise<string> {
  return new SignJWT({ name: claims.username, sid: claims.sessionId })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.userId)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(secretKey(env));
}

export async function verifyAccessToken(env: Env, token: string | null | undefined): Promise<({ ok: true } & AccessClaims) | Failure> {
  if (!token) return fail("unauthorized", "Missing access token: send Authorization: Bearer <token>.");
  try {
    const { payload } = await jwtVerify(token, secretKey(env), { issuer: ISSUER, audience: AUDIENCE, algorithms: ["HS256"] });
    if (!isUserId(payload.sub) || typeof payload.sid !== "string" || typeof payload.name !== "string") {
      return fail("unauthorized", "The access token is missing its claims.");
    }
    return { ok: true, userId: payload.sub, username: payload.name, sessionId: payload.sid };
  } catch (err) {
    if (err instanceof errors.JWTExpired) return fail("token_expired", "The access token has expired; refresh it.");
    return fail("unauthorized", "The access token is not valid.");
  }
}

export function resumeTokenTtl(env: Env): number {
  const ttl = Number(env.RESUME_TOKEN_TTL_SECONDS);
  return Number.isFinite(ttl) && ttl > 0 ? ttl : 3600;
}

/** A token that reconnects `deviceId` of this session, and nothing else (not REST, not another device). */
export async function signResumeToken(env: Env, claims: AccessClaims, deviceId: string, ttlSeconds = resumeTokenTtl(env)): Promise<string> {
  return new SignJWT({ name: claims.username, sid: claims.sessionId, dev: deviceId })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.userId)
    .setIssuer(ISSUER)
    .setAudience(RESUME_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(secretKey(env));
}

export async function verifyResumeToken(env: Env, token: string, deviceId: string): Promise<({ ok: true } & AccessClaims) | Failure> {
  try {
    const { payload } = await jwtVerify(token, secretKey(env), { issuer: ISSUER, audience: RESUME_AUDIENCE, algorithms: ["HS256"] });
    if (!isUserId(payload.sub) || typeof payload.sid !== "string" || typeof payload.name !== "string" || payload.dev !== deviceId) {
      return fail("unauthorized", "The resume token is not this device's.");
    }
    return { ok: true, userId: payload.sub, username: payload.name, sessionId: payload.sid };
  } catch (err) {
    if (err instanceof errors.JWTExpired) return fail("token_expired", "The resume token has expired; connect with a fresh access token.");
    return fail("unauthorized", "The resume token is not valid.");
  }
}

export interface RefreshToken { userId: string; sessionId: string; secret: string }

export function formatRefreshToken(t: RefreshToken): string {
  return `${t.userId}.${t.sessionId}.${t.secret}`;
}

export function parseRefreshToken(token: unknown): RefreshToken | undefined {
  if (typeof token !== "string" || token.length > 200) return undefined;
  const [userId, sessionId, secret, extra] = token.split(".");
  if (extra !== undefined || !isUserId(userId) || !sessionId || !secret) return undefined;
  return { userId, sessionId, secret };
}
