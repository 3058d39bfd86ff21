/**
 * Refresh sessions: the UserObject keeps a hash of each session's current secret (and of the one
 * before it), never a secret. Refreshing rotates the secret; presenting the previous one again
 * means the token leaked, and the whole session is revoked.
 */
import { fail, type Result } from "../../shared/errors.js";
import { hashSecret, newRefreshSecret, timingSafeEqual } from "../../shared/secrets.js";

export const SESSION_TTL_MS = 30 * 24 * 3600 * 1000;

export interface SessionSecret {
  sessionId: string;
  secret: string;
}

export class Sessions {
  constructor(private readonly sql: SqlStorage) {}

  /** A new session; the caller gets the secret once. */
  async create(): Promise<SessionSecret> {
    const sessionId = crypto.randomUUID();
    const secret = newRefreshSecret();
    const hash = await hashSecret(secret);
    const now = Date.now();
    this.sql.exec(
      "INSERT INTO sessions (session_id, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?)",
      sessionId, hash, now, now + SESSION_TTL_MS,
    );
    return { sessionId, secret };
  }

  /**
   * Rotates a session's secret and extends it. `known()` is false while the object has no
   * profile (an account it never heard of): then no token is valid.
   */
  async rotate(sessionId: string, secret: string, known: () => boolean): Promise<Result<SessionSecret>> {
    const presented = await hashSecret(secret);
    const row = this.sql.exec<{ secret_hash: string; previous_hash: string | null; expires_at: number; revoked_at: number | null }>(
      "SELECT secret_hash, previous_hash, expires_at, revoked_at FROM sessions WHERE session_id = ?", sessionId,
    ).toArray()[0];
    const bad = fail("unauthorized", "The refresh token is not valid; log in again.");
    if (!row || row.revoked_at !== null || row.expires_at < Date.now() || !known()) return bad;
    if (row.previous_hash && sameText(presented, row.previous_hash)) {
      this.sql.exec("UPDATE sessions SET revoked_at = ? WHERE session_id = ?", Date.now(), sessionId);
      return fail("unauthorized", "This refresh token was already used; the session is revoked. Log in again.");
    }
    if (!sameText(presented, row.secret_hash)) return bad;
    const next = newRefreshSecret();
    const nextHash = await hashSecret(next);
    this.sql.exec(
      "UPDATE sessions SET previous_hash = secret_hash, secret_hash = ?, expires_at = ? WHERE session_id = ?",
      nextHash, Date.now() + SESSION_TTL_MS, sessionId,
    );
    return { ok: true, sessionId, secret: next };
  }

  /** Ends a session whose current secret is presented (logout); false if there was none. */
  async revoke(sessionId: string, secret: string): Promise<boolean> {
    const hash = await hashSecret(secret);
    const n = this.sql.exec(
      "UPDATE sessions SET revoked_at = ? WHERE session_id = ? AND secret_hash = ? AND revoked_at IS NULL", Date.now(), sessionId, hash,
    ).rowsWritten;
    return n > 0;
  }
}

function sameText(a: string, b: string): boolean {
  const e = new TextEncoder();
  return timingSafeEqual(e.encode(a), e.encode(b));
}
