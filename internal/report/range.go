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

	"github.com/xuri/excelize/v2"

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

// WriteRangeFiles writes the range report into dir as range-<from>_<to>.json, .csv and .xlsx
// (each whole or not at all) and returns their paths.
func WriteRangeFiles(dir string, r *Range) ([]string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("report range: %w", err)
	}
	var paths []string
	for _, f := range []struct {
		ext   string
		write func(io.Writer) error
	}{{".json", r.WriteJSON}, {".csv", r.WriteCSV}, {".xlsx", r.WriteXLSX}} {
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

// WriteCSV writes one row per payment (amounts as decimals with the currency's digits), then a
// total row per currency, with a UTF-8 byte order mark and local Excel-readable times.
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
			decimal(p.Captured, p.Currency), decimal(p.Refunded, p.Currency), p.RefundKind, cell(p.KNETPaymentID),
			cell(p.KNETTransactionID), cell(p.BankReference), cell(p.PostDate), p.FirstSeenAt.In(loc).Format(ExcelTime), p.Settlement}); err != nil {
			return err
		}
	}
	for _, t := range r.Totals {
		if err := cw.Write([]string{"total", "", "", t.Currency, "", decimal(t.Captured, t.Currency), decimal(t.Refunded, t.Currency),
			"net " + decimal(t.Net, t.Currency), "", "", "", "", "", ""}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
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

// WriteXLSX writes the range as a workbook: Summary (totals) and Payments sheets, typed cells.
func (r *Range) WriteXLSX(w io.Writer) error {
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", "Summary"); err != nil {
		return err
	}
	set := func(sheet string, row int, vals ...any) {
		for c, v := range vals {
			ref, _ := excelize.CoordinatesToCellName(c+1, row)
			_ = f.SetCellValue(sheet, ref, v)
		}
	}
	set("Summary", 1, "from", r.From, "to", r.To, "time zone", r.TimeZone)
	set("Summary", 3, "currency", "captures", "captured (minor units)", "refunds", "refunded (minor units)", "net (minor units)")
	for i, t := range r.Totals {
		set("Summary", 4+i, t.Currency, t.Captures, t.Captured, t.Refunds, t.Refunded, t.Net)
	}
	if _, err := f.NewSheet("Payments"); err != nil {
		return err
	}
	loc := r.location()
	set("Payments", 1, "payment_id", "reference", "status", "currency", "amount_minor", "captured_minor", "refunded_minor",
		"refund_kind", "knet_payment_id", "knet_transaction_id", "bank_reference", "post_date", "first_seen_at", "settlement")
	for i, p := range r.Payments {
		set("Payments", 2+i, p.ID, p.Reference, p.Status, p.Currency, p.Amount, p.Captured, p.Refunded, p.RefundKind,
			p.KNETPaymentID, p.KNETTransactionID, p.BankReference, p.PostDate, p.FirstSeenAt.In(loc), p.Settlement)
	}
	_, err := f.WriteTo(w)
	return err
}

// locationOf loads a time zone by name, UTC when it is unknown.
func locationOf(name string) *time.Location {
	if loc, err := time.LoadLocation(name); err == nil {
		return loc
	}
	return time.UTC
}
