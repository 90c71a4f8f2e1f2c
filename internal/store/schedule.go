package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Schedule are the settings that shape the rows applying the stream writes: when a new payment is
// first checked, when a final payment is verified, how far ahead of its receipt an event may be
// dated. They are the ledger's, set by a fact on the stream (SetSchedule), never by the applying
// process's own configuration: every replica applies the same stream with the same settings at
// the same point and writes the same rows.
type Schedule struct {
	// FirstCheckAfter: a new payment's first sweep check, after it was first seen.
	FirstCheckAfter time.Duration `json:"first_check_after"`
	// VerifyAfter: a final payment's verification, after its latest event (zero: none).
	VerifyAfter time.Duration `json:"verify_after"`
	// MaxSkew: an event dated further ahead of its receipt is timed by its receipt and flagged
	// clock_skew (zero: no bound).
	MaxSkew time.Duration `json:"max_skew"`
}

// DefaultSchedule is the ledger's schedule until a settings fact sets another: KNET's seven
// minutes, Checkout.com's retry window (about 30 hours, and an hour's margin), a day of skew.
var DefaultSchedule = Schedule{FirstCheckAfter: 7 * time.Minute, VerifyAfter: 31 * time.Hour, MaxSkew: 24 * time.Hour}

// Schedule returns the ledger's schedule as this process last read or committed it (another
// process may have changed it since: ScheduleOfRecord reads the file).
func (l *Ledger) Schedule() Schedule {
	if s := l.schedule.Load(); s != nil {
		return *s
	}
	return DefaultSchedule
}

// ScheduleOfRecord reads the schedule from the ledger's file: what the last settings fact applied
// there set, whichever process applied it.
func (l *Ledger) ScheduleOfRecord(ctx context.Context) (Schedule, error) {
	if err := l.loadSchedule(ctx); err != nil {
		return Schedule{}, err
	}
	return l.Schedule(), nil
}

// loadSchedule reads the schedule of record into the ledger.
func (l *Ledger) loadSchedule(ctx context.Context) error {
	s, err := readSchedule(ctx, l.db())
	if err != nil {
		return err
	}
	l.schedule.Store(&s)
	return nil
}

// readSchedule reads the schedule of record through q (the defaults when no fact set one).
func readSchedule(ctx context.Context, q sqlx.QueryerContext) (Schedule, error) {
	var first, verify, skew int64
	err := q.QueryRowxContext(ctx, `SELECT first_check_after_ns, verify_after_ns, max_skew_ns FROM schedule_settings WHERE id = 1`).
		Scan(&first, &verify, &skew)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return DefaultSchedule, nil
	case err != nil:
		return Schedule{}, fmt.Errorf("schedule settings: %w", err)
	}
	return Schedule{FirstCheckAfter: time.Duration(first), VerifyAfter: time.Duration(verify), MaxSkew: time.Duration(skew)}, nil
}

// Schedule returns the schedule the transaction applies with.
func (t *Tx) Schedule() Schedule { return t.schedule }

// SetSchedule makes s the ledger's schedule from this point of the stream on (by names who set it).
// The rows written before keep theirs.
func (t *Tx) SetSchedule(ctx context.Context, s Schedule, by string) error {
	if s.FirstCheckAfter < 0 || s.VerifyAfter < 0 || s.MaxSkew < 0 {
		return fmt.Errorf("schedule settings %+v: durations must not be negative", s)
	}
	if err := t.Barrier(ctx); err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO schedule_settings (id, first_check_after_ns, verify_after_ns, max_skew_ns, set_at, set_by)
		VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET first_check_after_ns = excluded.first_check_after_ns,
		verify_after_ns = excluded.verify_after_ns, max_skew_ns = excluded.max_skew_ns, set_at = excluded.set_at, set_by = excluded.set_by`,
		int64(s.FirstCheckAfter), int64(s.VerifyAfter), int64(s.MaxSkew), fmtTime(t.now), by); err != nil {
		return fmt.Errorf("schedule settings: %w", err)
	}
	// Open payments never checked yet take the new first check: their schedule is still the
	// one the old setting gave them.
	if s.FirstCheckAfter != t.schedule.FirstCheckAfter {
		rows, err := t.tx.QueryContext(ctx, `SELECT id, first_seen_at FROM payments WHERE final = 0 AND last_checked_at IS NULL`)
		if err != nil {
			return fmt.Errorf("schedule settings: %w", err)
		}
		type due struct{ id, first string }
		var all []due
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.id, &d.first); err != nil {
				rows.Close()
				return fmt.Errorf("schedule settings: %w", err)
			}
			all = append(all, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("schedule settings: %w", err)
		}
		for _, d := range all {
			if err := t.Reschedule(ctx, d.id, parseTime(sql.NullString{String: d.first, Valid: true}).Add(s.FirstCheckAfter)); err != nil {
				return err
			}
		}
	}
	t.schedule, t.scheduleSet = s, true
	return nil
}

// SetSchedule makes s the ledger's schedule in a transaction of its own: for tests and tools
// that build a ledger directly. The reconciler sets it only through a settings fact on the stream.
func (l *Ledger) SetSchedule(ctx context.Context, s Schedule, by string) error {
	return l.Update(ctx, func(tx *Tx) error { return tx.SetSchedule(ctx, s, by) })
}

// db is the reader pool once open, the writer while opening.
func (l *Ledger) db() *sqlx.DB {
	if l.r != nil {
		return l.r
	}
	return l.w
}
