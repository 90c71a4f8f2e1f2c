-- Money to the bank account (issue 19). The bank's commission and net per posting; every line of
-- a recorded statement, so that the deposits the statements promise can be matched against the
-- merchant's account statement; and the account statements recorded, with the credit that paid
-- each posting day.
--
-- A statement line matched with another amount is recorded too (ok = 0): a later statement line
-- for the same posting supersedes it, and only a line of the posting's amount pays it.
ALTER TABLE settlement_matches ADD COLUMN fee INTEGER;
ALTER TABLE settlement_matches ADD COLUMN net INTEGER;
ALTER TABLE settlement_matches ADD COLUMN ok INTEGER NOT NULL DEFAULT 1;

-- Every line a statement was read into, signed: gross and net are positive for a capture,
-- negative for a refund; fee is the commission the bank kept (NULL when the statement has none).
CREATE TABLE statement_lines (
    run_id       INTEGER NOT NULL REFERENCES settlement_runs (id),
    line         INTEGER NOT NULL,
    posting_date TEXT NOT NULL,               -- YYYY-MM-DD in the report time zone
    batch        TEXT NOT NULL DEFAULT '',    -- the bank's batch or terminal, when it has one
    kind         TEXT NOT NULL,
    gross        INTEGER NOT NULL,
    fee          INTEGER,
    net          INTEGER NOT NULL,
    action_id    TEXT NOT NULL DEFAULT '',    -- the posting it matched, if any
    PRIMARY KEY (run_id, line)
);
CREATE INDEX statement_lines_day ON statement_lines (posting_date, batch);

-- A merchant's account statement, recorded once (by its SHA-256).
CREATE TABLE deposit_runs (
    id               INTEGER PRIMARY KEY,
    statement_sha256 TEXT NOT NULL UNIQUE,
    file             TEXT NOT NULL DEFAULT '',
    period_from      TEXT NOT NULL,
    period_to        TEXT NOT NULL,
    result           TEXT NOT NULL,
    created_at       TEXT NOT NULL
);

-- The credit that paid a posting day's net (per batch, when the bank pays per batch). A later
-- account statement showing the same credit again does not count it twice.
CREATE TABLE deposit_credits (
    posting_date TEXT NOT NULL,
    batch        TEXT NOT NULL DEFAULT '',
    run_id       INTEGER NOT NULL REFERENCES deposit_runs (id),
    line         INTEGER NOT NULL,
    credit_date  TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    reference    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (posting_date, batch)
);
