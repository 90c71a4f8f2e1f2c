-- The desk's lists: payments by when they were first seen (newest first, paged).
CREATE INDEX payments_first_seen ON payments (first_seen_at);
