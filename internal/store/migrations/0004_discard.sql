-- Dead letters an operator has looked at and set aside for good (a junk body, a test message):
-- kept with who and why, never deleted, and no longer pending.
ALTER TABLE dead_letters ADD COLUMN discarded_at TEXT;
ALTER TABLE dead_letters ADD COLUMN discarded_by TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN discard_note TEXT NOT NULL DEFAULT '';
