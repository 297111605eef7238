-- Passkeys (API.md v1.1 "Passkeys (WebAuthn)"): the credentials, and the ceremonies that
-- register them or log in with them, kept here so that any instance can finish what another
-- started.

-- A passkey of an account. `credential` is webauthn-rs's Passkey as JSON: the public key,
-- its signature counter and backup flags (nothing secret). credential_id is what the
-- authenticator names it by, unique across accounts: a credential belongs to one account.
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BLOB NOT NULL,
    credential    TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    last_used_at  TIMESTAMP
);
CREATE UNIQUE INDEX passkeys_credential_id_key ON passkeys (credential_id);
CREATE INDEX passkeys_user_idx ON passkeys (user_id);

-- A ceremony started and not finished yet: found by the SHA-256 of its id, used once (the
-- finish deletes it), ended by its expiry. `owner` bounds how many are open: an account's
-- ('user:ID') for a registration, a client address's ('address:KEY') for a login. `state`
-- is webauthn-rs's ceremony state as JSON (the challenge, what the finish must check).
CREATE TABLE webauthn_ceremonies (
    id_hash    BLOB PRIMARY KEY,
    purpose    TEXT NOT NULL,
    owner      TEXT NOT NULL,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX webauthn_ceremonies_owner_idx ON webauthn_ceremonies (owner, created_at);
CREATE INDEX webauthn_ceremonies_expires_idx ON webauthn_ceremonies (expires_at);
