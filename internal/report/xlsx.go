package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/xuri/excelize/v2"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// WriteXLSX writes the report as an Excel workbook with typed cells: a Summary sheet (the money
// per currency, what is open, the ledger's check), then a sheet per section: Postings, Late,
// Payments, Discrepancies. Amounts are written twice, as the integer of minor units (the ledger's
// own figure) and as the decimal amount formatted to the currency's digits for people; times are
// dates in the report's time zone. (A spreadsheet keeps every number as a binary float: the
// decimal column is for reading; the minor-units column is exact.)
func (d *Daily) WriteXLSX(w io.Writer) error {
	f := excelize.NewFile()
	defer f.Close()
	loc := d.From.Location()
	bold, _ := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}})
	when, _ := f.NewStyle(&excelize.Style{CustomNumFmt: ptr("yyyy-mm-dd hh:mm:ss")})
	money := map[int]int{}
	moneyStyle := func(currency string) int {
		exp, err := payment.Exponent(currency)
		if err != nil {
			exp = 0
		}
		if id, ok := money[exp]; ok {
			return id
		}
		format := "#,##0"
		if exp > 0 {
			format += "." + strings.Repeat("0", exp)
		}
		id, _ := f.NewStyle(&excelize.Style{CustomNumFmt: &format})
		money[exp] = id
		return id
	}
	major := func(minor int64, currency string) float64 {
		exp, err := payment.Exponent(currency)
		if err != nil {
			return float64(minor)
		}
		div := 1.0
		for range exp {
			div *= 10
		}
		return float64(minor) / div
	}
	type row []any
	sheet := func(name string, header []string, rows []row, styles map[int]func(row) int) error {
		if name == "Summary" {
			if err := f.SetSheetName("Sheet1", name); err != nil {
				return err
			}
		} else if _, err := f.NewSheet(name); err != nil {
			return err
		}
		for c, h := range header {
			ref, _ := excelize.CoordinatesToCellName(c+1, 1)
			if err := f.SetCellValue(name, ref, h); err != nil {
				return err
			}
			_ = f.SetCellStyle(name, ref, ref, bold)
		}
		for r, rw := range rows {
			for c, v := range rw {
				ref, _ := excelize.CoordinatesToCellName(c+1, r+2)
				if err := f.SetCellValue(name, ref, v); err != nil {
					return err
				}
				if st, ok := styles[c]; ok {
					_ = f.SetCellStyle(name, ref, ref, st(rw))
				}
			}
		}
		return nil
	}
	// Summary: one row per currency and section.
	var summary []row
	for _, part := range []struct {
		name   string
		totals []Totals
	}{{"counts on the day", d.Totals}, {"of which made on an earlier day", d.Late}} {
		for _, t := range part.totals {
			summary = append(summary, row{part.name, t.Currency, t.Captures, major(t.Captured, t.Currency), t.Refunds,
				major(t.Refunded, t.Currency), major(t.Net, t.Currency), t.HeldRefunds, major(t.Held, t.Currency), t.Net})
		}
	}
	summary = append(summary, row{}, row{"date", d.Date}, row{"time zone", d.TimeZone},
		row{"generated at", d.GeneratedAt.In(loc).Format(ExcelTime)}, row{"revision", max(d.Revision, 1)},
		row{"payments not final", d.OpenPayments}, row{"dead letters open", d.DeadLettersOpen},
		row{"ledger balanced", d.Balanced}, row{"imbalance", d.Imbalance})
	moneyCol := func(rw row) int {
		if len(rw) > 1 {
			if c, ok := rw[1].(string); ok {
				return moneyStyle(c)
			}
		}
		return 0
	}
	if err := sheet("Summary", []string{"section", "currency", "captures", "captured", "refunds", "refunded", "net",
		"held refunds", "held", "net (minor units)"}, summary, map[int]func(row) int{3: moneyCol, 5: moneyCol, 6: moneyCol, 8: moneyCol}); err != nil {
		return err
	}
	postingRows := func(lines []store.PostingLine) []row {
		var out []row
		for _, pl := range lines {
			out = append(out, row{pl.OccurredAt.In(loc), pl.CountedAt.In(loc), pl.LearnedAt.In(loc), pl.PaymentID, pl.Reference,
				pl.ActionID, pl.Kind, pl.State, pl.Amount, major(pl.Amount, pl.Currency), pl.Currency, pl.Origin, pl.EventID})
		}
		return out
	}
	postingHeader := []string{"occurred_at", "counted_at", "learned_at", "payment_id", "reference", "action_id", "kind", "state",
		"amount_minor", "amount", "currency", "origin", "event_id"}
	postingStyles := map[int]func(row) int{0: func(row) int { return when }, 1: func(row) int { return when }, 2: func(row) int { return when },
		9: func(rw row) int { return moneyStyle(rw[10].(string)) }}
	if err := sheet("Postings", postingHeader, postingRows(d.Postings), postingStyles); err != nil {
		return err
	}
	if err := sheet("Late", postingHeader, postingRows(d.LatePostings), postingStyles); err != nil {
		return err
	}
	var payments []row
	for _, c := range d.Payments {
		payments = append(payments, row{string(c.Status), c.Currency, c.Count, major(c.Amount, c.Currency), c.Amount})
	}
	if err := sheet("Payments", []string{"status now", "currency", "payments requested on the day", "amount", "amount_minor"}, payments,
		map[int]func(row) int{3: func(rw row) int { return moneyStyle(rw[1].(string)) }}); err != nil {
		return err
	}
	var discrepancies []row
	for _, k := range slices.Sorted(maps.Keys(d.DiscrepanciesDetected)) {
		discrepancies = append(discrepancies, row{"detected on the day", string(k), d.DiscrepanciesDetected[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(d.DiscrepanciesOpen)) {
		discrepancies = append(discrepancies, row{"open now", string(k), d.DiscrepanciesOpen[k]})
	}
	if err := sheet("Discrepancies", []string{"which", "kind", "count"}, discrepancies, nil); err != nil {
		return err
	}
	f.SetActiveSheet(0)
	if _, err := f.WriteTo(w); err != nil {
		return fmt.Errorf("xlsx: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
