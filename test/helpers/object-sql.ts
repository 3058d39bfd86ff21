/**
 * A fresh object's real SQLite storage, its schema migrated, for tests of the modules the
 * objects are built from: each call runs `fn` inside a new, otherwise unused object.
 */
import { env, runInDurableObject } from "cloudflare:test";

export function inFreshChannel<T>(fn: (sql: SqlStorage, state: DurableObjectState) => T | Promise<T>): Promise<T> {
  return runInDurableObject(env.CHANNELS.get(env.CHANNELS.newUniqueId()), (_obj, state) => fn(state.storage.sql, state));
}

export function inFreshUser<T>(fn: (sql: SqlStorage, state: DurableObjectState) => T | Promise<T>): Promise<T> {
  return runInDurableObject(env.USERS.get(env.USERS.newUniqueId()), (_obj, state) => fn(state.storage.sql, state));
}
