-- Account settings: an avatar stored on R2 under avatars/<user_id>; the version changes with
-- every upload so clients (and caches) fetch the new picture. 0 = no avatar.
ALTER TABLE accounts ADD COLUMN avatar_version INTEGER NOT NULL DEFAULT 0;
-- Erasure (docs/decisions/020): set when DELETE /v1/me started the job. From then on the account
-- signs nobody in and has no profile; the row itself (and with it the username) goes last.
ALTER TABLE accounts ADD COLUMN erasing_since INTEGER;

-- Erasure jobs as operators see them: the step and counts, never a name or any content. The row
-- stays after the account is gone, as the record that the erasure finished.
CREATE TABLE erasures (
  user_id     TEXT PRIMARY KEY,
  step        TEXT NOT NULL,
  counts      TEXT NOT NULL DEFAULT '{}',
  started_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  finished_at INTEGER
);
