package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Action is one thing an operator did from the desk, kept as an audit trail.
type Action struct {
	ID int64     `json:"id"`
	At time.Time `json:"at"`
	// Who is the operator (the desk's basic-auth user name, else "desk").
	Who string `json:"who"`
	// Action is resolve, replay, discard or check.
	Action string `json:"action"`
	// Subject is payment:<id>, discrepancy:<id> or dead_letter:<id>.
	Subject string `json:"subject"`
	Note    string `json:"note"`
	Result  string `json:"result"`
}

// RecordAction keeps a, stamped with the ledger's clock, in a transaction of its own.
func (l *Ledger) RecordAction(ctx context.Context, a Action) error {
	return l.Update(ctx, func(t *Tx) error { return t.RecordAction(ctx, a) })
}

// Actions lists the operators' actions, newest first: on subject, or on any when subject is "".
func (l *Ledger) Actions(ctx context.Context, subject string, limit int) ([]Action, error) {
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT id, at, who, action, subject, note, result FROM operator_actions`
	args := []any{}
	if subject != "" {
		q += ` WHERE subject = ?`
		args = append(args, subject)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	rows, err := l.r.QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("operator actions: %w", err)
	}
	defer rows.Close()
	out := []Action{}
	for rows.Next() {
		var a Action
		var at sql.NullString
		if err := rows.Scan(&a.ID, &at, &a.Who, &a.Action, &a.Subject, &a.Note, &a.Result); err != nil {
			return nil, fmt.Errorf("operator actions: %w", err)
		}
		a.At = parseTime(at)
		out = append(out, a)
	}
	return out, rows.Err()
}
