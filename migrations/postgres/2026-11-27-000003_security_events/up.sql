-- What happened to an account, for its owner to review (`GET /me/events`): one row per
-- login, failed login, lockout, logout, revoked session and so on. Ids are UUIDv7, so the
-- primary key sorts by time and pages by (user_id, id). The account's deletion deletes its
-- events. `session_id` names the session concerned but is no foreign key: ended sessions
-- are pruned after a day, their events are kept for LATCHKEY_EVENT_RETENTION.
CREATE TABLE security_events (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    at         TIMESTAMP NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    session_id TEXT
);
CREATE INDEX security_events_user_id_id_idx ON security_events (user_id, id);
-- For pruning by age.
CREATE INDEX security_events_at_idx ON security_events (at);
