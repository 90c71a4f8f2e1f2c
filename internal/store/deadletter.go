package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// DeadLetter is a stream message the reconciler could not apply, kept with the reason and the
// exact body so an operator can look at it and replay it.
type DeadLetter struct {
	ID           int64             `json:"id"`
	StreamSeq    uint64            `json:"stream_seq,omitempty"`
	Subject      string            `json:"subject"`
	MsgID        string            `json:"msg_id,omitempty"`
	Reason       string            `json:"reason"`
	Deliveries   int               `json:"deliveries"`
	Headers      map[string]string `json:"headers,omitempty"`
	Body         []byte            `json:"-"`
	CreatedAt    time.Time         `json:"created_at"`
	ReplayedAt   *time.Time        `json:"replayed_at,omitempty"`
	ReplayResult string            `json:"replay_result,omitempty"`
}

// AddDeadLetter stores d. The same stream sequence is stored once (a redelivery after a crash
// between commit and ack adds nothing); it returns the row id, or 0 when it was already there.
func (t *Tx) AddDeadLetter(ctx context.Context, d DeadLetter) (int64, error) {
	h, err := json.Marshal(d.Headers)
	if err != nil {
		return 0, fmt.Errorf("dead letter: %w", err)
	}
	var seq any
	if d.StreamSeq > 0 {
		seq = int64(d.StreamSeq)
	}
	body := d.Body
	if body == nil {
		body = []byte{}
	}
	r, err := t.tx.ExecContext(ctx, `INSERT INTO dead_letters (stream_seq, subject, msg_id, reason, deliveries,
		headers, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		seq, d.Subject, d.MsgID, d.Reason, d.Deliveries, string(h), body, fmtTime(t.now))
	if err != nil {
		return 0, fmt.Errorf("dead letter seq %d: %w", d.StreamSeq, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return 0, nil
	}
	return r.LastInsertId()
}

// MarkReplayed records the result of replaying dead letter id.
func (t *Tx) MarkReplayed(ctx context.Context, id int64, result string) error {
	r, err := t.tx.ExecContext(ctx, `UPDATE dead_letters SET replayed_at = ?, replay_result = ? WHERE id = ?`,
		fmtTime(t.now), result, id)
	if err != nil {
		return fmt.Errorf("mark dead letter %d replayed: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
	}
	return nil
}

const deadLetterColumns = `id, stream_seq, subject, msg_id, reason, deliveries, headers, body, created_at, replayed_at, replay_result`

func scanDeadLetter(s scanner) (DeadLetter, error) {
	var d DeadLetter
	var seq sql.NullInt64
	var headers string
	var created, replayed sql.NullString
	if err := s.Scan(&d.ID, &seq, &d.Subject, &d.MsgID, &d.Reason, &d.Deliveries, &headers, &d.Body, &created, &replayed, &d.ReplayResult); err != nil {
		return d, err
	}
	d.StreamSeq = uint64(seq.Int64)
	_ = json.Unmarshal([]byte(headers), &d.Headers)
	d.CreatedAt, d.ReplayedAt = parseTime(created), timePtr(replayed)
	return d, nil
}

// DeadLetters lists dead letters, newest first; pending only leaves out the replayed ones.
func (l *Ledger) DeadLetters(ctx context.Context, pendingOnly bool, limit int) ([]DeadLetter, error) {
	q := `SELECT ` + deadLetterColumns + ` FROM dead_letters`
	if pendingOnly {
		q += ` WHERE replayed_at IS NULL OR replay_result != 'applied'`
	}
	if limit <= 0 {
		limit = 100
	}
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, limit)
	rows, err := l.r.QueryxContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	defer rows.Close()
	out := []DeadLetter{}
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			return nil, fmt.Errorf("dead letters: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeadLetter returns one dead letter, or ErrNotFound.
func (l *Ledger) DeadLetter(ctx context.Context, id int64) (*DeadLetter, error) {
	d, err := scanDeadLetter(l.r.QueryRowxContext(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", id, err)
	}
	return &d, nil
}
