DROP TABLE mail_outbox;
DROP TABLE account_tokens;
DROP INDEX users_email_key;
ALTER TABLE users DROP COLUMN email;
