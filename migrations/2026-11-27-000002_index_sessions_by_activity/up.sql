-- The admin sessions page lists every live session, newest activity first, 50 at a time (keyset paging),
-- so it reads an index instead of sorting the whole table.
CREATE INDEX sessions_last_seen_at_id ON sessions (last_seen_at, id);
