-- A discrepancy's life. A resolution does not end it for good: when a later check finds it true
-- again (a payment still open past the stuck limit, Checkout.com still disagreeing), it is
-- reopened. The discrepancies row holds the current state (opened at detected_at; resolved at
-- resolved_at by resolved_by, '' for the reconciler itself); this table keeps what a reopening
-- clears from it: each earlier resolution (when, by whom, the note) and the reopening itself.
-- Times are the stream's, like every time written while applying it.
ALTER TABLE discrepancies ADD COLUMN resolved_by TEXT NOT NULL DEFAULT '';
-- Resolutions by hand made before this migration name their operator in the note.
UPDATE discrepancies SET resolved_by = substr(resolution, 10, instr(resolution, '): ') - 10)
    WHERE resolved_at IS NOT NULL AND resolution LIKE 'by hand (%): %';

CREATE TABLE discrepancy_history (
    id             INTEGER PRIMARY KEY,
    discrepancy_id INTEGER NOT NULL REFERENCES discrepancies (id),
    at             TEXT NOT NULL,
    event          TEXT NOT NULL,             -- resolved (an earlier resolution), reopened
    by             TEXT NOT NULL DEFAULT '',  -- the operator of a resolution by hand; '' the reconciler
    note           TEXT NOT NULL DEFAULT ''   -- the resolution's note; why it reopened
);
CREATE INDEX discrepancy_history_of ON discrepancy_history (discrepancy_id, id);
