-- What operators did from the desk: who, what, on which subject (payment:<id>,
-- discrepancy:<id>, dead_letter:<id>), their note and the result. Kept for good, as an audit trail.
CREATE TABLE operator_actions (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    who     TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    note    TEXT NOT NULL DEFAULT '',
    result  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX operator_actions_subject ON operator_actions (subject, id);
