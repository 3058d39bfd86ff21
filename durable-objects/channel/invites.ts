/**
 * Invite links: a code anyone signed in can use to preview and join a group or broadcast channel.
 * The channel's own SQL is the authority (who made it, when it expires, how many uses are left,
 * whether it was revoked); the code carries the channel id in the clear so the Worker knows which
 * channel to ask without a lookup table (docs/decisions/018-broadcast-and-invites.md).
 *
 * A code is `<channel id>.<secret>`: the secret is 128 random bits, checked against this table, so
 * knowing a channel id does not let anyone in.
 */
import { fail, type Result } from "../../shared/errors.js";
import { isChannelId } from "../../shared/ids.js";

export const INVITES_MIGRATION = `
  -- Invite links (docs/decisions/018). secret is the random half of the code; max_uses and
  -- expires_at 0 = unlimited; a revoked link keeps its row so its code is never reused.
  CREATE TABLE invites (
    secret      TEXT PRIMARY KEY,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL DEFAULT 0,
    max_uses    INTEGER NOT NULL DEFAULT 0,
    uses        INTEGER NOT NULL DEFAULT 0,
    revoked_at  INTEGER
  );
`;

/** Links a channel keeps live at once; revoked and expired ones do not count. */
export const MAX_LIVE_INVITES = 100;
export const MAX_INVITE_USES = 1_000_000;
/** At most a year. */
export const MAX_INVITE_TTL_S = 365 * 24 * 3600;

export interface InviteView {
  code: string;
  created_by: string;
  created_at: number;
  /** 0 = never. */
  expires_at: number;
  /** 0 = unlimited. */
  max_uses: number;
  uses: number;
}

type InviteRow = { secret: string; created_by: string; created_at: number; expires_at: number; max_uses: number; uses: number; revoked_at: number | null };

const SECRET_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/** `<channel id>.<secret>` split, or undefined for anything that is not an invite code. */
export function parseInviteCode(code: string): { channelId: string; secret: string } | undefined {
  const dot = code.lastIndexOf(".");
  if (dot < 0) return undefined;
  const channelId = code.slice(0, dot);
  const secret = code.slice(dot + 1);
  return isChannelId(channelId) && SECRET_PATTERN.test(secret) ? { channelId, secret } : undefined;
}

/** The web app's join page for `code`, on the origin the API was reached at. */
export function inviteUrl(requestUrl: string, code: string): string {
  return `${new URL(requestUrl).origin}/#/join/${code}`;
}

function newSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export class Invites {
  constructor(private readonly sql: SqlStorage, private readonly channelId: () => string) {}

  create(createdBy: string, opts: { maxUses?: number; expiresInS?: number }, now: number): Result<{ invite: InviteView }> {
    const live = this.sql.exec<{ n: number }>(
      "SELECT count(*) AS n FROM invites WHERE revoked_at IS NULL AND (expires_at = 0 OR expires_at > ?) AND (max_uses = 0 OR uses < max_uses)", now,
    ).one().n;
    if (live >= MAX_LIVE_INVITES) return fail("invalid_argument", `A channel keeps at most ${MAX_LIVE_INVITES} invite links; revoke one first.`);
    const secret = newSecret();
    const expiresAt = opts.expiresInS ? now + opts.expiresInS * 1000 : 0;
    const maxUses = opts.maxUses ?? 0;
    this.sql.exec("INSERT INTO invites (secret, created_by, created_at, expires_at, max_uses) VALUES (?, ?, ?, ?, ?)", secret, createdBy, now, expiresAt, maxUses);
    return { ok: true, invite: this.view({ secret, created_by: createdBy, created_at: now, expires_at: expiresAt, max_uses: maxUses, uses: 0, revoked_at: null }) };
  }

  /** The links that still work, newest first. */
  list(now: number): InviteView[] {
    return this.sql.exec<InviteRow>(
      `SELECT * FROM invites WHERE revoked_at IS NULL AND (expires_at = 0 OR expires_at > ?) AND (max_uses = 0 OR uses < max_uses)
       ORDER BY created_at DESC LIMIT ?`, now, MAX_LIVE_INVITES,
    ).toArray().map((r) => this.view(r));
  }

  /** Revoking a link twice, or one that expired, is not an error: it does not work either way. */
  revoke(secret: string, now: number): Result {
    const found = this.sql.exec("UPDATE invites SET revoked_at = coalesce(revoked_at, ?) WHERE secret = ?", now, secret).rowsWritten;
    return found > 0 || this.row(secret) ? { ok: true } : fail("not_found", "No such invite link.");
  }

  /** Whether the link can be used now; a failure says why not. */
  check(secret: string, now: number): Result {
    const row = this.row(secret);
    if (!row) return fail("not_found", "No such invite link.");
    if (row.revoked_at !== null) return fail("not_found", "This invite link was revoked.");
    if (row.expires_at !== 0 && row.expires_at <= now) return fail("not_found", "This invite link has expired.");
    if (row.max_uses !== 0 && row.uses >= row.max_uses) return fail("not_found", "This invite link has been used up.");
    return { ok: true };
  }

  /** Counts one join through the link (call after check(), in the same turn). */
  use(secret: string): void {
    this.sql.exec("UPDATE invites SET uses = uses + 1 WHERE secret = ?", secret);
  }

  private row(secret: string): InviteRow | undefined {
    return this.sql.exec<InviteRow>("SELECT * FROM invites WHERE secret = ?", secret).toArray()[0];
  }

  private view(r: InviteRow): InviteView {
    return { code: `${this.channelId()}.${r.secret}`, created_by: r.created_by, created_at: r.created_at, expires_at: r.expires_at, max_uses: r.max_uses, uses: r.uses };
  }
}
