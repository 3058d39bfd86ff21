-- The account directory. Everything per user (devices, sessions, channel list) lives in that
-- user's UserObject; this table only maps a login name to the user id and proves the password.
CREATE TABLE accounts (
  user_id        TEXT PRIMARY KEY,
  username       TEXT NOT NULL,
  username_lower TEXT NOT NULL UNIQUE,
  display_name   TEXT NOT NULL,
  password_hash  TEXT NOT NULL,   -- pbkdf2-sha256$<iterations>$<salt b64url>$<hash b64url>
  jurisdiction   TEXT NOT NULL DEFAULT '',
  created_at     INTEGER NOT NULL
);
