/**
 * Accounts in D1, split by the locality policy (docs/decisions/021-jurisdiction-bindings.md):
 *
 * - the global *directory* (`directory(env)`, binding ACCOUNTS) maps a username to its user id and
 *   home jurisdiction: all that routing a login, a mention or a DM needs;
 * - the *account* (display name, password hash) lives in the store of the user's jurisdiction
 *   (`accountsFor(env, j)`: ACCOUNTS_EU for the EU). For a jurisdiction without a store of its own
 *   the directory row is the whole account, as it was before the split.
 *
 * Both hold the same table; a directory row with an empty password hash is routing-only. Every
 * other piece of user state (profile, devices, sessions) lives in the user's own UserObject, in
 * the user's jurisdiction.
 */
import type { MemberProfile } from "../../durable-objects/channel/types.js";
import type { GroupAdds } from "../../protocol/types.js";
import { accountsFor, directory, hasOwnBinding } from "../../shared/bindings.js";
import { isUserId, parseId, type Jurisdiction } from "../../shared/ids.js";

export interface Account extends MemberProfile {
  password_hash: string;
  jurisdiction: Jurisdiction;
}

/** D1 binds at most 100 parameters per statement. */
const CHUNK = 90;

// A new account allows adds by everyone (the setting's default, 024); a routing-only directory
// row leaves the policy to the store's row.
const INSERT = "INSERT INTO accounts (user_id, username, username_lower, display_name, password_hash, jurisdiction, created_at, group_adds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

/** Whether the accounts of `jurisdiction` live apart from the directory. */
const split = (env: Env, j: Jurisdiction) => hasOwnBinding(env, "ACCOUNTS", j);

export async function insertAccount(env: Env, a: Account): Promise<"ok" | "taken"> {
  const apart = split(env, a.jurisdiction);
  const now = Date.now();
  try {
    // The directory row claims the username for every jurisdiction at once.
    await directory(env).prepare(INSERT).bind(
      a.user_id, a.username, a.username.toLowerCase(), apart ? "" : a.display_name, apart ? "" : a.password_hash, a.jurisdiction, now, apart ? null : "everyone",
    ).run();
  } catch (err) {
    if (String(err).includes("UNIQUE")) return "taken";
    throw err;
  }
  if (!apart) return "ok";
  try {
    // An upsert: where one database serves as both (an EU-only deployment) it completes the row.
    await accountsFor(env, a.jurisdiction).prepare(`${INSERT}
      ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name, password_hash = excluded.password_hash, group_adds = excluded.group_adds`,
    ).bind(a.user_id, a.username, a.username.toLowerCase(), a.display_name, a.password_hash, a.jurisdiction, now, "everyone").run();
  } catch (err) {
    // Free the username again: a routing row without an account would lock it for ever.
    await directory(env).prepare("DELETE FROM accounts WHERE user_id = ? AND password_hash = ''").bind(a.user_id).run();
    throw err;
  }
  return "ok";
}

const ACCOUNT_COLUMNS = "user_id, username, display_name, password_hash, jurisdiction";

/** The account that signs in as `username`; none while its erasure runs (it signs nobody in). */
export async function accountByUsername(env: Env, username: string): Promise<Account | null> {
  const row = await directory(env).prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE username_lower = ? AND erasing_since IS NULL`)
    .bind(username.toLowerCase()).first<Account>();
  if (!row || row.password_hash !== "") return row;
  const account = await accountsFor(env, row.jurisdiction).prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE user_id = ?`)
    .bind(row.user_id).first<Account>();
  return account && account.password_hash !== "" ? account : null;
}

type DirectoryRow = MemberProfile & { jurisdiction: Jurisdiction; routing_only: number; group_adds: string | null };

/** A stored `group_adds`, or null: not known from the row (the user's object must be asked). */
const policyOf = (v: string | null): GroupAdds | null => (v === "everyone" || v === "contacts" ? v : null);

/**
 * Resolves user ids or usernames to profiles. Returns the profiles found and the references that
 * matched nobody, so the caller can say exactly which ones were wrong. Display names of users
 * whose accounts live apart come from their jurisdiction's store. `groupAdds` is each found
 * user's policy as their account row says it (docs/decisions/024), read by the same queries.
 */
export async function resolveProfiles(env: Env, refs: string[]): Promise<{ found: MemberProfile[]; missing: string[]; groupAdds: Map<string, GroupAdds | null> }> {
  const ids = [...new Set(refs.filter(isUserId))];
  const names = [...new Set(refs.filter((r) => parseId(r)?.kind !== "u").map((r) => r.toLowerCase()))];
  const found = new Map<string, MemberProfile>();
  const groupAdds = new Map<string, GroupAdds | null>();
  const byName = new Map<string, MemberProfile>();
  const apart = new Map<Jurisdiction, string[]>();
  // One round trip per database: the chunks go in one batch (a 1,000-member group is 12 of them).
  const lookups: D1PreparedStatement[] = [];
  for (const [column, values] of [["user_id", ids], ["username_lower", names]] as const) {
    for (let i = 0; i < values.length; i += CHUNK) {
      const chunk = values.slice(i, i + CHUNK);
      lookups.push(directory(env).prepare(
        // An account being erased has no profile any more: clients show "Deleted account" at once.
        `SELECT user_id, username, display_name, jurisdiction, avatar_version, group_adds, password_hash = '' AS routing_only FROM accounts WHERE ${column} IN (${chunk.map(() => "?").join(",")}) AND erasing_since IS NULL`,
      ).bind(...chunk));
    }
  }
  const pages = lookups.length === 0 ? [] : await directory(env).batch<DirectoryRow & { avatar_version: number }>(lookups);
  for (const r of pages.flatMap((page) => page.results)) {
    const p: MemberProfile = { user_id: r.user_id, username: r.username, display_name: r.display_name };
    if (r.avatar_version > 0) p.avatar_url = avatarPath(r.user_id, r.avatar_version);
    found.set(p.user_id, p);
    groupAdds.set(p.user_id, r.routing_only ? null : policyOf(r.group_adds));
    byName.set(p.username.toLowerCase(), p);
    if (r.routing_only) apart.set(r.jurisdiction, [...(apart.get(r.jurisdiction) ?? []), r.user_id]);
  }
  for (const [jurisdiction, userIds] of apart) {
    const store = accountsFor(env, jurisdiction);
    const reads: D1PreparedStatement[] = [];
    for (let i = 0; i < userIds.length; i += CHUNK) {
      const chunk = userIds.slice(i, i + CHUNK);
      reads.push(store.prepare(
        `SELECT user_id, display_name, avatar_version, group_adds FROM accounts WHERE user_id IN (${chunk.map(() => "?").join(",")})`,
      ).bind(...chunk));
    }
    const rows = await store.batch<{ user_id: string; display_name: string; avatar_version: number; group_adds: string | null }>(reads);
    for (const r of rows.flatMap((page) => page.results)) {
      const p = found.get(r.user_id);
      if (!p) continue;
      p.display_name = r.display_name;
      groupAdds.set(r.user_id, policyOf(r.group_adds));
      if (r.avatar_version > 0) p.avatar_url = avatarPath(r.user_id, r.avatar_version);
    }
  }
  const missing = refs.filter((r) => (parseId(r)?.kind === "u" ? !found.has(r) : !byName.has(r.toLowerCase())));
  return { found: [...found.values()], missing, groupAdds };
}

/** Which of `ids` (user ids) have an account, in one batch of chunked queries. */
export async function existingUserIds(db: D1Database, ids: string[]): Promise<Set<string>> {
  const wanted = [...new Set(ids.filter(isUserId))];
  if (wanted.length === 0) return new Set();
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < wanted.length; i += CHUNK) {
    const chunk = wanted.slice(i, i + CHUNK);
    // An account being erased is no one to add.
    statements.push(db.prepare(`SELECT user_id FROM accounts WHERE user_id IN (${chunk.map(() => "?").join(",")}) AND erasing_since IS NULL`).bind(...chunk));
  }
  const results = await db.batch<{ user_id: string }>(statements);
  return new Set(results.flatMap((r) => r.results.map((row) => row.user_id)));
}

/** Where the user's account (name, password, avatar version) is kept: their jurisdiction's store, or the directory. */
function storeOf(env: Env, userId: string): D1Database {
  const j = parseId(userId)?.jurisdiction ?? "";
  return split(env, j) ? accountsFor(env, j) : directory(env);
}

/**
 * The signed-in user's account (password checks for settings and erasure); none once erasing,
 * unless `erasing` (a DELETE /v1/me retried after it failed halfway).
 */
export async function accountById(env: Env, userId: string, erasing = false): Promise<Account | null> {
  const row = await directory(env).prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE user_id = ?${erasing ? "" : " AND erasing_since IS NULL"}`)
    .bind(userId).first<Account>();
  if (!row || row.password_hash !== "") return row;
  const account = await accountsFor(env, row.jurisdiction).prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE user_id = ?`).bind(userId).first<Account>();
  return account && account.password_hash !== "" ? { ...account, username: row.username } : null;
}

/** Whether `userId` has an account that is not being erased. */
async function active(env: Env, userId: string): Promise<boolean> {
  return (await directory(env).prepare("SELECT 1 FROM accounts WHERE user_id = ? AND erasing_since IS NULL").bind(userId).first()) !== null;
}

/** Renames; false when the account is gone or being erased. */
export async function setDisplayName(env: Env, userId: string, displayName: string): Promise<boolean> {
  if (!(await active(env, userId))) return false;
  return (await storeOf(env, userId).prepare("UPDATE accounts SET display_name = ? WHERE user_id = ?").bind(displayName, userId).run()).meta.changes > 0;
}

export async function setPasswordHash(env: Env, userId: string, passwordHash: string): Promise<boolean> {
  if (!(await active(env, userId))) return false;
  return (await storeOf(env, userId).prepare("UPDATE accounts SET password_hash = ? WHERE user_id = ?").bind(passwordHash, userId).run()).meta.changes > 0;
}

/** A new avatar version (0: no avatar); the profile's avatar_url names it. */
export async function setAvatarVersion(env: Env, userId: string, version: number): Promise<boolean> {
  if (!(await active(env, userId))) return false;
  return (await storeOf(env, userId).prepare("UPDATE accounts SET avatar_version = ? WHERE user_id = ?").bind(version, userId).run()).meta.changes > 0;
}

export async function avatarVersion(env: Env, userId: string): Promise<number> {
  if (!(await active(env, userId))) return 0;
  const row = await storeOf(env, userId).prepare("SELECT avatar_version FROM accounts WHERE user_id = ?").bind(userId).first<{ avatar_version: number }>();
  return row?.avatar_version ?? 0;
}

/** Where an avatar is served from; the version makes a new picture a new URL. */
export function avatarPath(userId: string, version: number): string {
  return `/v1/users/${userId}/avatar?v=${version}`;
}
