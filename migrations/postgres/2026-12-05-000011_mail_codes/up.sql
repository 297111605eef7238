-- Account recovery and email verification (API.md v1.1): a verified flag on accounts, the
-- one-time codes mailed to them, the outbox the mail waits in, and the server's own secrets.

-- NULL until the account proves it holds its email.
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMP;

-- One live code per account and purpose: a new one replaces the row of the older. Only a
-- keyed hash of the code is kept (see src/auth/codes.rs); it covers purpose and email, so a
-- code is looked up by its hash.
CREATE TABLE one_time_codes (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    email      TEXT NOT NULL,
    code_hash  BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    used_at    TIMESTAMP
);
CREATE UNIQUE INDEX one_time_codes_user_purpose_key ON one_time_codes (user_id, purpose);
CREATE INDEX one_time_codes_email_idx ON one_time_codes (email, purpose);

-- Mail waiting to go out, or gone. The code a message carries is erased once it is sent.
CREATE TABLE outbox (
    id                   TEXT PRIMARY KEY,
    kind                 TEXT NOT NULL,
    recipient            TEXT NOT NULL,
    user_id              TEXT,
    code                 TEXT,
    detail               TEXT,
    requested_ip         TEXT,
    requested_user_agent TEXT,
    created_at           TIMESTAMP NOT NULL,
    next_attempt_at      TIMESTAMP NOT NULL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    done_at              TIMESTAMP,
    outcome              TEXT,
    last_error           TEXT
);
-- The worker's queue: only waiting rows are in it.
CREATE INDEX outbox_waiting_idx ON outbox (next_attempt_at) WHERE done_at IS NULL;
CREATE INDEX outbox_done_idx ON outbox (done_at) WHERE done_at IS NOT NULL;

-- Secrets the service makes for itself, once, shared by every instance (the key of the
-- code hashes); sealed like the signing keys when LATCHKEY_KEY_ENCRYPTION_KEY is set.
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL
);
