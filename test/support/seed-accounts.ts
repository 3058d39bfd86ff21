/**
 * Accounts written straight into the local accounts directory (D1) of a `wrangler dev` state
 * directory, before the server starts: registering 100,000 people through REST would hash
 * 100,000 passwords (PBKDF2, tens of ms of CPU each here). A seeded account has what the bulk
 * path checks (a row in `accounts` under a well-formed global user id, not being erased) and a
 * password hash that matches nothing, so nobody can sign in as it — unless the seeding gives a
 * password: then each signs in with it (one PBKDF2 hash, as workers/auth/password.ts stores it,
 * shared by all), and the first login gives the account's UserObject its profile, as a login
 * repairs a profile lost between D1 and the object. Node-side only.
 *
 * @example
 * const server = await startDevServer({ beforeStart: (dir) => seedAccounts(dir, 100_000) });
 * const ids = seededUserIds(0, 1000); // the first 1,000, for POST /v1/channels/{id}/members/bulk
 */
import { spawnSync } from "node:child_process";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { join } from "node:path";
import { QUIET_WRANGLER_ENV } from "./dev-server.js";

const root = new URL("../../", import.meta.url).pathname;

/** u_g_ + "seed" + 22 digits: a well-formed global user id (shared/ids.ts) that says where it came from. */
export function seededUserId(i: number): string {
  return `u_g_seed${String(i).padStart(22, "0")}`;
}

/** Seeded ids `from` (inclusive) to `to` (exclusive). */
export function seededUserIds(from: number, to: number): string[] {
  return Array.from({ length: to - from }, (_, k) => seededUserId(from + k));
}

/**
 * Inserts accounts 0..n-1 (`seededUserId(i)`, username `seed<i>`) in one SQL statement run by
 * `wrangler d1 execute --local`; a few seconds for 100,000 here. Idempotent (INSERT OR IGNORE).
 * With `password`, every one of them signs in with it. Their `group_adds` is 'everyone', as for an
 * account registered today (decision 024), so adding them to a group wakes none of their objects.
 */
export function seedAccounts(stateDir: string, n: number, password?: string): void {
  const hash = password === undefined ? "seeded$no-password" : passwordHash(password);
  const sql = `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ${Math.floor(n)}) `
    + "INSERT OR IGNORE INTO accounts (user_id, username, username_lower, display_name, password_hash, jurisdiction, created_at, group_adds) "
    + `SELECT printf('u_g_seed%022d', i), 'seed' || i, 'seed' || i, 'Seed ' || i, '${hash}', '', 0, 'everyone' FROM k`;
  const r = spawnSync(join(root, "node_modules", ".bin", "wrangler"),
    ["d1", "execute", "ACCOUNTS", "--local", "--persist-to", stateDir, "--config", join(root, "wrangler.toml"), "--command", sql],
    { cwd: root, env: { ...process.env, ...QUIET_WRANGLER_ENV }, encoding: "utf8", timeout: 300_000 });
  if (r.status !== 0) throw new Error(`seeding ${n} accounts failed: ${r.stderr || r.stdout}`);
}

/** `pbkdf2-sha256$<iterations>$<salt>$<hash>`, the format workers/auth/password.ts writes and verifies. */
export function passwordHash(password: string): string {
  const iterations = 100_000;
  const salt = randomBytes(16);
  const hash = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  return `pbkdf2-sha256$${iterations}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}
