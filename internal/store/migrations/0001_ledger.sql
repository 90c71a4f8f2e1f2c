-- The ledger. Amounts are integers in the currency's minor unit (fils for KWD). Times are UTC
-- text in one fixed width (2006-01-02T15:04:05.000000000Z) so that they sort as they read.

-- One row per Checkout.com payment (pay_…), created by the first event heard about it.
CREATE TABLE payments (
    id              TEXT PRIMARY KEY,
    status          TEXT NOT NULL,             -- Checkout.com spelling, derived from the facts
    provider_status TEXT NOT NULL DEFAULT '',  -- last status GET /payments reported, as sent
    amount          INTEGER NOT NULL DEFAULT 0 CHECK (amount >= 0), -- stated amount, 0 = not yet known
    currency        TEXT NOT NULL DEFAULT '',
    reference       TEXT NOT NULL DEFAULT '',
    customer        TEXT NOT NULL DEFAULT '',  -- customer id (cus_…) when an event carried one
    method          TEXT NOT NULL DEFAULT '',  -- payment source type: knet, card, …
    seen            TEXT NOT NULL DEFAULT '',  -- non-money facts learned: pending,authorized,expired,…
    captured        INTEGER NOT NULL DEFAULT 0 CHECK (captured >= 0),
    refunded        INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= captured),
    held            INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0), -- refunds waiting for a capture
    final           INTEGER NOT NULL DEFAULT 0 CHECK (final IN (0, 1)), -- no webhook is owed
    requested_at    TEXT,                      -- earliest event time, or requested_on from the API
    first_seen_at   TEXT NOT NULL,             -- when the first event about it reached us
    last_event_at   TEXT,                      -- latest event time
    last_checked_at TEXT,                      -- last time the sweep asked Checkout.com
    next_check_at   TEXT NOT NULL,             -- when the sweep should ask next
    updated_at      TEXT NOT NULL
);
-- The sweep's query: open payments due for a check, oldest first.
CREATE INDEX payments_due ON payments (next_check_at, id) WHERE final = 0;
CREATE INDEX payments_status ON payments (status);

-- Every event ever applied, exactly once per event id, with the body as received.
CREATE TABLE events (
    id            TEXT PRIMARY KEY,            -- evt_… (webhook) or the sweep's id (api)
    payment_id    TEXT REFERENCES payments (id) DEFERRABLE INITIALLY DEFERRED,
    type          TEXT NOT NULL,
    origin        TEXT NOT NULL CHECK (origin IN ('webhook', 'api')),
    action_id     TEXT NOT NULL DEFAULT '',
    amount        INTEGER NOT NULL DEFAULT 0,
    currency      TEXT NOT NULL DEFAULT '',
    occurred_at   TEXT,                        -- the event's created_on / timestamp
    received_at   TEXT NOT NULL,               -- when the receiver (or the sweep) got it
    applied_at    TEXT NOT NULL,
    outcome       TEXT NOT NULL,               -- applied, no_change, held, already_posted, recorded, rejected, ignored
    status_before TEXT NOT NULL DEFAULT '',
    status_after  TEXT NOT NULL DEFAULT '',
    stream_seq    INTEGER,                     -- JetStream sequence, for webhooks
    duplicates    INTEGER NOT NULL DEFAULT 0,  -- identical re-deliveries seen since
    body_hash     TEXT NOT NULL,               -- hex SHA-256 of body
    body          BLOB NOT NULL
);
CREATE INDEX events_payment ON events (payment_id, occurred_at);

-- The journal: one posting per money movement, keyed by Checkout.com's action id, so a capture
-- learned twice (two event ids, or webhook and API) is posted once.
CREATE TABLE postings (
    action_id   TEXT PRIMARY KEY,
    payment_id  TEXT NOT NULL REFERENCES payments (id) DEFERRABLE INITIALLY DEFERRED,
    kind        TEXT NOT NULL CHECK (kind IN ('capture', 'refund')),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    currency    TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('posted', 'held')), -- held: a refund no capture covers yet
    event_id    TEXT NOT NULL,                 -- the event that brought it first
    origin      TEXT NOT NULL,
    occurred_at TEXT,
    created_at  TEXT NOT NULL,
    posted_at   TEXT
);
CREATE INDEX postings_payment ON postings (payment_id, state);

-- The lines of each posted posting: debits equal credits for every action id.
--   capture: debit checkout_balance, credit customer_payments
--   refund:  debit customer_refunds, credit checkout_balance
CREATE TABLE journal (
    action_id TEXT NOT NULL REFERENCES postings (action_id),
    account   TEXT NOT NULL,
    debit     INTEGER NOT NULL DEFAULT 0 CHECK (debit >= 0),
    credit    INTEGER NOT NULL DEFAULT 0 CHECK (credit >= 0),
    currency  TEXT NOT NULL,
    PRIMARY KEY (action_id, account)
) WITHOUT ROWID;

-- Things an operator must look at. One row per (payment, kind, subject).
CREATE TABLE discrepancies (
    id          INTEGER PRIMARY KEY,
    payment_id  TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL,                 -- captured_after_expiry, over_refund, amount_mismatch, …
    subject     TEXT NOT NULL DEFAULT '',      -- what it is about within the payment (action or event id)
    details     TEXT NOT NULL,                 -- JSON with both sides
    event_id    TEXT NOT NULL DEFAULT '',
    origin      TEXT NOT NULL DEFAULT '',
    detected_at TEXT NOT NULL,
    resolved_at TEXT,
    resolution  TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX discrepancies_once ON discrepancies (payment_id, kind, subject);
CREATE INDEX discrepancies_open ON discrepancies (kind, detected_at) WHERE resolved_at IS NULL;

-- Messages the reconciler could not apply, with why and the body, for an operator to replay.
CREATE TABLE dead_letters (
    id            INTEGER PRIMARY KEY,
    stream_seq    INTEGER,
    subject       TEXT NOT NULL,
    msg_id        TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL,
    deliveries    INTEGER NOT NULL DEFAULT 0,
    headers       TEXT NOT NULL DEFAULT '{}',
    body          BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    replayed_at   TEXT,
    replay_result TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX dead_letters_seq ON dead_letters (stream_seq) WHERE stream_seq IS NOT NULL;

-- The sweep's log of questions asked to Checkout.com about a payment.
CREATE TABLE payment_checks (
    id              INTEGER PRIMARY KEY,
    payment_id      TEXT NOT NULL REFERENCES payments (id),
    checked_at      TEXT NOT NULL,
    provider_status TEXT NOT NULL DEFAULT '',
    outcome         TEXT NOT NULL,             -- e.g. match, updated, not_found, error
    details         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX payment_checks_payment ON payment_checks (payment_id, checked_at);
