DROP INDEX sessions_last_seen_at_id;
