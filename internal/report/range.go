package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"knetrecon/internal/store"
)

// Range is finance's report over several days: the money that counts in them (the sum of the
// daily reports') and one row per payment with where it stands, its refunds, KNET's ids and its
// settlement by the bank.
type Range struct {
	From        string    `json:"from"`
	To          string    `json:"to"`
	TimeZone    string    `json:"time_zone"`
	GeneratedAt time.Time `json:"generated_at"`
	// Totals is the money that counts in the days, per currency (as in the daily reports).
	Totals   []Totals           `json:"totals"`
	Payments []store.PaymentRow `json:"payments"`

	loc *time.Location
}

// location is the report's time zone.
func (r *Range) location() *time.Location {
	if r.loc != nil {
		return r.loc
	}
	return locationOf(r.TimeZone)
}

// WriteRangeFiles writes the range report into dir as range-<from>_<to>.json, .csv, .xlsx and
// .totals.csv (each whole or not at all) and returns their paths.
func WriteRangeFiles(dir string, r *Range) ([]string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("report range: %w", err)
	}
	var paths []string
	for _, f := range []struct {
		ext   string
		write func(io.Writer) error
	}{{".json", r.WriteJSON}, {".csv", r.WriteCSV}, {".xlsx", r.WriteXLSX}, {TotalsExt, r.WriteTotalsCSV}} {
		path := filepath.Join(dir, "range-"+r.From+"_"+r.To+f.ext)
		if err := writeAtomic(path, f.write); err != nil {
			return paths, fmt.Errorf("report range: %w", err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// BuildRange makes the report of the days from..to (YYYY-MM-DD in loc, both included).
func BuildRange(ctx context.Context, l *store.Ledger, from, to string, loc *time.Location, now time.Time) (*Range, error) {
	start, _, err := Day(from, loc)
	if err != nil {
		return nil, err
	}
	_, end, err := Day(to, loc)
	if err != nil {
		return nil, err
	}
	if !end.After(start) {
		return nil, fmt.Errorf("report range %s to %s: the end is before the start", from, to)
	}
	r := &Range{From: from, To: to, TimeZone: loc.String(), GeneratedAt: now, loc: loc}
	lines, _, err := l.PostingLines(ctx, start, end)
	if err != nil {
		return nil, fmt.Errorf("report range: %w", err)
	}
	r.Totals = totals(lines)
	if r.Payments, err = l.PaymentRows(ctx, start, end); err != nil {
		return nil, fmt.Errorf("report range: %w", err)
	}
	if r.Payments == nil {
		r.Payments = []store.PaymentRow{}
	}
	return r, nil
}

// RangeHeader is the first row of Range.WriteCSV.
var RangeHeader = []string{"payment_id", "reference", "status", "currency", "amount", "captured", "refunded", "refund_kind",
	"knet_payment_id", "knet_transaction_id", "bank_reference", "post_date", "first_seen_at", "settlement"}

// WriteJSON writes the range report as indented JSON.
func (r *Range) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteCSV writes one row per payment and nothing else (the totals are WriteTotalsCSV's):
// amounts as decimals with the currency's digits, refunded negative; a UTF-8 byte order mark and
// local Excel-readable times.
func (r *Range) WriteCSV(w io.Writer) error {
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return err
	}
	loc := r.location()
	cw := csv.NewWriter(w)
	if err := cw.Write(RangeHeader); err != nil {
		return err
	}
	for _, p := range r.Payments {
		if err := cw.Write([]string{p.ID, cell(p.Reference), p.Status, p.Currency, decimal(p.Amount, p.Currency),
			decimal(p.Captured, p.Currency), decimal(-p.Refunded, p.Currency), p.RefundKind, cell(p.KNETPaymentID),
			cell(p.KNETTransactionID), cell(p.BankReference), cell(p.PostDate), p.FirstSeenAt.In(loc).Format(ExcelTime), p.Settlement}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteTotalsCSV writes the range's money per currency (see TotalsHeader), section "range".
func (r *Range) WriteTotalsCSV(w io.Writer) error {
	return writeTotalsCSV(w, r.From, r.To, []section{{"range", r.Totals}})
}

// WriteText writes the totals and a line per payment.
func (r *Range) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "knetrecon report %s to %s (%s)\n", r.From, r.To, r.TimeZone)
	for _, t := range r.Totals {
		fmt.Fprintf(w, "  %s  captures %d: %s  refunds %d: %s  net %s\n", t.Currency, t.Captures, decimal(t.Captured, t.Currency),
			t.Refunds, decimal(t.Refunded, t.Currency), decimal(t.Net, t.Currency))
	}
	fmt.Fprintf(w, "payments: %d\n", len(r.Payments))
	for _, p := range r.Payments {
		fmt.Fprintf(w, "  %-30s %-20s %-18s captured %10s refunded %10s %-7s KNET %s %s\n", p.ID, p.Reference, p.Status,
			decimal(p.Captured, p.Currency), decimal(p.Refunded, p.Currency), p.RefundKind, p.KNETTransactionID, p.Settlement)
	}
	return nil
}

// WriteXLSX writes the range as a workbook: Summary (the money per currency), Payments (one row
// per payment: amount, captured, refunded negative, per currency) and About (the period). See
// WriteXLSX of Daily for the form of the sheets.
func (r *Range) WriteXLSX(w io.Writer) error {
	b := newBook()
	defer b.f.Close()
	loc := r.location()
	var cs []string
	for _, t := range r.Totals {
		cs = append(cs, t.Currency)
	}
	for _, p := range r.Payments {
		cs = append(cs, p.Currency)
	}
	curs := currencies(cs)
	if err := writeTable(b, summaryTable(r.Totals, nil), curs); err != nil {
		return err
	}
	text := func(get func(store.PaymentRow) string) func(store.PaymentRow) any {
		return func(p store.PaymentRow) any { return get(p) }
	}
	if err := writeTable(b, table[store.PaymentRow]{
		sheet: "Payments", rows: r.Payments, currency: func(p store.PaymentRow) string { return p.Currency },
		lead: []column[store.PaymentRow]{
			{"payment_id", text(func(p store.PaymentRow) string { return p.ID })},
			{"reference", text(func(p store.PaymentRow) string { return p.Reference })},
			{"status", text(func(p store.PaymentRow) string { return p.Status })},
			{"currency", text(func(p store.PaymentRow) string { return p.Currency })},
		},
		money: []money[store.PaymentRow]{
			{"amount", func(p store.PaymentRow) (int64, bool) { return p.Amount, true }},
			{"captured", func(p store.PaymentRow) (int64, bool) { return p.Captured, true }},
			{"refunded", func(p store.PaymentRow) (int64, bool) { return -p.Refunded, true }},
		},
		tail: []column[store.PaymentRow]{
			{"refund_kind", text(func(p store.PaymentRow) string { return p.RefundKind })},
			{"knet_payment_id", text(func(p store.PaymentRow) string { return p.KNETPaymentID })},
			{"knet_transaction_id", text(func(p store.PaymentRow) string { return p.KNETTransactionID })},
			{"bank_reference", text(func(p store.PaymentRow) string { return p.BankReference })},
			{"post_date", text(func(p store.PaymentRow) string { return p.PostDate })},
			{"first_seen_at", func(p store.PaymentRow) any { return p.FirstSeenAt.In(loc) }},
			{"settlement", text(func(p store.PaymentRow) string { return p.Settlement })},
		},
	}, curs); err != nil {
		return err
	}
	var about []fact
	if from, _, err := Day(r.From, loc); err == nil {
		about = append(about, fact{"from", dateOnly(from)})
	}
	if to, _, err := Day(r.To, loc); err == nil {
		about = append(about, fact{"to (included)", dateOnly(to)})
	}
	about = append(about, fact{"time zone", r.TimeZone}, fact{"generated at", r.GeneratedAt.In(loc)},
		fact{"payments", int64(len(r.Payments))})
	if err := writeTable(b, aboutTable(about), nil); err != nil {
		return err
	}
	return b.write(w)
}

// locationOf loads a time zone by name, UTC when it is unknown.
func locationOf(name string) *time.Location {
	if loc, err := time.LoadLocation(name); err == nil {
		return loc
	}
	return time.UTC
}
