-- How far into the stream this ledger has applied: the highest stream sequence committed, moved in
-- the same transaction as the batch that reached it. A backup records it, so that a ledger restored
-- from the backup replays the stream from the next sequence (reconciler backup, rebuild).
CREATE TABLE stream_position (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);

-- The reconcilers' facts applied (a sweep's check, an operator's resolve…), by fact id: a fact
-- delivered again (a crash between the commit and the ack, a replay, a rebuild) changes nothing.
CREATE TABLE facts_applied (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    seq        INTEGER,
    applied_at TEXT NOT NULL,
    result     TEXT NOT NULL DEFAULT '' -- what applying it did (JSON), for whoever published it
) WITHOUT ROWID;
