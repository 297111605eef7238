-- A second factor (API.md v1.1): TOTP secrets, recovery codes, the challenges of logins that
-- still owe their second factor, and how each session was authenticated.

-- When the account turned its TOTP factor on; NULL while it has none (so that a User answers
-- "mfa" without a join).
ALTER TABLE users ADD COLUMN totp_enabled_at TIMESTAMP;

-- RFC 8176 methods the session's login used, space-separated: 'pwd', 'pwd otp'.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';

-- One TOTP secret per account: pending (confirmed_at NULL) until a first code confirms it.
-- The secret is sealed like the signing keys when LATCHKEY_KEY_ENCRYPTION_KEY is set.
-- last_used_step is the newest 30-second step a code was accepted for: a code is accepted
-- only for a later step, so none is accepted twice.
CREATE TABLE totp_factors (
    user_id        TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret         BYTEA NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    confirmed_at   TIMESTAMP,
    last_used_step BIGINT
);

-- The account's recovery codes, as keyed hashes (see src/auth/codes.rs); each used once.
CREATE TABLE recovery_codes (
    id        TEXT PRIMARY KEY,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL,
    used_at   TIMESTAMP
);
CREATE UNIQUE INDEX recovery_codes_user_hash_key ON recovery_codes (user_id, code_hash);

-- A login whose password was right and that owes its second factor: found by the SHA-256
-- of its token, used once, ended by its expiry or by too many wrong codes.
CREATE TABLE mfa_challenges (
    token_hash  BYTEA PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    wrong_codes INTEGER NOT NULL DEFAULT 0,
    used_at     TIMESTAMP
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at);
