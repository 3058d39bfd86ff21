import type { Migration } from "../migrate.js";
import { ATTACHMENTS_MIGRATION } from "./attachments.js";
import { convertContentToBytes } from "./content.js";
import { INVITES_MIGRATION } from "./invites.js";
import { RETENTION_MIGRATION } from "./retention.js";

/**
 * ChannelObject storage. One object per channel; it is the only writer of these tables.
 * Append-only list: never edit a shipped migration, add a new one.
 */
export const CHANNEL_MIGRATIONS: readonly Migration[] = [
  `
  -- The channel itself; exactly one row. last_seq and the HLC pair are the sequencer's state and
  -- are written in the same implicit transaction as every message INSERT, so a restart resumes
  -- them exactly (never from memory, never from a wall clock).
  CREATE TABLE channel (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    channel_id    TEXT NOT NULL,
    type          TEXT NOT NULL,              -- dm | group
    name          TEXT NOT NULL DEFAULT '',
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    e2ee          INTEGER NOT NULL DEFAULT 0,
    retention_ms  INTEGER NOT NULL DEFAULT 0, -- 0 = keep forever
    jurisdiction  TEXT NOT NULL DEFAULT '',
    settings      TEXT NOT NULL DEFAULT '{}',
    last_seq      INTEGER NOT NULL DEFAULT 0,
    hlc_ms        INTEGER NOT NULL DEFAULT 0,
    hlc_logical   INTEGER NOT NULL DEFAULT 0,
    fanout_seq    INTEGER NOT NULL DEFAULT 0  -- every message up to here was handed to every member
  );

  CREATE TABLE members (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,              -- owner | admin | member
    joined_at     INTEGER NOT NULL,
    joined_seq    INTEGER NOT NULL,
    left_at       INTEGER,                    -- NULL while a member
    last_read_seq INTEGER NOT NULL DEFAULT 0
  );

  CREATE TABLE messages (
    seq              INTEGER PRIMARY KEY,     -- contiguous from 1
    hlc_ms           INTEGER NOT NULL,
    hlc_logical      INTEGER NOT NULL,
    sender_user_id   TEXT NOT NULL,
    sender_device_id TEXT NOT NULL DEFAULT '',
    client_msg_id    TEXT,                    -- NULL for system messages
    kind             TEXT NOT NULL,           -- text | attachment | encrypted | system
    content          TEXT NOT NULL,           -- MessageContent as proto-JSON
    server_ts        INTEGER NOT NULL,
    edited_at        INTEGER NOT NULL DEFAULT 0,
    deleted          INTEGER NOT NULL DEFAULT 0
  );
  -- Idempotency: a retried SEND finds its original row (seed §4.1: (user_id, client_msg_id)).
  CREATE UNIQUE INDEX messages_idempotency ON messages (sender_user_id, client_msg_id) WHERE client_msg_id IS NOT NULL;

  CREATE TABLE reactions (
    seq        INTEGER NOT NULL,
    user_id    TEXT NOT NULL,
    emoji      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (seq, user_id, emoji)
  );

  -- Members whose delivery failed: retried from an alarm until it succeeds.
  CREATE TABLE fanout_retry (
    user_id   TEXT PRIMARY KEY,
    from_seq  INTEGER NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 0
  );
  `,
  `
  -- Reactions as clients receive them ([{emoji, user_ids}] in first-reaction order), kept beside
  -- the message so a page of history is one SELECT; the reactions table stays the truth.
  ALTER TABLE messages ADD COLUMN reactions TEXT NOT NULL DEFAULT '[]';
  `,
  `
  -- The read cursor a member has let others see (read receipts are opt-in). Until now every
  -- cursor was shown, so the shown one starts where the member is.
  ALTER TABLE members ADD COLUMN shared_read_seq INTEGER NOT NULL DEFAULT 0;
  UPDATE members SET shared_read_seq = last_read_seq;
  `,
  ATTACHMENTS_MIGRATION,
  // messages.content becomes the encoded MessageContent (a BLOB in the TEXT-declared column, which
  // SQLite keeps as a BLOB); rows of proto-JSON are converted here. Readers take both forms
  // (content.ts decodeContent): a row an older version writes while it still runs this object is
  // read as it was written.
  convertContentToBytes,
  `
  -- Watchers and tiers (docs/decisions/013). A post is delivered to watchers only: members whose
  -- UserObject has a device connected. epoch orders each user's watch/unwatch calls.
  CREATE TABLE watchers (
    user_id   TEXT PRIMARY KEY,
    epoch     INTEGER NOT NULL,
    active    INTEGER NOT NULL,
    at_relay  INTEGER NOT NULL DEFAULT 0      -- registered at its relay shard (relay tiers)
  );
  CREATE INDEX watchers_active ON watchers (active, at_relay);

  -- Deliveries that failed: the target (a user id, or "relay:<shard>") catches up from from_seq
  -- before it takes part in rounds again. Replaces fanout_retry (kept for the previous release).
  CREATE TABLE delivery_retry (
    target    TEXT PRIMARY KEY,
    from_seq  INTEGER NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 0,
    next_at   INTEGER NOT NULL DEFAULT 0
  );

  -- Relay shards with watchers, as each shard last reported (version orders its reports).
  CREATE TABLE relays (
    shard     INTEGER PRIMARY KEY,
    version   INTEGER NOT NULL DEFAULT 0,
    watchers  INTEGER NOT NULL DEFAULT 0
  );

  -- The member count lives in the row: no object counts (or loads) its members on wake.
  ALTER TABLE channel ADD COLUMN member_count INTEGER NOT NULL DEFAULT 0;
  UPDATE channel SET member_count = (SELECT count(*) FROM members WHERE left_at IS NULL);
  -- 0: direct tier; otherwise the relay shards this channel's watchers are spread over.
  ALTER TABLE channel ADD COLUMN relay_shards INTEGER NOT NULL DEFAULT 0;
  -- Counts membership changes; each member row keeps the version of its last one.
  ALTER TABLE channel ADD COLUMN membership_version INTEGER NOT NULL DEFAULT 0;

  -- Membership notices: the member's UserObject is told of each change (added, removed) by the
  -- channel's notice pump. notified = 0 until it was; existing members are in their lists already.
  ALTER TABLE members ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE members ADD COLUMN notified INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE members ADD COLUMN notice_at INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE members ADD COLUMN notice_attempts INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX members_notices ON members (notice_at) WHERE notified = 0;
  -- Current members in joined order, for paging and the owner hand-over.
  CREATE INDEX members_current ON members (left_at, joined_at);
  `,
  INVITES_MIGRATION,
  RETENTION_MIGRATION,
  `
  -- Watchers that stopped watching (unwatch, leave, removal, erasure) in a relay tier, to be told
  -- to their relay shard by the fan-out pump once the rounds up to after_seq went out
  -- (docs/decisions/017). forget = 1: the user's account is being erased, the relay deletes every
  -- row naming them. A row goes once its shard confirmed it.
  CREATE TABLE relay_leaves (
    user_id    TEXT PRIMARY KEY,
    epoch      INTEGER NOT NULL,
    after_seq  INTEGER NOT NULL,
    forget     INTEGER NOT NULL DEFAULT 0
  );
  `,
];
