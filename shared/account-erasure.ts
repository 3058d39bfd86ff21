/**
 * The erasure job's records in D1 (docs/decisions/020): the directory row marked and finally
 * deleted, the account deleted from its jurisdiction's store, and the operator's progress row.
 * Used by the user's object (durable-objects/user/erasure.ts drives the steps) and the API.
 */
import { accountsFor, directory, hasOwnBinding } from "./bindings.js";
import { parseId } from "./ids.js";

/** Where the user's account (name, password, avatar version) is kept: their jurisdiction's store, or the directory. */
export function accountStoreOf(env: Env, userId: string): D1Database {
  const j = parseId(userId)?.jurisdiction ?? "";
  return hasOwnBinding(env, "ACCOUNTS", j) ? accountsFor(env, j) : directory(env);
}

/** Erasure started: the directory row refuses sign-ins and profiles; the progress row exists. */
export async function markErasing(env: Env, userId: string, startedAt: number): Promise<void> {
  const db = directory(env);
  await db.batch([
    db.prepare("UPDATE accounts SET erasing_since = ? WHERE user_id = ? AND erasing_since IS NULL").bind(startedAt, userId),
    db.prepare("INSERT INTO erasures (user_id, step, counts, started_at, updated_at) VALUES (?, 'devices', '{}', ?, ?) ON CONFLICT (user_id) DO NOTHING")
      .bind(userId, startedAt, startedAt),
  ]);
}

/** Erasure progress for operators: step and counts only. */
export async function recordErasure(env: Env, userId: string, step: string, counts: object, now: number): Promise<void> {
  await directory(env).prepare("UPDATE erasures SET step = ?, counts = ?, updated_at = ? WHERE user_id = ? AND finished_at IS NULL")
    .bind(step, JSON.stringify(counts), now, userId).run();
}

/**
 * The account goes (its jurisdiction's store first), then, in one batch, the directory row (the
 * username is free from here on) and the job is recorded as finished.
 */
export async function finishErasure(env: Env, userId: string, counts: object, startedAt: number, now: number): Promise<void> {
  const store = accountStoreOf(env, userId);
  const db = directory(env);
  if (store !== db) await store.prepare("DELETE FROM accounts WHERE user_id = ?").bind(userId).run();
  await db.batch([
    db.prepare("DELETE FROM accounts WHERE user_id = ?").bind(userId),
    db.prepare(
      `INSERT INTO erasures (user_id, step, counts, started_at, updated_at, finished_at) VALUES (?, 'done', ?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET step = 'done', counts = excluded.counts, updated_at = excluded.updated_at,
         finished_at = coalesce(erasures.finished_at, excluded.finished_at)`,
    ).bind(userId, JSON.stringify(counts), startedAt, now, now),
  ]);
}

