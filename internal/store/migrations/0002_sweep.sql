-- The sweep and its alerts.

-- What the sweep did, per check: latency and the action it took (void issued, …).
ALTER TABLE payment_checks ADD COLUMN action TEXT NOT NULL DEFAULT '';
ALTER TABLE payment_checks ADD COLUMN latency_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE payment_checks ADD COLUMN error TEXT NOT NULL DEFAULT '';

-- Alert delivery state of each discrepancy: an alert is sent once when it opens and once when it
-- resolves, and a failed delivery is retried by the next sweep until it succeeds.
ALTER TABLE discrepancies ADD COLUMN alerted_at TEXT;
ALTER TABLE discrepancies ADD COLUMN resolve_alerted_at TEXT;
CREATE INDEX discrepancies_alerts ON discrepancies (id) WHERE alerted_at IS NULL OR (resolved_at IS NOT NULL AND resolve_alerted_at IS NULL);
