import { ERASURE_MIGRATION } from "./erasure.js";

/**
 * UserObject storage: one object per user. Append-only list of migrations.
 */
export const USER_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE profile (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    user_id       TEXT NOT NULL,
    username      TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    jurisdiction  TEXT NOT NULL DEFAULT '',
    settings      TEXT NOT NULL DEFAULT '{}',   -- read receipts opt-in, presence visibility, ...
    created_at    INTEGER NOT NULL
  );

  -- At most LIMITS.maxDevicesPerUser rows; a socket's tag is its device_id.
  CREATE TABLE devices (
    device_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL DEFAULT '',
    platform      TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    push_provider TEXT,
    push_token    TEXT
  );

  -- What each device confirmed holding (DELIVER_ACK): the fallback cursor for RESUME.
  CREATE TABLE device_cursors (
    device_id     TEXT NOT NULL,
    channel_id    TEXT NOT NULL,
    delivered_seq INTEGER NOT NULL,
    PRIMARY KEY (device_id, channel_id)
  );

  -- Refresh sessions. Only hashes of the secrets; the previous hash detects a replayed token.
  CREATE TABLE sessions (
    session_id    TEXT PRIMARY KEY,
    secret_hash   TEXT NOT NULL,
    previous_hash TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER
  );

  -- The user's channel list (seed §5.2 inbox): kept current by every delivery.
  CREATE TABLE channels (
    channel_id        TEXT PRIMARY KEY,
    type              TEXT NOT NULL,
    name              TEXT NOT NULL DEFAULT '',
    member_count      INTEGER NOT NULL DEFAULT 0,
    members           TEXT NOT NULL DEFAULT '[]',  -- profiles while the channel is small
    last_seq          INTEGER NOT NULL DEFAULT 0,
    last_activity_hlc TEXT NOT NULL DEFAULT '',
    last_activity_at  INTEGER NOT NULL DEFAULT 0,
    last_read_seq     INTEGER NOT NULL DEFAULT 0,
    unread_count      INTEGER NOT NULL DEFAULT 0,
    muted             INTEGER NOT NULL DEFAULT 0,
    left              INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX channels_by_activity ON channels (left, last_activity_at DESC);
  `,
  `
  -- Delete for me: messages this user removed from their own devices. Every message this object
  -- passes to a device (live, RESUME, history) is masked against it.
  CREATE TABLE hidden_messages (
    channel_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    hidden_at  INTEGER NOT NULL,
    PRIMARY KEY (channel_id, seq)
  );
  `,
  `
  -- Push (issue 10). devices.push_provider is the subscription's type, devices.push_token the
  -- subscription as JSON (endpoint and keys, or the token and topic); push_failures counts pushes
  -- that were dead-lettered since the device last registered one.
  ALTER TABLE devices ADD COLUMN push_failures INTEGER NOT NULL DEFAULT 0;

  -- One row per channel with missed messages since the user last read it: the coalescing window
  -- (push-coalesce.ts) and the newest missed message, which the next update shows.
  CREATE TABLE push_windows (
    channel_id     TEXT PRIMARY KEY,
    ends_at        INTEGER NOT NULL,
    pushed_seq     INTEGER NOT NULL,
    count          INTEGER NOT NULL,
    pending        INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL,
    channel_name   TEXT NOT NULL,
    channel_type   TEXT NOT NULL,
    sender_user_id TEXT NOT NULL,
    sender_name    TEXT NOT NULL,
    preview        TEXT,
    sent_at        INTEGER NOT NULL
  );
  CREATE INDEX push_windows_due ON push_windows (pending, ends_at);
  `,
  `
  -- Revocation (docs/decisions/011): which device last connected with a session, and when a
  -- session was last used (refresh or connect), for the sessions list.
  ALTER TABLE sessions ADD COLUMN device_id TEXT;
  ALTER TABLE sessions ADD COLUMN last_used_at INTEGER;
  `,
  `
  -- Watchers (docs/decisions/013): subscribed = 1 while the channel lists this user as a live
  -- watcher; sent_seq = the highest seq written live to any of the user's sockets;
  -- membership_seq = the membership change this row last took from a notice.
  ALTER TABLE channels ADD COLUMN subscribed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE channels ADD COLUMN sent_seq INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE channels ADD COLUMN membership_seq INTEGER NOT NULL DEFAULT 0;
  -- One row: epoch counts the user's live/offline transitions (every watch and unwatch carries it,
  -- so a late call never overrides a newer one); offline_at starts the unwatch grace; dirty = 1
  -- while channel rows changed in memory have not been flushed.
  CREATE TABLE live_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    epoch      INTEGER NOT NULL DEFAULT 0,
    offline_at INTEGER NOT NULL DEFAULT 0,
    dirty      INTEGER NOT NULL DEFAULT 0
  );
  INSERT INTO live_state (id) VALUES (1);
  `,
  ERASURE_MIGRATION,
];
