DROP TABLE server_secrets;
DROP TABLE outbox;
DROP TABLE one_time_codes;
ALTER TABLE users DROP COLUMN email_verified_at;
