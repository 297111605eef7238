DROP INDEX sessions_refresh_family_hash_key;
ALTER TABLE sessions DROP COLUMN refresh_family_hash;
