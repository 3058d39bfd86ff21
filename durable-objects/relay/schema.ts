import type { Migration } from "../migrate.js";

/**
 * RelayObject storage (docs/decisions/017-relay-tier.md). One object per channel and shard; it
 * holds that shard's watchers and its own delivery retries, never message content (catch-ups read
 * the channel's log). Append-only list: never edit a shipped migration, add a new one.
 */
export const RELAY_MIGRATIONS: readonly Migration[] = [
  `
  -- Which channel and shard this relay serves: written by the first call, checked on every call.
  CREATE TABLE relay (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    channel_id  TEXT NOT NULL,
    shard       INTEGER NOT NULL
  );

  -- The shard's watchers, with the epoch of each user's last registration or drop (the same
  -- staleness rule as the channel's watchers table: an older epoch changes nothing). Dropped
  -- rows stay (active = 0) to keep their epoch.
  CREATE TABLE watchers (
    user_id  TEXT PRIMARY KEY,
    epoch    INTEGER NOT NULL,
    active   INTEGER NOT NULL
  );

  -- Watchers whose delivery failed: caught up from from_seq (read from the channel's log) before
  -- they take part in rounds again (durable-objects/fanout/rounds.ts).
  CREATE TABLE delivery_retry (
    target    TEXT PRIMARY KEY,
    from_seq  INTEGER NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 0,
    next_at   INTEGER NOT NULL DEFAULT 0
  );
  `,
];
