package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"knetrecon/internal/payment"
)

// The desk's read-only queries: what its home page, search and lists need beyond the reports'
// and the CLI's queries. Each reads through an index, so a page costs the same on a ledger of a
// million payments.

// CountOpenSince counts the open (non-final) payments whose age base is before cutoff: the
// desk's "open past KNET's window" (OpenSince lists the oldest of them).
func (l *Ledger) CountOpenSince(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := l.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM payments INDEXED BY payments_due
		WHERE final = 0 AND MIN(COALESCE(requested_at, first_seen_at), first_seen_at) < ?`, fmtTime(cutoff)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count open payments: %w", err)
	}
	return n, nil
}

// DeskDiscrepancy is a discrepancy with its payment's amount, currency, reference and status,
// as the desk lists it (empty when the ledger has no such payment).
type DeskDiscrepancy struct {
	Discrepancy
	Amount    int64
	Currency  string
	Reference string
	Status    payment.Status
}

// DeskDiscrepancyFilter selects discrepancies for the desk's list; every field is optional.
type DeskDiscrepancyFilter struct {
	// ID selects one discrepancy (with State "all": whether open or not).
	ID   int64
	Kind payment.Kind
	// State is "open" (the default: the rule of Discrepancies), "resolved" or "all".
	State string
	// From and To bound detected_at.
	From, To time.Time
	Limit    int
}

// DeskDiscrepancies lists discrepancies matching f with their payments, newest first, at most
// f.Limit (default 50).
func (l *Ledger) DeskDiscrepancies(ctx context.Context, f DeskDiscrepancyFilter) ([]DeskDiscrepancy, error) {
	var where []string
	var args []any
	switch f.State {
	case "", "open":
		where = append(where, openDiscrepancy)
	case "resolved":
		where = append(where, "resolved_at IS NOT NULL")
	case "all":
	default:
		return nil, fmt.Errorf("discrepancy state %q: want open, resolved or all", f.State)
	}
	if f.ID != 0 {
		where, args = append(where, "discrepancies.id = ?"), append(args, f.ID)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, string(f.Kind))
	}
	if !f.From.IsZero() {
		where, args = append(where, "detected_at >= ?"), append(args, fmtTime(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "detected_at < ?"), append(args, fmtTime(f.To))
	}
	if f.Limit <= 0 {
		f.Limit = 50
	}
	q := `SELECT discrepancies.id, payment_id, kind, subject, details, event_id, discrepancies.origin, detected_at, resolved_at,
		resolution, resolved_by, COALESCE(p.amount, 0), COALESCE(p.currency, ''), COALESCE(p.reference, ''), COALESCE(p.status, '')
		FROM discrepancies LEFT JOIN payments p ON p.id = discrepancies.payment_id`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY discrepancies.id DESC LIMIT ?"
	args = append(args, f.Limit)
	rows, err := l.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("desk discrepancies: %w", err)
	}
	defer rows.Close()
	out := []DeskDiscrepancy{}
	for rows.Next() {
		var d DeskDiscrepancy
		var kind, details, status string
		var det, res sql.NullString
		if err := rows.Scan(&d.ID, &d.PaymentID, &kind, &d.Subject, &details, &d.EventID, &d.Origin, &det, &res, &d.Resolution, &d.ResolvedBy,
			&d.Amount, &d.Currency, &d.Reference, &status); err != nil {
			return nil, fmt.Errorf("desk discrepancies: %w", err)
		}
		d.Kind, d.Details, d.Status = payment.Kind(kind), json.RawMessage(details), payment.Status(status)
		d.DetectedAt, d.ResolvedAt = parseTime(det), timePtr(res)
		out = append(out, d)
	}
	return out, rows.Err()
}

// Stake is the money of the payments with an open discrepancy of one kind, in one currency:
// each payment counted once, at its amount or what was captured of it, whichever is more.
type Stake struct {
	Kind     payment.Kind
	Currency string
	Payments int64
	Amount   int64
}

// OpenStakes sums, by kind and currency, the amounts of the payments with an open discrepancy.
func (l *Ledger) OpenStakes(ctx context.Context) ([]Stake, error) {
	rows, err := l.r.QueryContext(ctx, `SELECT k.kind, COALESCE(p.currency, ''), COUNT(*), COALESCE(SUM(MAX(p.amount, p.captured)), 0)
		FROM (SELECT DISTINCT kind, payment_id FROM discrepancies WHERE `+openDiscrepancy+`) k
		LEFT JOIN payments p ON p.id = k.payment_id GROUP BY k.kind, p.currency ORDER BY k.kind, p.currency`)
	if err != nil {
		return nil, fmt.Errorf("open stakes: %w", err)
	}
	defer rows.Close()
	var out []Stake
	for rows.Next() {
		var s Stake
		var kind string
		if err := rows.Scan(&kind, &s.Currency, &s.Payments, &s.Amount); err != nil {
			return nil, fmt.Errorf("open stakes: %w", err)
		}
		s.Kind = payment.Kind(kind)
		out = append(out, s)
	}
	return out, rows.Err()
}

// SearchHit is a payment a search found, and which of its ids matched.
type SearchHit struct {
	Payment
	// Field names what matched ("payment id", "event id", "reference"…), Value its whole value.
	Field, Value string
}

// searchFields are where Search looks, each an indexed column: the query's ?1 and ?2 bound it.
var searchFields = []struct{ name, query string }{
	{"payment id", `SELECT id, id FROM payments WHERE id >= ?1 AND id < ?2`},
	{"reference", `SELECT id, reference FROM payments WHERE reference >= ?1 AND reference < ?2 AND reference != ''`},
	{"event id", `SELECT payment_id, id FROM events WHERE id >= ?1 AND id < ?2 AND payment_id IS NOT NULL`},
	{"action id", `SELECT payment_id, action_id FROM postings WHERE action_id >= ?1 AND action_id < ?2`},
	{"KNET payment id", `SELECT payment_id, knet_payment_id FROM knet_ids WHERE knet_payment_id >= ?1 AND knet_payment_id < ?2 AND knet_payment_id != ''`},
	{"KNET transaction id", `SELECT payment_id, knet_transaction_id FROM knet_ids WHERE knet_transaction_id >= ?1 AND knet_transaction_id < ?2 AND knet_transaction_id != ''`},
	{"bank reference", `SELECT payment_id, bank_reference FROM knet_ids WHERE bank_reference >= ?1 AND bank_reference < ?2 AND bank_reference != ''`},
}

// Search finds the payments whose id, merchant reference, event id, action id or KNET ids start
// with q, ignoring case, newest first, at most limit (default 50). Every column is read through
// its index: the prefix is walked one character at a time, keeping only the case forms some row
// starts with (casePrefixes), so "ord-7" finds "ORD-7…" and "Ord-7…" in a few index probes on a
// ledger of any size, with no case-folded copy of the columns.
func (l *Ledger) Search(ctx context.Context, q string, limit int) ([]SearchHit, error) {
	q = strings.TrimSpace(q)
	if q == "" {
		return nil, nil
	}
	if limit <= 0 {
		limit = 50
	}
	type match struct{ field, value string }
	found := map[string]match{}
	for _, f := range searchFields {
		prefixes, err := l.casePrefixes(ctx, f.query, q)
		if err != nil {
			return nil, fmt.Errorf("search %q: %w", q, err)
		}
		for _, v := range prefixes {
			rows, err := l.r.QueryContext(ctx, f.query+` LIMIT ?3`, v, v+"\xff", limit)
			if err != nil {
				return nil, fmt.Errorf("search %q: %w", q, err)
			}
			for rows.Next() {
				var id, value string
				if err := rows.Scan(&id, &value); err != nil {
					rows.Close()
					return nil, fmt.Errorf("search %q: %w", q, err)
				}
				if _, ok := found[id]; !ok {
					found[id] = match{f.name, value}
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("search %q: %w", q, err)
			}
		}
	}
	out := make([]SearchHit, 0, len(found))
	for id, m := range found {
		p, err := scanPayment(l.r.QueryRowxContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = ?`, id))
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("search %q: %w", q, err)
		}
		out = append(out, SearchHit{Payment: p, Field: m.field, Value: m.value})
	}
	slices.SortFunc(out, func(a, b SearchHit) int {
		if c := b.FirstSeenAt.Compare(a.FirstSeenAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// maxCaseForms bounds the case forms of a prefix followed at once (a column holding many
// spellings of one prefix in different cases is not what ids and references look like).
const maxCaseForms = 16

// casePrefixes returns the spellings of q, differing only in case, that some value of query's
// column starts with: q is walked one character at a time, each spelling so far extended by the
// character in lower and upper case and kept only if a row starts with it (one index probe).
func (l *Ledger) casePrefixes(ctx context.Context, query, q string) ([]string, error) {
	alive := []string{""}
	for _, r := range q {
		forms := []rune{r}
		for _, f := range []rune{unicode.ToLower(r), unicode.ToUpper(r)} {
			if !slices.Contains(forms, f) {
				forms = append(forms, f)
			}
		}
		var next []string
		for _, p := range alive {
			for _, f := range forms {
				cand := p + string(f)
				if len(forms) == 1 {
					next = append(next, cand) // no other case: the next letter's probe decides
					continue
				}
				var a, b string
				err := l.r.QueryRowContext(ctx, query+` LIMIT 1`, cand, cand+"\xff").Scan(&a, &b)
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				if err != nil {
					return nil, err
				}
				next = append(next, cand)
			}
		}
		if len(next) == 0 {
			return nil, nil
		}
		alive = next[:min(len(next), maxCaseForms)]
	}
	return alive, nil
}
