package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrStaleLease means a fact was made under a lease term older than the ledger's lease of record
// at its point of the stream: its holder had been replaced. It is never applied.
var ErrStaleLease = errors.New("stale lease")

// LeaseRecord is the highest lease term the stream has carried so far.
type LeaseRecord struct {
	Holder string `json:"holder"`
	Term   uint64 `json:"term"`
}

// FenceLease admits a fact made by holder under term of lease name: a term at or above the
// record is admitted (and a higher one becomes the record); an older one is ErrStaleLease.
func (t *Tx) FenceLease(ctx context.Context, name, holder string, term uint64) error {
	var rec LeaseRecord
	var n int64
	err := t.tx.QueryRowContext(ctx, `SELECT holder, term FROM lease_of_record WHERE name = ?`, name).Scan(&rec.Holder, &n)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("lease of record %s: %w", name, err)
	default:
		rec.Term = uint64(n)
	}
	if term < rec.Term {
		return fmt.Errorf("%w: made by %s under term %d of lease %s, which %s took over at term %d", ErrStaleLease, holder, term, name, rec.Holder, rec.Term)
	}
	if term == rec.Term && rec.Holder != "" {
		return nil
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO lease_of_record (name, holder, term, at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, term = excluded.term, at = excluded.at`,
		name, holder, int64(term), fmtTime(t.now)); err != nil {
		return fmt.Errorf("lease of record %s: %w", name, err)
	}
	return nil
}
