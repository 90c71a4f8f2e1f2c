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
	// Epoch is when the lease bucket was made; Term the bucket's revision at the take. Terms
	// compare by (Epoch, Term): a bucket made again starts its revisions low.
	Epoch int64  `json:"epoch"`
	Term  uint64 `json:"term"`
}

// older reports whether (epoch, term) comes before the record's.
func (r LeaseRecord) older(epoch int64, term uint64) bool {
	return epoch < r.Epoch || (epoch == r.Epoch && term < r.Term)
}

// FenceLease admits a fact made by holder under (epoch, term) of lease name: a term at or above
// the record is admitted (and a higher one becomes the record); an older one is ErrStaleLease.
func (t *Tx) FenceLease(ctx context.Context, name, holder string, epoch int64, term uint64) error {
	var rec LeaseRecord
	var n int64
	err := t.tx.QueryRowContext(ctx, `SELECT holder, epoch, term FROM lease_of_record WHERE name = ?`, name).Scan(&rec.Holder, &rec.Epoch, &n)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("lease of record %s: %w", name, err)
	default:
		rec.Term = uint64(n)
	}
	if rec.older(epoch, term) {
		return fmt.Errorf("%w: made by %s under term %d of lease %s, which %s took over at term %d", ErrStaleLease, holder, term, name, rec.Holder, rec.Term)
	}
	if epoch == rec.Epoch && term == rec.Term && rec.Holder != "" {
		return nil
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO lease_of_record (name, holder, epoch, term, at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = excluded.epoch, term = excluded.term, at = excluded.at`,
		name, holder, epoch, int64(term), fmtTime(t.now)); err != nil {
		return fmt.Errorf("lease of record %s: %w", name, err)
	}
	return nil
}
