/**
 * The account directory in D1: username -> user id, password hash, home jurisdiction. Every
 * other piece of user state lives in the user's own UserObject.
 */
import type { MemberProfile } from "../../durable-objects/channel/types.js";
import { isUserId, parseId, type Jurisdiction } from "../../shared/ids.js";

export interface Account extends MemberProfile {
  password_hash: string;
  jurisdiction: Jurisdiction;
}

/** D1 binds at most 100 parameters per statement. */
const CHUNK = 90;

export async function insertAccount(db: D1Database, a: Account): Promise<"ok" | "taken"> {
  try {
    await db.prepare(
      "INSERT INTO accounts (user_id, username, username_lower, display_name, password_hash, jurisdiction, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    ).bind(a.user_id, a.username, a.username.toLowerCase(), a.display_name, a.password_hash, a.jurisdiction, Date.now()).run();
    return "ok";
  } catch (err) {
    if (String(err).includes("UNIQUE")) return "taken";
    throw err;
  }
}

export async function accountByUsername(db: D1Database, username: string): Promise<Account | null> {
  return db.prepare("SELECT user_id, username, display_name, password_hash, jurisdiction FROM accounts WHERE username_lower = ?")
    .bind(username.toLowerCase()).first<Account>();
}

/**
 * Resolves user ids or usernames to profiles. Returns the profiles found and the references that
 * matched nobody, so the caller can say exactly which ones were wrong.
 */
export async function resolveProfiles(db: D1Database, refs: string[]): Promise<{ found: MemberProfile[]; missing: string[] }> {
  const ids = [...new Set(refs.filter(isUserId))];
  const names = [...new Set(refs.filter((r) => parseId(r)?.kind !== "u").map((r) => r.toLowerCase()))];
  const found = new Map<string, MemberProfile>();
  const byName = new Map<string, MemberProfile>();
  for (const [column, values] of [["user_id", ids], ["username_lower", names]] as const) {
    for (let i = 0; i < values.length; i += CHUNK) {
      const chunk = values.slice(i, i + CHUNK);
      const rows = await db.prepare(
        `SELECT user_id, username, display_name FROM accounts WHERE ${column} IN (${chunk.map(() => "?").join(",")})`,
      ).bind(...chunk).all<MemberProfile>();
      for (const p of rows.results) {
        found.set(p.user_id, p);
        byName.set(p.username.toLowerCase(), p);
      }
    }
  }
  const missing = refs.filter((r) => (parseId(r)?.kind === "u" ? !found.has(r) : !byName.has(r.toLowerCase())));
  return { found: [...found.values()], missing };
}
