/** POST /v1/auth/register | login | refresh | logout */
import { allowedJurisdictions, defaultJurisdiction } from "../../shared/bindings.js";
import { Hono } from "hono";
import * as z from "zod/mini";
import { hashPassword, verifyPassword } from "../auth/password.js";
import { forgetSession } from "../auth/revocation.js";
import { DEADLINES, withDeadline } from "../../shared/deadline.js";
import { clientAddress, loginGate, loginOutcome, registrationGate } from "../auth/throttle.js";
import { accessTokenTtl, formatRefreshToken, parseRefreshToken, signAccessToken } from "../auth/tokens.js";
import { errorResponse, fail } from "../../shared/errors.js";
import { newId } from "../../shared/ids.js";
import { userStub } from "../../shared/routing.js";
import { accountByUsername, insertAccount } from "./accounts.js";
import type { ApiContext, ApiEnv } from "./app.js";
import { nameText, parseJsonBody } from "./validation.js";
import type { Profile } from "../../durable-objects/user/UserObject.js";

const username = z.string().check(z.regex(/^[A-Za-z0-9_.-]{3,32}$/, "3-32 characters of letters, digits, _ . -"));
const password = z.string().check(z.minLength(8, "at least 8 characters"), z.maxLength(200));

const RegisterBody = z.object({
  username,
  password,
  display_name: z.optional(nameText(64)),
  /** Home jurisdiction: this user's object, and channels they create, stay in it. */
  jurisdiction: z.optional(z.enum(["", "eu", "fedramp"])),
});
const LoginBody = z.object({ username: z.string().check(z.minLength(1), z.maxLength(64)), password: z.string().check(z.minLength(1), z.maxLength(200)) });
const RefreshBody = z.object({ refresh_token: z.string().check(z.minLength(1), z.maxLength(200)) });

/** Hashing a password for an unknown user keeps login timing from revealing who has an account. */
const DUMMY_HASH = "pbkdf2-sha256$100000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

async function tokens(c: ApiContext, profile: Profile, session: { sessionId: string; secret: string }, status: 200 | 201) {
  const access = await signAccessToken(c.env, { userId: profile.user_id, username: profile.username, sessionId: session.sessionId });
  return c.json({
    user_id: profile.user_id, username: profile.username, display_name: profile.display_name,
    access_token: access, token_type: "Bearer", expires_in: accessTokenTtl(c.env),
    refresh_token: formatRefreshToken({ userId: profile.user_id, sessionId: session.sessionId, secret: session.secret }),
    session_id: session.sessionId,
  }, status);
}

export const authRoutes = new Hono<ApiEnv>()
  .post("/register", async (c) => {
    const body = await parseJsonBody(c, RegisterBody);
    if (!body.ok) return errorResponse(body);
    const { username, password, display_name, jurisdiction = defaultJurisdiction(c.env) } = body.value;
    // This deployment's operators chose where accounts may live (ALLOWED_JURISDICTIONS).
    const allowed = allowedJurisdictions(c.env);
    if (!allowed.includes(jurisdiction)) {
      return errorResponse(fail("invalid_argument", `jurisdiction: this server keeps accounts only in ${allowed.map((j) => j || "global").join(", ")}.`));
    }
    const limited = await registrationGate(c.env, clientAddress(c.req.raw));
    if (limited) return errorResponse(limited);
    const profile: Profile = { user_id: newId("u", jurisdiction), username, display_name: display_name ?? username, jurisdiction };
    const inserted = await insertAccount(c.env, { ...profile, jurisdiction, password_hash: await hashPassword(password) });
    if (inserted === "taken") return errorResponse(fail("username_taken", `The username "${username}" is taken.`));
    const user = userStub(c.env, profile.user_id);
    await withDeadline(user.init(profile), DEADLINES.account, "user.init");
    return tokens(c, profile, await withDeadline(user.createSession(), DEADLINES.account, "session.create"), 201);
  })
  .post("/login", async (c) => {
    const body = await parseJsonBody(c, LoginBody);
    if (!body.ok) return errorResponse(body);
    // Locked out (too many failures for this username or from this address): refused before the
    // password is even checked, so guessing on costs the guesser time and us no hashing.
    const address = clientAddress(c.req.raw);
    const locked = await loginGate(c.env, body.value.username, address);
    if (locked) return errorResponse(locked);
    const account = await accountByUsername(c.env, body.value.username);
    const valid = await verifyPassword(body.value.password, account?.password_hash ?? DUMMY_HASH);
    await loginOutcome(c.env, body.value.username, address, !!account && valid);
    if (!account || !valid) return errorResponse(fail("unauthorized", "Wrong username or password."));
    const profile: Profile = { user_id: account.user_id, username: account.username, display_name: account.display_name, jurisdiction: account.jurisdiction };
    const user = userStub(c.env, profile.user_id);
    await withDeadline(user.init(profile), DEADLINES.account, "user.init"); // idempotent; repairs a profile lost between D1 and the object
    // A session created after its deadline is an orphan that expires unused: harmless.
    return tokens(c, profile, await withDeadline(user.createSession(), DEADLINES.account, "session.create"), 200);
  })
  .post("/refresh", async (c) => {
    const body = await parseJsonBody(c, RefreshBody);
    if (!body.ok) return errorResponse(body);
    const parsed = parseRefreshToken(body.value.refresh_token);
    if (!parsed) return errorResponse(fail("unauthorized", "The refresh token is not valid; log in again."));
    // No deadline here: a rotation that completed after the client was told to retry would leave
    // it holding the old secret, whose next use revokes the session as a stolen token's would.
    const result = await userStub(c.env, parsed.userId).refreshSession(parsed.sessionId, parsed.secret);
    if (!result.ok && result.code === "session_revoked") forgetSession(parsed.userId, parsed.sessionId);
    if (!result.ok) return errorResponse(result);
    return tokens(c, result.profile, result, 200);
  })
  .post("/logout", async (c) => {
    const body = await parseJsonBody(c, RefreshBody);
    if (!body.ok) return errorResponse(body);
    const parsed = parseRefreshToken(body.value.refresh_token);
    if (parsed && await withDeadline(userStub(c.env, parsed.userId).revokeSession(parsed.sessionId, parsed.secret), DEADLINES.account, "session.revoke")) forgetSession(parsed.userId, parsed.sessionId);
    return c.body(null, 204);
  });
