-- The settings that shape what applying the stream writes (a new payment's first check, a final
-- payment's verification, how far ahead of its receipt an event may be dated). They travel in
-- the stream as a "settings" fact, so every replica applies the same ones at the same point of
-- the stream, whatever its own configuration. No row: the defaults (store.DefaultSchedule).
CREATE TABLE schedule_settings (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    first_check_after_ns INTEGER NOT NULL,
    verify_after_ns      INTEGER NOT NULL,
    max_skew_ns          INTEGER NOT NULL,
    set_at               TEXT NOT NULL,
    set_by               TEXT NOT NULL
);
