-- A session's refresh tokens share a family secret (see src/auth/refresh_token.rs); its
-- SHA-256 digest names the session, so that a generation whose row has been pruned is still
-- recognised, as a replay, when it comes back. NULL for sessions opened before families.
ALTER TABLE sessions ADD COLUMN refresh_family_hash BYTEA;
CREATE UNIQUE INDEX sessions_refresh_family_hash_key ON sessions (refresh_family_hash);
