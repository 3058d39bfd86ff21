/**
 * PresenceObject storage: one object per shard (`presence:<n>` in a jurisdiction), holding the
 * users that hash to it and whoever watches them. Append-only list: never edit a shipped
 * migration, add a new one.
 */
export const PRESENCE_MIGRATIONS: readonly string[] = [
  `
  -- One row per user ever reported to this shard. Every deadline the alarm acts on is a column
  -- here (expires_at, offline_since + grace), so a restart loses nothing.
  CREATE TABLE presence (
    user_id          TEXT PRIMARY KEY,
    status           TEXT NOT NULL,         -- online | away | offline | hidden: the last report
    last_seen        INTEGER NOT NULL,      -- ms: the last report while online/away; when they left
    expires_at       INTEGER,               -- online/away: the report must be refreshed by then
    offline_since    INTEGER,               -- offline and not yet published (the debounce)
    published_status TEXT NOT NULL DEFAULT 'offline' -- what subscribers were last told
  );
  CREATE INDEX presence_expiry ON presence (expires_at) WHERE expires_at IS NOT NULL;
  CREATE INDEX presence_pending_offline ON presence (offline_since) WHERE offline_since IS NOT NULL;

  -- Who watches whom, until expires_at (a watch is renewed by watching again). The primary key
  -- is the index that finds a target's subscribers.
  CREATE TABLE subscriptions (
    target_user_id     TEXT NOT NULL,
    subscriber_user_id TEXT NOT NULL,
    expires_at         INTEGER NOT NULL,
    PRIMARY KEY (target_user_id, subscriber_user_id)
  ) WITHOUT ROWID;
  CREATE INDEX subscriptions_by_subscriber ON subscriptions (subscriber_user_id);
  CREATE INDEX subscriptions_by_expiry ON subscriptions (expires_at);
  `,
  `
  -- Damping: a user's subscribers get at most one delta per PRESENCE_MIN_INTERVAL_MS. pushed_at is
  -- when the last one went out; push_after, when a held change is due (the alarm sends it, with
  -- the state at that time).
  ALTER TABLE presence ADD COLUMN pushed_at INTEGER;
  ALTER TABLE presence ADD COLUMN push_after INTEGER;
  CREATE INDEX presence_push_after ON presence (push_after) WHERE push_after IS NOT NULL;
  -- Rows of users long gone are deleted (PRESENCE_RETENTION_MS after they were last seen).
  CREATE INDEX presence_idle ON presence (last_seen) WHERE expires_at IS NULL AND offline_since IS NULL;
  `,
  `
  -- Where this shard was first reached (docs/decisions/021): checked on every wake, so a shard
  -- never serves presence from a jurisdiction other than its users'.
  CREATE TABLE placement (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    jurisdiction TEXT NOT NULL
  );
  `,
];
