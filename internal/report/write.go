package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// CSVHeader is the first row of WriteCSV: one row per posting that counts on the day, "late" in
// the line column for those Checkout.com made on an earlier day ("day" for the others), and
// nothing else: the totals are in their own file (WriteTotalsCSV). Times are in the report's time
// zone as 2006-01-02 15:04:05 (a form spreadsheets read as a date). Each money column (postingMoney)
// is written twice, in minor units (amount_minor) and as decimals with the currency's digits
// (amount), signed as it moves the merchant's money: a capture positive, a refund negative, so
// that the amount column's SUM (per currency) is the day's net. A held refund moves nothing yet:
// its amount is blank and held says what it will take. The file starts with a UTF-8 byte order
// mark, so that Excel reads it as UTF-8.
var CSVHeader = csvHeader()

func csvHeader() []string {
	h := []string{"date", "line", "occurred_at", "learned_at", "payment_id", "reference", "action_id", "kind", "state"}
	for _, m := range postingMoney {
		h = append(h, m.header+"_minor", m.header)
	}
	return append(h, "currency", "origin", "event_id", "counted_at")
}

// TotalsHeader is the first row of the totals files (WriteTotalsCSV): one row per section and
// currency, the counts, then the money (totalsMoney) as decimals with the currency's digits:
// captured, refunded (negative), net = captured + refunded, held (negative, not in the net). A
// daily report's sections are "day" (the money that counts on the day) and "late (included in
// day)" (the part of it Checkout.com made on an earlier day); a range's is "range".
var TotalsHeader = totalsHeader()

func totalsHeader() []string {
	h := []string{"from", "to", "section", "currency", "captures", "refunds", "held_refunds"}
	for _, m := range totalsMoney {
		h = append(h, m.header)
	}
	return h
}

// TotalsExt ends the name of a report's totals file: 2026-11-25.totals.csv beside 2026-11-25.csv.
const TotalsExt = ".totals.csv"

// WriteJSON writes the report as indented JSON.
func (d *Daily) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// ExcelTime is the form of every time in the CSV: local to the report's zone, read by
// spreadsheets as a date and time.
const ExcelTime = "2006-01-02 15:04:05"

// WriteCSV writes the report's postings, one row each (see CSVHeader).
func (d *Daily) WriteCSV(w io.Writer) error {
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	loc := d.From.Location()
	for _, pl := range d.Postings {
		row := []string{d.Date, lineOf(pl, d.From), pl.OccurredAt.In(loc).Format(ExcelTime), pl.LearnedAt.In(loc).Format(ExcelTime),
			pl.PaymentID, cell(pl.Reference), pl.ActionID, pl.Kind, pl.State}
		for _, m := range postingMoney {
			if v, ok := m.value(pl); ok {
				row = append(row, strconv.FormatInt(v, 10), decimal(v, pl.Currency))
			} else {
				row = append(row, "", "")
			}
		}
		row = append(row, pl.Currency, pl.Origin, pl.EventID, pl.CountedAt.In(loc).Format(ExcelTime))
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteTotalsCSV writes the day's money per currency (see TotalsHeader).
func (d *Daily) WriteTotalsCSV(w io.Writer) error {
	return writeTotalsCSV(w, d.Date, d.Date, []section{{"day", d.Totals}, {"late (included in day)", d.Late}})
}

// section is a titled list of totals, a row each in a totals file.
type section struct {
	name   string
	totals []Totals
}

// writeTotalsCSV writes the totals file of the period from..to (see TotalsHeader).
func writeTotalsCSV(w io.Writer, from, to string, sections []section) error {
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(TotalsHeader); err != nil {
		return err
	}
	for _, s := range sections {
		for _, t := range s.totals {
			row := []string{from, to, s.name, t.Currency, strconv.FormatInt(t.Captures, 10), strconv.FormatInt(t.Refunds, 10),
				strconv.FormatInt(t.HeldRefunds, 10)}
			for _, m := range totalsMoney {
				v, _ := m.value(t)
				row = append(row, decimal(v, t.Currency))
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// cell keeps a text a spreadsheet would run as a formula inert, with a ' as OWASP advises: before
// a text that starts with =, +, -, @, a tab or a line break, also after spaces or no-break spaces
// (spreadsheets trim them on import); and after each ; followed by one, since a spreadsheet whose
// list separator is ; (as in Kuwait's Arabic locales) splits the comma-separated line there, quotes
// or not, and would start a cell with it: "a;=1+1" is written "a;'=1+1".
func cell(s string) string {
	if !strings.ContainsAny(s, "=+-@\t\r\n") {
		return s
	}
	parts := strings.Split(s, ";")
	for i, p := range parts {
		if formula(p) {
			parts[i] = "'" + p
		}
	}
	return strings.Join(parts, ";")
}

// formula reports whether a spreadsheet may read s as a formula: its first character, after any
// spaces (a no-break space too) or quotes, is =, +, -, @, a tab or a line break.
func formula(s string) bool {
	s = strings.TrimLeftFunc(s, func(r rune) bool { return r == ' ' || r == '"' || unicode.Is(unicode.Zs, r) })
	return s != "" && strings.ContainsRune("=+-@\t\r\n", rune(s[0]))
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
			if t.BankSettled > 0 {
				fmt.Fprintf(&b, "\n    the bank paid %d of them: commission %s, net %s", t.BankSettled, decimal(t.BankFee, t.Currency),
					decimal(t.BankNet, t.Currency))
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

// WriteFiles writes the report into dir as <date>.json, <date>.csv, <date>.xlsx and
// <date>.totals.csv and returns their paths, in that order. A report once written is kept: if the day's latest revision in dir holds the same
// money (totals and postings), nothing is written and its paths are returned; if the money differs
// (the report was built before the ledger held the day, or postings landed on the day since), a
// new revision is written beside it, <date>.r2.json, .csv, .xlsx and .totals.csv, listing what changed since. Never
// a silent rewrite. Each file is written whole or not at all: a temporary file, synced, then
// renamed.
func WriteFiles(dir string, d *Daily) ([]string, error) {
	paths, _, err := WriteRevision(dir, d)
	return paths, err
}

// WriteRevision is WriteFiles, and also says whether it wrote anything: false when the latest
// revision in dir already holds the same money (its paths are returned, and d takes its revision
// number).
func WriteRevision(dir string, d *Daily) (paths []string, written bool, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, false, fmt.Errorf("report %s: %w", d.Date, err)
	}
	prev, prevName, err := latestRevision(dir, d.Date)
	if err != nil {
		return nil, false, fmt.Errorf("report %s: %w", d.Date, err)
	}
	name := d.Date
	d.Revision, d.Changes = 1, nil
	if prev != nil {
		changes := diff(prev, d)
		if changes == nil {
			d.Revision = max(prev.Revision, 1)
			paths = []string{filepath.Join(dir, prevName+".json"), filepath.Join(dir, prevName+".csv"), filepath.Join(dir, prevName+".xlsx")}
			if totals := filepath.Join(dir, prevName+TotalsExt); exists(totals) {
				paths = append(paths, totals) // revisions written before the totals had their own file have none
			}
			return paths, false, nil
		}
		d.Revision, d.Changes = max(prev.Revision, 1)+1, changes
		name = fmt.Sprintf("%s.r%d", d.Date, d.Revision)
	}
	for _, f := range []struct {
		ext   string
		write func(io.Writer) error
	}{{".json", d.WriteJSON}, {".csv", d.WriteCSV}, {".xlsx", d.WriteXLSX}, {TotalsExt, d.WriteTotalsCSV}} {
		path := filepath.Join(dir, name+f.ext)
		if err := writeAtomic(path, f.write); err != nil {
			return paths, false, fmt.Errorf("report %s: %w", d.Date, err)
		}
		paths = append(paths, path)
	}
	return paths, true, nil
}

// Latest reads the latest written revision of date's report in dir: nil when none is written.
func Latest(dir, date string) (*Daily, error) {
	d, _, err := latestRevision(dir, date)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", date, err)
	}
	return d, nil
}

// Money is a digest of the money a day's postings hold: two lists of postings with the same Money
// hold the same postings (action, state, amount), so the same totals, and WriteFiles would write
// no new revision for one over the other. It lets a reconciler see whether a written day changed,
// from the postings alone, without building the whole report.
func Money(postings []store.PostingLine) string {
	keys := make([]string, len(postings))
	for i, pl := range postings {
		keys[i] = moneyKey(pl)
	}
	slices.Sort(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	return hex.EncodeToString(sum[:])
}

// moneyKey names a posting's money: the same action, state and amount is the same money.
func moneyKey(pl store.PostingLine) string {
	return pl.ActionID + "/" + pl.State + "/" + strconv.FormatInt(pl.Amount, 10)
}

// Changes is what a revision of a day's report changed since the previous one.
type Changes struct {
	PreviousRevision    int       `json:"previous_revision"`
	PreviousGeneratedAt time.Time `json:"previous_generated_at"`
	// PreviousStreamPosition is the stream position the previous revision was built at.
	PreviousStreamPosition uint64              `json:"previous_stream_position,omitempty"`
	TotalsBefore           []Totals            `json:"totals_before"`
	PostingsAdded          []store.PostingLine `json:"postings_added"`
	PostingsRemoved        []store.PostingLine `json:"postings_removed"`
}

// Written returns the path of the latest written revision of date's report in format ext
// ("csv", "json", "xlsx" or "totals.csv") in dir; ok is false when none was written.
func Written(dir, date, ext string) (path string, ok bool) {
	if _, _, err := Day(date, time.UTC); err != nil || dir == "" {
		return "", false
	}
	name := latestName(dir, date)
	path = filepath.Join(dir, name+"."+ext)
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	return path, true
}

// latestName is the file name, without extension, of date's highest revision in dir.
func latestName(dir, date string) string {
	name := date
	for r := 2; ; r++ {
		next := fmt.Sprintf("%s.r%d", date, r)
		if _, err := os.Stat(filepath.Join(dir, next+".json")); err != nil {
			break
		}
		name = next
	}
	return name
}

// latestRevision reads the highest revision of date's report in dir (nil when there is none).
func latestRevision(dir, date string) (*Daily, string, error) {
	name := latestName(dir, date)
	raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var d Daily
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, "", fmt.Errorf("%s.json: %w", name, err)
	}
	return &d, name, nil
}

// diff says how d's money differs from prev's: nil when totals and postings are the same.
func diff(prev, d *Daily) *Changes {
	key := moneyKey
	before, now := map[string]bool{}, map[string]bool{}
	for _, pl := range prev.Postings {
		before[key(pl)] = true
	}
	c := &Changes{PreviousRevision: max(prev.Revision, 1), PreviousGeneratedAt: prev.GeneratedAt,
		PreviousStreamPosition: prev.StreamPosition, TotalsBefore: prev.Totals,
		PostingsAdded: []store.PostingLine{}, PostingsRemoved: []store.PostingLine{}}
	for _, pl := range d.Postings {
		now[key(pl)] = true
		if !before[key(pl)] {
			c.PostingsAdded = append(c.PostingsAdded, pl)
		}
	}
	for _, pl := range prev.Postings {
		if !now[key(pl)] {
			c.PostingsRemoved = append(c.PostingsRemoved, pl)
		}
	}
	if len(c.PostingsAdded) == 0 && len(c.PostingsRemoved) == 0 && reflect.DeepEqual(normal(prev.Totals), normal(d.Totals)) {
		return nil
	}
	return c
}

// normal makes an empty and a nil totals list equal, without what the bank's statement taught
// since (its commission and net are news about the day's money, not a change of it).
func normal(t []Totals) []Totals {
	if len(t) == 0 {
		return nil
	}
	out := make([]Totals, len(t))
	for i, x := range t {
		x.BankSettled, x.BankFee, x.BankNet = 0, 0, 0
		out[i] = x
	}
	return out
}

// exists reports whether path is a regular file.
func exists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
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
