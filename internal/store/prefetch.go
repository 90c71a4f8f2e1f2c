package store

import (
	"context"
	"database/sql"
	"strings"

	"github.com/jmoiron/sqlx"
)

// txCache holds what Prefetch read for a batch and what the batch wrote since, so that Apply
// looks each input up in memory instead of in three queries. A key that is absent was not
// prefetched (Apply asks the database); an empty or nil value means "known not to exist".
type txCache struct {
	hashes   map[string]string      // event id → body hash, "" = no such event
	payments map[string]*paymentRow // payment id → row, nil = no such payment
	postings map[string]*postingRow // action id → posting, nil = no such posting
}

// postingRow is what Apply needs of an existing posting.
type postingRow struct {
	PaymentID, Kind, State string
	Amount                 int64
}

// Prefetch reads in three queries the events, payments and postings that Apply would look up for
// ins, one by one, and keeps them for the rest of the transaction. It is how a batch pays for its
// reads once instead of once per event. Only the optimistic run of Update uses it: with real
// savepoints a rolled-back event would leave the cache ahead of the database, so that run reads
// row by row.
func (t *Tx) Prefetch(ctx context.Context, ins []Input) error {
	if !t.optimistic || len(ins) == 0 {
		return nil
	}
	c := &txCache{hashes: map[string]string{}, payments: map[string]*paymentRow{}, postings: map[string]*postingRow{}}
	var evIDs, payIDs, actIDs []string
	for i := range ins {
		in := &ins[i]
		if _, ok := c.hashes[in.EventID]; !ok && in.EventID != "" {
			c.hashes[in.EventID] = ""
			evIDs = append(evIDs, in.EventID)
		}
		if _, ok := c.payments[in.PaymentID]; !ok && in.PaymentID != "" {
			c.payments[in.PaymentID] = nil
			payIDs = append(payIDs, in.PaymentID)
		}
		if _, ok := c.postings[in.ActionID]; !ok && in.ActionID != "" {
			c.postings[in.ActionID] = nil
			actIDs = append(actIDs, in.ActionID)
		}
	}
	if err := t.selectIn(ctx, `SELECT id, body_hash FROM events WHERE id IN `, evIDs, func(r *sqlx.Rows) error {
		var id, h string
		if err := r.Scan(&id, &h); err != nil {
			return err
		}
		c.hashes[id] = h
		return nil
	}); err != nil {
		return err
	}
	if err := t.selectIn(ctx, `SELECT `+paymentRowColumns+` FROM payments WHERE id IN `, payIDs, func(r *sqlx.Rows) error {
		p, err := scanPaymentRow(r)
		if err != nil {
			return err
		}
		c.payments[p.ID] = p
		return nil
	}); err != nil {
		return err
	}
	if err := t.selectIn(ctx, `SELECT action_id, payment_id, kind, amount, state FROM postings WHERE action_id IN `, actIDs, func(r *sqlx.Rows) error {
		var id string
		var p postingRow
		if err := r.Scan(&id, &p.PaymentID, &p.Kind, &p.Amount, &p.State); err != nil {
			return err
		}
		c.postings[id] = &p
		return nil
	}); err != nil {
		return err
	}
	t.cache = c
	return nil
}

// selectIn runs query with "(?, ?, …)" appended for ids, in chunks, calling scan for each row.
func (t *Tx) selectIn(ctx context.Context, query string, ids []string, scan func(*sqlx.Rows) error) error {
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		rows, err := t.tx.QueryxContext(ctx, query+"(?"+strings.Repeat(", ?", n-1)+")", args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// eventHash returns the stored body hash of event id, or sql.ErrNoRows.
func (t *Tx) eventHash(ctx context.Context, id string) (string, error) {
	if t.cache != nil {
		if h, ok := t.cache.hashes[id]; ok {
			if h == "" {
				return "", sql.ErrNoRows
			}
			return h, nil
		}
	}
	var h string
	err := t.stmt("eventHash").QueryRowContext(ctx, id).Scan(&h)
	return h, err
}

// posting returns the posting of action id, or sql.ErrNoRows.
func (t *Tx) posting(ctx context.Context, actionID string) (*postingRow, error) {
	if t.cache != nil {
		if p, ok := t.cache.postings[actionID]; ok {
			if p == nil {
				return nil, sql.ErrNoRows
			}
			return p, nil
		}
	}
	var p postingRow
	err := t.stmt("posting").QueryRowContext(ctx, actionID).Scan(&p.PaymentID, &p.Kind, &p.Amount, &p.State)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// cachedPayment returns a copy of the cached row of id: (row, true) when it exists, (nil, true)
// when it is known not to, (nil, false) when it was not prefetched.
func (t *Tx) cachedPayment(id string) (*paymentRow, bool) {
	if t.cache == nil {
		return nil, false
	}
	p, ok := t.cache.payments[id]
	if !ok || p == nil {
		return nil, ok
	}
	cp := *p
	return &cp, true
}

// remember* keep the cache in step with what the transaction writes.
func (t *Tx) rememberEvent(id, hash string) {
	if t.cache != nil {
		t.cache.hashes[id] = hash
	}
}

func (t *Tx) rememberPayment(p *paymentRow) {
	if t.cache != nil {
		cp := *p
		t.cache.payments[p.ID] = &cp
	}
}

func (t *Tx) rememberPosting(actionID string, p postingRow) {
	if t.cache != nil {
		t.cache.postings[actionID] = &p
	}
}
