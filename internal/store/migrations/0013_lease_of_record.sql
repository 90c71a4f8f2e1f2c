-- The sweep's lease as the stream has seen it: the highest term (the lease bucket's revision at
-- which a holder took it) carried by a fact so far. A sweep fact made under an older term, by a
-- holder another has replaced (a paused process, a longer local TTL), is refused as stale_lease
-- in every ledger alike.
CREATE TABLE lease_of_record (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch  INTEGER NOT NULL DEFAULT 0, -- when the lease bucket was made (a bucket made again restarts its revisions)
    term   INTEGER NOT NULL,
    at     TEXT NOT NULL
);
