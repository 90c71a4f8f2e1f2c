package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"knetrecon/internal/payment"
)

// CSVHeader is the first row of WriteCSV: one row per posting that counts on the day, "late" in
// the line column for those Checkout.com made on an earlier day ("day" for the others), times in
// the report's time zone, amounts in minor units and as decimals.
var CSVHeader = []string{"date", "line", "occurred_at", "learned_at", "payment_id", "reference", "action_id",
	"kind", "state", "amount_minor", "amount", "currency", "origin", "event_id", "counted_at"}

// WriteJSON writes the report as indented JSON.
func (d *Daily) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// WriteCSV writes the report's postings, one row each (see CSVHeader).
func (d *Daily) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	loc := d.From.Location()
	for _, pl := range d.Postings {
		line := "day"
		if pl.OccurredAt.Before(d.From) {
			line = "late"
		}
		if err := cw.Write([]string{d.Date, line, pl.OccurredAt.In(loc).Format(time.RFC3339Nano),
			pl.LearnedAt.In(loc).Format(time.RFC3339Nano), pl.PaymentID, cell(pl.Reference), pl.ActionID,
			pl.Kind, pl.State, strconv.FormatInt(pl.Amount, 10), decimal(pl.Amount, pl.Currency), pl.Currency,
			pl.Origin, pl.EventID, pl.CountedAt.In(loc).Format(time.RFC3339Nano)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// cell keeps a text a spreadsheet would run as a formula inert (a leading ', as OWASP advises).
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// decimal writes minor units as the currency's decimal amount (1000 KWD → 1.000), or the integer
// for a currency without a known exponent.
func decimal(minor int64, currency string) string {
	s, err := payment.Format(minor, currency)
	if err != nil {
		return strconv.FormatInt(minor, 10)
	}
	return s
}

// WriteText writes the report for people.
func (d *Daily) WriteText(w io.Writer) error {
	var b bytes.Buffer
	loc := d.From.Location()
	fmt.Fprintf(&b, "reconciliation report %s (%s: %s to %s), made %s\n", d.Date, d.TimeZone,
		d.From.Format(time.RFC3339), d.To.Format(time.RFC3339), d.GeneratedAt.In(loc).Format(time.RFC3339))
	money := func(title string, ts []Totals) {
		fmt.Fprintln(&b, title)
		if len(ts) == 0 {
			fmt.Fprintln(&b, "  none")
		}
		for _, t := range ts {
			fmt.Fprintf(&b, "  %s  captures %d: %s  refunds %d: %s  net %s", t.Currency, t.Captures, decimal(t.Captured, t.Currency),
				t.Refunds, decimal(t.Refunded, t.Currency), decimal(t.Net, t.Currency))
			if t.HeldRefunds > 0 {
				fmt.Fprintf(&b, "  held refunds %d: %s", t.HeldRefunds, decimal(t.Held, t.Currency))
			}
			fmt.Fprintln(&b)
		}
	}
	money("money that counts on the day (posted on it):", d.Totals)
	money("of which Checkout.com made on an earlier day (a webhook learned late, a refund released from hold):", d.Late)
	fmt.Fprintln(&b, "payments requested on the day, by status now:")
	if len(d.Payments) == 0 {
		fmt.Fprintln(&b, "  none")
	}
	for _, c := range d.Payments {
		fmt.Fprintf(&b, "  %-20s %s %5d  %s\n", c.Status, c.Currency, c.Count, decimal(c.Amount, c.Currency))
	}
	fmt.Fprintf(&b, "discrepancies detected on the day: %s\n", kinds(d.DiscrepanciesDetected))
	fmt.Fprintf(&b, "open now: %d payments not final, discrepancies %s, %d dead letters\n",
		d.OpenPayments, kinds(d.DiscrepanciesOpen), d.DeadLettersOpen)
	if d.Balanced {
		fmt.Fprintln(&b, "ledger: balanced")
	} else {
		fmt.Fprintf(&b, "ledger: NOT BALANCED: %s\n", d.Imbalance)
	}
	fmt.Fprintf(&b, "postings: %d on the day, %d of them late (one row each with --format csv)\n", len(d.Postings), len(d.LatePostings))
	_, err := w.Write(b.Bytes())
	return err
}

func kinds(m map[payment.Kind]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteFiles writes the report into dir as <date>.json and <date>.csv and returns their paths.
// Each file is written whole or not at all: to a temporary file, synced, then renamed over the
// old one, so a reader never sees half a report.
func WriteFiles(dir string, d *Daily) ([]string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("report %s: %w", d.Date, err)
	}
	var paths []string
	for _, f := range []struct {
		ext   string
		write func(io.Writer) error
	}{{".json", d.WriteJSON}, {".csv", d.WriteCSV}} {
		path := filepath.Join(dir, d.Date+f.ext)
		if err := writeAtomic(path, f.write); err != nil {
			return paths, fmt.Errorf("report %s: %w", d.Date, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

func writeAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing left to remove
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o640); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
