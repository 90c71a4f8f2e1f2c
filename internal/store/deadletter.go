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
	DiscardedAt  *time.Time        `json:"discarded_at,omitempty"`
	DiscardedBy  string            `json:"discarded_by,omitempty"`
	DiscardNote  string            `json:"discard_note,omitempty"`
}

// Pending reports whether the dead letter still waits for an operator: neither applied by a
// replay nor discarded. The same rule counts the dead-letter gauge (pendingDeadLetter).
func (d DeadLetter) Pending() bool {
	return d.DiscardedAt == nil && (d.ReplayedAt == nil || d.ReplayResult != ReplayApplied)
}

// ReplayApplied is the replay result of a dead letter whose event is now in the ledger.
const ReplayApplied = "applied"

// pendingDeadLetter is the SQL twin of DeadLetter.Pending: one rule for the list and the gauge.
const pendingDeadLetter = `discarded_at IS NULL AND (replayed_at IS NULL OR replay_result != 'applied')`

// ErrAlreadyHandled is returned when discarding a dead letter already discarded or applied.
var ErrAlreadyHandled = errors.New("already handled")

// DiscardDeadLetter sets dead letter id aside for good, with who did it and why; the row stays.
// A dead letter already discarded, or applied by a replay, is refused with ErrAlreadyHandled.
func (t *Tx) DiscardDeadLetter(ctx context.Context, id int64, by, note string) error {
	r, err := t.tx.ExecContext(ctx, `UPDATE dead_letters SET discarded_at = ?, discarded_by = ?, discard_note = ?
		WHERE id = ? AND `+pendingDeadLetter, fmtTime(t.now), by, note, id)
	if err != nil {
		return fmt.Errorf("discard dead letter %d: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n == 1 {
		return nil
	}
	var exists int
	if err := t.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM dead_letters WHERE id = ?`, id).Scan(&exists); err != nil {
		return fmt.Errorf("discard dead letter %d: %w", id, err)
	}
	if exists == 0 {
		return fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
	}
	return fmt.Errorf("dead letter %d: %w (discarded, or applied by a replay)", id, ErrAlreadyHandled)
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

const deadLetterColumns = `id, stream_seq, subject, msg_id, reason, deliveries, headers, body, created_at, replayed_at, replay_result,
	discarded_at, discarded_by, discard_note`

func scanDeadLetter(s scanner) (DeadLetter, error) {
	var d DeadLetter
	var seq sql.NullInt64
	var headers string
	var created, replayed, discarded sql.NullString
	if err := s.Scan(&d.ID, &seq, &d.Subject, &d.MsgID, &d.Reason, &d.Deliveries, &headers, &d.Body, &created, &replayed, &d.ReplayResult,
		&discarded, &d.DiscardedBy, &d.DiscardNote); err != nil {
		return d, err
	}
	d.DiscardedAt = timePtr(discarded)
	d.StreamSeq = uint64(seq.Int64)
	_ = json.Unmarshal([]byte(headers), &d.Headers)
	d.CreatedAt, d.ReplayedAt = parseTime(created), timePtr(replayed)
	return d, nil
}

// DeadLetters lists dead letters, newest first; pending only leaves out those applied by a
// replay and those discarded (the rule the dead-letter gauge counts by).
func (l *Ledger) DeadLetters(ctx context.Context, pendingOnly bool, limit int) ([]DeadLetter, error) {
	q := `SELECT ` + deadLetterColumns + ` FROM dead_letters`
	if pendingOnly {
		q += ` WHERE ` + pendingDeadLetter
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

// DeadLetterAt returns the dead letter of stream sequence seq, or ErrNotFound.
func (l *Ledger) DeadLetterAt(ctx context.Context, seq uint64) (*DeadLetter, error) {
	d, err := scanDeadLetter(l.r.QueryRowxContext(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE stream_seq = ? ORDER BY id LIMIT 1`, int64(seq)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("dead letter of stream seq %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dead letter of stream seq %d: %w", seq, err)
	}
	return &d, nil
}

// DeadLetter returns one dead letter as the transaction sees it (one added earlier in the same
// batch included), or ErrNotFound.
func (t *Tx) DeadLetter(ctx context.Context, id int64) (*DeadLetter, error) {
	d, err := scanDeadLetter(t.tx.QueryRowxContext(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", id, err)
	}
	return &d, nil
}
