/**
 * Sign-in sessions: one per login, renewed by a rotating refresh token. The UserObject keeps a
 * hash of each session's current secret (and of the one before it), never a secret. Refreshing
 * rotates the secret; presenting the previous one again means the token leaked, and the whole
 * session is revoked.
 *
 * Access tokens name their session (`sid`), so revoking a session also ends its access tokens
 * (checked per request, docs/decisions/011) and its sockets (tagged with the session id): every
 * way a session ends here tells `ended`, which closes them.
 */
import { fail, type Result } from "../../shared/errors.js";
import { hashSecret, newRefreshSecret, timingSafeEqual } from "../../shared/secrets.js";
import type { SessionInfo } from "../../protocol/types.js";

export const SESSION_TTL_MS = 30 * 24 * 3600 * 1000;
/**
 * Ended sessions are deleted this long after they ended (at the next login), so logging in every
 * day for years does not grow the table. A missing session is as dead as a revoked one; keeping
 * it a while only lets a late refresh say "signed out" rather than "not valid".
 */
export const ENDED_KEPT_MS = 7 * 24 * 3600 * 1000;

export interface SessionSecret {
  sessionId: string;
  secret: string;
}

type SessionRow = {
  session_id: string;
  secret_hash: string;
  previous_hash: string | null;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  device_id: string | null;
  last_used_at: number | null;
};

const revoked = () => fail("session_revoked", "This session was signed out; log in again.");

export class Sessions {
  /** @param ended told of each session that ended (or was found ended on a refresh): its sockets close */
  constructor(private readonly sql: SqlStorage, private readonly ended: (sessionId: string) => void = () => {}) {}

  /** A new session; the caller gets the secret once. */
  async create(): Promise<SessionSecret> {
    const sessionId = crypto.randomUUID();
    const secret = newRefreshSecret();
    const hash = await hashSecret(secret);
    const now = Date.now();
    this.prune(ENDED_KEPT_MS);
    this.sql.exec(
      "INSERT INTO sessions (session_id, secret_hash, created_at, expires_at, last_used_at) VALUES (?, ?, ?, ?, ?)",
      sessionId, hash, now, now + SESSION_TTL_MS, now,
    );
    return { sessionId, secret };
  }

  /**
   * Rotates a session's secret and extends it. `known()` is false while the object has no
   * profile (an account it never heard of): then no token is valid. A revoked session answers
   * `session_revoked`; presenting the secret that was already rotated away revokes the session.
   */
  async rotate(sessionId: string, secret: string, known: () => boolean): Promise<Result<SessionSecret>> {
    const presented = await hashSecret(secret);
    const row = this.row(sessionId);
    const bad = fail("unauthorized", "The refresh token is not valid; log in again.");
    if (!row || row.expires_at < Date.now() || !known()) return bad;
    if (row.revoked_at !== null) {
      if (!sameText(presented, row.secret_hash) && !sameText(presented, row.previous_hash ?? "")) return bad;
      this.ended(sessionId);
      return revoked();
    }
    if (row.previous_hash && sameText(presented, row.previous_hash)) {
      this.sql.exec("UPDATE sessions SET revoked_at = ? WHERE session_id = ?", Date.now(), sessionId);
      this.ended(sessionId);
      return fail("session_revoked", "This refresh token was already used, so it may have leaked: the session is signed out. Log in again.");
    }
    if (!sameText(presented, row.secret_hash)) return bad;
    const next = newRefreshSecret();
    const nextHash = await hashSecret(next);
    const now = Date.now();
    this.sql.exec(
      "UPDATE sessions SET previous_hash = secret_hash, secret_hash = ?, expires_at = ?, last_used_at = ? WHERE session_id = ?",
      nextHash, now + SESSION_TTL_MS, now, sessionId,
    );
    return { ok: true, sessionId, secret: next };
  }

  /** Ends a session whose current secret is presented (logout); false if there was none. */
  async revoke(sessionId: string, secret: string): Promise<boolean> {
    const hash = await hashSecret(secret);
    const n = this.sql.exec(
      "UPDATE sessions SET revoked_at = ? WHERE session_id = ? AND secret_hash = ? AND revoked_at IS NULL", Date.now(), sessionId, hash,
    ).rowsWritten;
    if (n > 0) this.ended(sessionId);
    return n > 0;
  }

  /** Ends a session by id (the account owner signing a device out); false if it was not active. */
  revokeById(sessionId: string): boolean {
    const ended = this.sql.exec(
      "UPDATE sessions SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL", Date.now(), sessionId,
    ).rowsWritten > 0;
    if (ended) this.ended(sessionId);
    return ended;
  }

  /** Ends every active session but `keep`; returns the ids it ended. */
  revokeAllBut(keep: string): string[] {
    const ended = this.sql.exec<{ session_id: string }>(
      "UPDATE sessions SET revoked_at = ? WHERE session_id != ? AND revoked_at IS NULL AND expires_at > ? RETURNING session_id",
      Date.now(), keep, Date.now(),
    ).toArray().map((r) => r.session_id);
    for (const sessionId of ended) this.ended(sessionId);
    return ended;
  }

  /** Whether access tokens of this session are still good: it exists, is not revoked, not expired. */
  isActive(sessionId: string): boolean {
    const row = this.row(sessionId);
    return row !== undefined && row.revoked_at === null && row.expires_at > Date.now();
  }

  /** A device connected with this session. */
  used(sessionId: string, deviceId: string): void {
    this.sql.exec("UPDATE sessions SET device_id = ?, last_used_at = ? WHERE session_id = ?", deviceId, Date.now(), sessionId);
  }

  /** Active sessions, most recently used first; `current` marks the asking token's. */
  list(current: string): SessionInfo[] {
    return this.sql.exec<SessionRow>(
      "SELECT * FROM sessions WHERE revoked_at IS NULL AND expires_at > ? ORDER BY coalesce(last_used_at, created_at) DESC", Date.now(),
    ).toArray().map((r) => ({
      session_id: r.session_id, created_at: r.created_at, last_used_at: r.last_used_at ?? r.created_at, expires_at: r.expires_at,
      ...(r.device_id ? { device_id: r.device_id } : {}), current: r.session_id === current,
    }));
  }

  /** device_id → the active session it last connected with. */
  sessionsByDevice(): Map<string, string> {
    const out = new Map<string, string>();
    for (const r of this.sql.exec<{ device_id: string; session_id: string }>(
      "SELECT device_id, session_id FROM sessions WHERE device_id IS NOT NULL AND revoked_at IS NULL AND expires_at > ? ORDER BY coalesce(last_used_at, created_at)",
      Date.now(),
    )) out.set(r.device_id, r.session_id); // the most recent wins
    return out;
  }

  /** Deletes sessions that ended (revoked or expired) more than `keepMs` ago; returns how many. */
  prune(keepMs: number): number {
    const before = Date.now() - keepMs;
    return this.sql.exec("DELETE FROM sessions WHERE coalesce(revoked_at, expires_at) < ?", before).rowsWritten;
  }

  private row(sessionId: string): SessionRow | undefined {
    return this.sql.exec<SessionRow>("SELECT * FROM sessions WHERE session_id = ?", sessionId).toArray()[0];
  }
}

function sameText(a: string, b: string): boolean {
  const e = new TextEncoder();
  return timingSafeEqual(e.encode(a), e.encode(b));
}
