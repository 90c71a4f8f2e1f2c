-- The desk on a ledger of millions: a status list pages through (status, first_seen_at), and the
-- chart and the reports find the postings that count in a period through the day they count on
-- (the same expression as store.countedAt, so the planner matches it).
CREATE INDEX payments_status_seen ON payments (status, first_seen_at);
CREATE INDEX postings_counted ON postings (MAX(COALESCE(occurred_at, created_at), COALESCE(posted_at, created_at))) WHERE state = 'posted';
