-- Identifiers are UUIDv7 in canonical text and times are UTC without a zone, so that one
-- diesel schema serves both backends (see src/db/schema.rs).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    username      TEXT,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    disabled_at   TIMESTAMP
);
-- Emails are stored lowercased; usernames keep their spelling but are unique ignoring case.
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     TIMESTAMP NOT NULL,
    last_used_at   TIMESTAMP NOT NULL,
    expires_at     TIMESTAMP NOT NULL,
    revoked_at     TIMESTAMP,
    revoked_reason TEXT,
    user_agent     TEXT,
    ip             TEXT
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

-- One row per refresh-token generation of a session. Only SHA-256 digests of tokens are
-- kept; `successor` is the next generation's token sealed with this generation's token, so
-- that a concurrent caller holding this token can be answered with the same successor.
CREATE TABLE refresh_tokens (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    token_hash BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP,
    successor  BYTEA,
    PRIMARY KEY (session_id, generation)
);
CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash);

-- Signing keys; `generation` is unique so that instances starting together agree on one key.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    generation  INTEGER NOT NULL UNIQUE,
    algorithm   TEXT NOT NULL,
    private_key BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    retired_at  TIMESTAMP
);
