-- Settlement runs: the acquiring bank's KNET statement matched against the ledger. A statement is
-- recorded once (by its SHA-256): importing it again changes nothing. settlement_matches says,
-- per posting (action id), which statement line paid it.
CREATE TABLE settlement_runs (
    id               INTEGER PRIMARY KEY,
    statement_sha256 TEXT NOT NULL UNIQUE,
    file             TEXT NOT NULL DEFAULT '',
    period_from      TEXT NOT NULL,
    period_to        TEXT NOT NULL,
    lines            INTEGER NOT NULL,
    matched          INTEGER NOT NULL,
    ledger_only      INTEGER NOT NULL,
    statement_only   INTEGER NOT NULL,
    amount_mismatch  INTEGER NOT NULL,
    result           TEXT NOT NULL,                -- the whole result, JSON
    created_at       TEXT NOT NULL
);
CREATE TABLE settlement_matches (
    action_id        TEXT PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES settlement_runs (id),
    line             INTEGER NOT NULL,
    statement_amount INTEGER NOT NULL,
    matched_at       TEXT NOT NULL
);
