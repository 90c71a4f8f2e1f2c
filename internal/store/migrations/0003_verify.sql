-- Verification of final payments: Checkout.com stops retrying a webhook about 30 hours after the
-- event, so a final payment is asked about once more after that (and, while it holds money that
-- could still be refunded, at later steps), to find a capture or refund whose webhook was lost.
-- NULL: nothing to verify (not final, verification off, or every step done). Rows already final
-- when this migration runs are not scheduled; a new event about one schedules it.
ALTER TABLE payments ADD COLUMN verify_at TEXT;
CREATE INDEX payments_verify ON payments (verify_at, id) WHERE verify_at IS NOT NULL;
