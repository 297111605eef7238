-- One row per counted login attempt, per throttling key: an account ("user:<id>", or the
-- identifier tried when no such account exists) or a client address ("ip:<address>").
-- Counting rows in a sliding window enforces "at most N failures in the window" exactly,
-- on every instance. Rows older than the window are pruned.
CREATE TABLE login_failures (
    id           TEXT PRIMARY KEY,
    throttle_key TEXT NOT NULL,
    failed_at    TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_key_time_idx ON login_failures (throttle_key, failed_at);
CREATE INDEX login_failures_time_idx ON login_failures (failed_at);
