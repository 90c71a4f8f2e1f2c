// Package report writes finance's reconciliation report of a day from the ledger: the money that
// moved (captures, refunds, net, per currency), every posting by its action id so that it can be
// matched line by line against Checkout.com's statements, the money learned late that belongs to
// earlier days, where the day's payments stand, and what is still open. It reads the ledger and
// never writes to it.
package report

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// Daily is the reconciliation report of one calendar day in one time zone. Amounts are integers
// in the currency's minor unit (fils for KWD), as in the ledger. The JSON names are an interface
// finance scripts use: keep them stable.
type Daily struct {
	// Date is the day, YYYY-MM-DD, in TimeZone; From and To bound it (To excluded).
	Date        string    `json:"date"`
	TimeZone    string    `json:"time_zone"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	GeneratedAt time.Time `json:"generated_at"`
	// Totals is the money that counts on the day, per currency: every posting counts on the day
	// it was posted (a capture whose webhook came late on the day it came, a refund held for want
	// of a capture on the day a capture released it), or on its own day if that is later. So the
	// daily reports' nets add up to the ledger's, and a day's report does not change afterwards.
	Totals []Totals `json:"totals"`
	// Late is the part of Totals that Checkout.com made on an earlier day.
	Late []Totals `json:"late"`
	// Payments counts the payments requested on the day by where they stand now.
	Payments []store.StatusCount `json:"payments"`
	// DiscrepanciesDetected counts the day's discrepancies by kind; DiscrepanciesOpen all those
	// still open when the report was made.
	DiscrepanciesDetected map[payment.Kind]int64 `json:"discrepancies_detected"`
	DiscrepanciesOpen     map[payment.Kind]int64 `json:"discrepancies_open"`
	DeadLettersOpen       int64                  `json:"dead_letters_open"`
	// OpenPayments counts the payments not final when the report was made (all days).
	OpenPayments int64 `json:"open_payments"`
	// Balanced is the ledger's own check (store.Ledger.Verify); Imbalance says what is wrong.
	Balanced  bool   `json:"balanced"`
	Imbalance string `json:"imbalance,omitempty"`
	// Revision numbers the report's written versions (1 the first); Changes, on a later revision,
	// says what changed since the previous one (see WriteFiles).
	Revision int      `json:"revision,omitempty"`
	Changes  *Changes `json:"changes,omitempty"`
	// StreamPosition is the ledger's stream position when the report was built (read first): the
	// report holds every message up to that sequence.
	StreamPosition uint64 `json:"stream_position,omitempty"`
	// Postings are the postings that count on the day (LatePostings the late ones among them),
	// in the order they count.
	Postings     []store.PostingLine `json:"postings"`
	LatePostings []store.PostingLine `json:"late_postings"`
}

// Totals is the money of one currency.
type Totals struct {
	Currency string `json:"currency"`
	Captures int64  `json:"captures"`
	Captured int64  `json:"captured"`
	Refunds  int64  `json:"refunds"`
	Refunded int64  `json:"refunded"`
	// Net is captured minus refunded.
	Net int64 `json:"net"`
	// HeldRefunds and Held are the refunds that arrived on the day with no capture to cover
	// them (held; once released they count on their release day).
	HeldRefunds int64 `json:"held_refunds"`
	Held        int64 `json:"held"`
	// BankSettled counts the postings a line of the acquiring bank's statement paid (so far);
	// BankFee is the commission the bank kept on them, BankNet what it pays for them (captures
	// less commission, refunds taken off). Known once the statement is imported: they change no
	// revision of a written report.
	BankSettled int64 `json:"bank_settled,omitempty"`
	BankFee     int64 `json:"bank_fee,omitempty"`
	BankNet     int64 `json:"bank_net,omitempty"`
}

// Day returns the bounds of the calendar day date (YYYY-MM-DD) in loc.
func Day(date string, loc *time.Location) (from, to time.Time, err error) {
	d, err := time.ParseInLocation(time.DateOnly, date, loc)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("report date %q: want YYYY-MM-DD", date)
	}
	return d, d.AddDate(0, 0, 1), nil
}

// Yesterday returns the date before now's in loc: the last whole day.
func Yesterday(now time.Time, loc *time.Location) string {
	n := now.In(loc)
	return time.Date(n.Year(), n.Month(), n.Day()-1, 0, 0, 0, 0, loc).Format(time.DateOnly)
}

// Build makes the report of date in loc from the ledger, stamped now.
func Build(ctx context.Context, l *store.Ledger, date string, loc *time.Location, now time.Time) (*Daily, error) {
	from, to, err := Day(date, loc)
	if err != nil {
		return nil, err
	}
	d := &Daily{Date: date, TimeZone: loc.String(), From: from, To: to, GeneratedAt: now}
	if d.StreamPosition, err = l.Position(ctx); err != nil {
		return nil, fmt.Errorf("report %s: %w", date, err)
	}
	if d.Postings, d.LatePostings, err = l.PostingLines(ctx, from, to); err != nil {
		return nil, fmt.Errorf("report %s: %w", date, err)
	}
	d.Totals, d.Late = totals(d.Postings), totals(d.LatePostings)
	if d.Payments, err = l.PaymentsStarted(ctx, from, to); err != nil {
		return nil, fmt.Errorf("report %s: %w", date, err)
	}
	if d.DiscrepanciesDetected, err = l.DiscrepanciesDetected(ctx, from, to); err != nil {
		return nil, fmt.Errorf("report %s: %w", date, err)
	}
	if d.DeadLettersOpen, d.DiscrepanciesOpen, err = l.OpenCounts(ctx); err != nil {
		return nil, fmt.Errorf("report %s: %w", date, err)
	}
	if d.OpenPayments, err = l.OpenPayments(ctx); err != nil {
		return nil, fmt.Errorf("report %s: %w", date, err)
	}
	switch err := l.Verify(ctx); {
	case err == nil:
		d.Balanced = true
	case errors.Is(err, store.ErrUnbalanced):
		d.Imbalance = err.Error()
	default:
		return nil, fmt.Errorf("report %s: %w", date, err)
	}
	return d, nil
}

// totals sums postings per currency, in currency order.
func totals(lines []store.PostingLine) []Totals {
	by := map[string]*Totals{}
	for _, pl := range lines {
		t := by[pl.Currency]
		if t == nil {
			t = &Totals{Currency: pl.Currency}
			by[pl.Currency] = t
		}
		switch {
		case pl.State == "held":
			t.HeldRefunds++
			t.Held += pl.Amount
		case pl.Kind == "capture":
			t.Captures++
			t.Captured += pl.Amount
		default:
			t.Refunds++
			t.Refunded += pl.Amount
		}
		if pl.State != "held" && pl.BankNet != nil {
			t.BankSettled++
			t.BankNet += *pl.BankNet
			if pl.BankFee != nil {
				t.BankFee += *pl.BankFee
			}
		}
	}
	out := make([]Totals, 0, len(by))
	for _, t := range by {
		t.Net = t.Captured - t.Refunded
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Totals) int { return strings.Compare(a.Currency, b.Currency) })
	return out
}
