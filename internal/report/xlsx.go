package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// The workbooks are written for a finance analyst who opens them in Excel or LibreOffice and
// filters, sorts and sums: every sheet is one table with its header in row 1 (bold, frozen, with
// filters) and columns as wide as their content. Times are real dates (numbers with a date
// format, in the report's time zone); amounts are numbers shown with their currency's decimals and
// signed as money moves for the merchant: captures positive, refunds (and, later, fees) negative,
// so that a column's SUM is the net. No column mixes currencies: each money column is written once
// per currency ("amount KWD", "amount USD"). The exact figures in minor units stay in the JSON and
// the CSV; a spreadsheet keeps every number as a binary float, which shows these amounts exactly
// at their currency's decimals.

// WriteXLSX writes the report as an Excel workbook: Summary (the day's money per currency),
// Postings (one row per posting that counts on the day), Late (those Checkout.com made on an
// earlier day), Payments (the day's payments by where they stand now), Discrepancies and About
// (the report's date, revision and checks). See docs/finance.md.
func (d *Daily) WriteXLSX(w io.Writer) error {
	b := newBook()
	defer b.f.Close()
	loc := d.From.Location()
	var cs []string
	for _, t := range d.Totals {
		cs = append(cs, t.Currency)
	}
	for _, p := range d.Payments {
		cs = append(cs, p.Currency)
	}
	curs := currencies(cs)
	late := map[string]int64{}
	for _, t := range d.Late {
		late[t.Currency] = t.Net
	}
	if err := writeTable(b, summaryTable(d.Totals, late), curs); err != nil {
		return err
	}
	postings := postingTable(d.From, loc)
	postings.rows = d.Postings
	if err := writeTable(b, postings, curs); err != nil {
		return err
	}
	postings.sheet, postings.rows = "Late", d.LatePostings
	if err := writeTable(b, postings, curs); err != nil {
		return err
	}
	if err := writeTable(b, table[store.StatusCount]{
		sheet: "Payments", rows: d.Payments, currency: func(c store.StatusCount) string { return c.Currency },
		lead: []column[store.StatusCount]{
			{"status now", func(c store.StatusCount) any { return string(c.Status) }},
			{"currency", func(c store.StatusCount) any { return c.Currency }},
			{"payments requested on the day", func(c store.StatusCount) any { return c.Count }},
		},
		money: []money[store.StatusCount]{{"amount", func(c store.StatusCount) (int64, bool) { return c.Amount, true }}},
	}, curs); err != nil {
		return err
	}
	type disc struct {
		which string
		kind  payment.Kind
		n     int64
	}
	var ds []disc
	for _, k := range slices.Sorted(maps.Keys(d.DiscrepanciesDetected)) {
		ds = append(ds, disc{"detected on the day", k, d.DiscrepanciesDetected[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(d.DiscrepanciesOpen)) {
		ds = append(ds, disc{"open now", k, d.DiscrepanciesOpen[k]})
	}
	if err := writeTable(b, table[disc]{sheet: "Discrepancies", rows: ds, lead: []column[disc]{
		{"which", func(x disc) any { return x.which }},
		{"kind", func(x disc) any { return string(x.kind) }},
		{"count", func(x disc) any { return x.n }},
	}}, nil); err != nil {
		return err
	}
	about := []fact{
		{"date", dateOnly(d.From)}, {"time zone", d.TimeZone}, {"from", d.From.In(loc)}, {"to (excluded)", d.To.In(loc)},
		{"generated at", d.GeneratedAt.In(loc)}, {"revision", int64(max(d.Revision, 1))},
		{"stream position", int64(d.StreamPosition)}, {"postings", int64(len(d.Postings))},
		{"late postings", int64(len(d.LatePostings))}, {"payments not final", d.OpenPayments},
		{"dead letters open", d.DeadLettersOpen}, {"ledger balanced", d.Balanced}, {"imbalance", d.Imbalance},
	}
	if c := d.Changes; c != nil {
		about = append(about, fact{"previous revision", int64(c.PreviousRevision)},
			fact{"previous generated at", c.PreviousGeneratedAt.In(loc)},
			fact{"postings added since", int64(len(c.PostingsAdded))}, fact{"postings removed since", int64(len(c.PostingsRemoved))})
	}
	if err := writeTable(b, aboutTable(about), nil); err != nil {
		return err
	}
	return b.write(w)
}

// summaryTable is the Summary sheet: one row per currency, its counts and its money; late holds
// the net of the part Checkout.com made on an earlier day (nil in a range: no such column).
func summaryTable(totals []Totals, late map[string]int64) table[Totals] {
	t := table[Totals]{
		sheet: "Summary", rows: totals, currency: func(t Totals) string { return t.Currency },
		lead: []column[Totals]{
			{"currency", func(t Totals) any { return t.Currency }},
			{"captures", func(t Totals) any { return t.Captures }},
			{"refunds", func(t Totals) any { return t.Refunds }},
			{"held refunds", func(t Totals) any { return t.HeldRefunds }},
		},
		money: slices.Clone(totalsMoney),
	}
	if late != nil {
		t.money = append(t.money, money[Totals]{"of which late (net)", func(t Totals) (int64, bool) { return late[t.Currency], true }})
	}
	return t
}

// totalsMoney are the money columns of a currency's totals, in the Summary sheet and the totals
// file: captured positive, refunded negative, their sum the net; held (not in the net) negative.
var totalsMoney = []money[Totals]{
	{"captured", func(t Totals) (int64, bool) { return t.Captured, true }},
	{"refunded", func(t Totals) (int64, bool) { return -t.Refunded, true }},
	{"net", func(t Totals) (int64, bool) { return t.Net, true }},
	{"held", func(t Totals) (int64, bool) { return -t.Held, true }},
	{"bank_fee", func(t Totals) (int64, bool) { return -t.BankFee, true }},
	{"bank_net", func(t Totals) (int64, bool) { return t.BankNet, true }},
}

// postingMoney are the money columns of a posting, in the Postings and Late sheets (once per
// currency) and the CSV (in minor units and in decimals): a money column more, such as the bank's
// commission or the net it pays, is one line here.
var postingMoney = []money[store.PostingLine]{
	{"amount", signed},
	{"held", held},
	{"bank_fee", bankFee},
	{"bank_net", bankNet},
}

// bankFee is the commission the acquiring bank kept on a posting, negative (money the merchant
// does not get), once a line of the bank's statement paid it and said so.
func bankFee(pl store.PostingLine) (int64, bool) {
	if pl.BankFee == nil {
		return 0, false
	}
	return -*pl.BankFee, true
}

// bankNet is what the bank pays for a posting (a refund's negative), once a statement line paid it.
func bankNet(pl store.PostingLine) (int64, bool) {
	if pl.BankNet == nil {
		return 0, false
	}
	return *pl.BankNet, true
}

// postingTable is the Postings (and Late) sheet of a day starting at from: one row per posting.
func postingTable(from time.Time, loc *time.Location) table[store.PostingLine] {
	return table[store.PostingLine]{
		sheet: "Postings", currency: func(pl store.PostingLine) string { return pl.Currency },
		lead: []column[store.PostingLine]{
			{"occurred_at", func(pl store.PostingLine) any { return pl.OccurredAt.In(loc) }},
			{"counted_at", func(pl store.PostingLine) any { return pl.CountedAt.In(loc) }},
			{"learned_at", func(pl store.PostingLine) any { return pl.LearnedAt.In(loc) }},
			{"line", func(pl store.PostingLine) any { return lineOf(pl, from) }},
			{"payment_id", func(pl store.PostingLine) any { return pl.PaymentID }},
			{"reference", func(pl store.PostingLine) any { return pl.Reference }},
			{"action_id", func(pl store.PostingLine) any { return pl.ActionID }},
			{"kind", func(pl store.PostingLine) any { return pl.Kind }},
			{"state", func(pl store.PostingLine) any { return pl.State }},
			{"currency", func(pl store.PostingLine) any { return pl.Currency }},
		},
		money: postingMoney,
		tail: []column[store.PostingLine]{
			{"origin", func(pl store.PostingLine) any { return pl.Origin }},
			{"event_id", func(pl store.PostingLine) any { return pl.EventID }},
		},
	}
}

// signed is a posting's amount as it moves the merchant's money: a capture positive, a refund
// negative; a held refund moves nothing (yet) and has none.
func signed(pl store.PostingLine) (int64, bool) {
	switch {
	case pl.State == "held":
		return 0, false
	case pl.Kind == "capture":
		return pl.Amount, true
	}
	return -pl.Amount, true
}

// held is a held refund's amount, negative (what it will take once a capture covers it).
func held(pl store.PostingLine) (int64, bool) {
	if pl.State != "held" {
		return 0, false
	}
	return -pl.Amount, true
}

// lineOf is "late" for a posting Checkout.com made before the day (from), "day" otherwise.
func lineOf(pl store.PostingLine, from time.Time) string {
	if pl.OccurredAt.Before(from) {
		return "late"
	}
	return "day"
}

// fact is one line of the About sheet.
type fact struct {
	name  string
	value any
}

// aboutTable is the About sheet: what the report is (its period, revision, checks), a line each.
func aboutTable(facts []fact) table[fact] {
	return table[fact]{sheet: "About", rows: facts, lead: []column[fact]{
		{"what", func(f fact) any { return f.name }},
		{"value", func(f fact) any { return f.value }},
	}}
}

// currencies lists the currencies of cs once each, sorted; the merchant's KWD when there are
// none, so that an empty day's sheets have their money columns.
func currencies(cs []string) []string {
	if len(cs) == 0 {
		return []string{"KWD"}
	}
	return slices.Compact(slices.Sorted(slices.Values(cs)))
}

// column is a column of a sheet: its header and its cell in a row. A cell is a string, an int64,
// an int, a bool, a time.Time (a date and time in the time's zone), a dateOnly, or nil (blank).
type column[T any] struct {
	header string
	value  func(T) any
}

// money is a money column: written once per currency (its header followed by the currency), its
// cells numbers in that currency's decimals. value is the row's signed amount in minor units; a
// row of another currency, or ok false, leaves the cell blank.
type money[T any] struct {
	header string
	value  func(T) (minor int64, ok bool)
}

// table is one sheet: the columns lead, then the money columns (for each currency, each money
// column), then tail; one row per element of rows.
type table[T any] struct {
	sheet    string
	rows     []T
	currency func(T) string
	lead     []column[T]
	money    []money[T]
	tail     []column[T]
}

// amount is a money cell: minor units of a currency.
type amount struct {
	minor    int64
	currency string
}

// dateOnly is a date cell: the day of a time, shown yyyy-mm-dd.
type dateOnly time.Time

// columns expands t's columns for currencies.
func (t table[T]) columns(currencies []string) []column[T] {
	cols := slices.Clone(t.lead)
	for _, cur := range currencies {
		for _, m := range t.money {
			cols = append(cols, column[T]{m.header + " " + cur, func(r T) any {
				if t.currency(r) != cur {
					return nil
				}
				v, ok := m.value(r)
				if !ok {
					return nil
				}
				return amount{v, cur}
			}})
		}
	}
	return append(cols, t.tail...)
}

// book is a workbook being written, with its cell styles.
type book struct {
	f                       *excelize.File
	sheets                  int
	header, when, day, dec0 int
	money                   map[int]int // a money style per number of decimals
}

func newBook() *book {
	f := excelize.NewFile()
	b := &book{f: f, money: map[int]int{}}
	b.header, _ = f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true},
		Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDE4EE"}}})
	b.when, _ = f.NewStyle(&excelize.Style{CustomNumFmt: ptr("yyyy-mm-dd hh:mm:ss")})
	b.day, _ = f.NewStyle(&excelize.Style{CustomNumFmt: ptr("yyyy-mm-dd")})
	return b
}

// moneyStyle is the number format of currency's amounts: thousands separated, its decimals, a
// minus sign before a negative amount.
func (b *book) moneyStyle(currency string) (id, exp int) {
	exp, err := payment.Exponent(currency)
	if err != nil {
		exp = 0
	}
	if id, ok := b.money[exp]; ok {
		return id, exp
	}
	format := "#,##0"
	if exp > 0 {
		format += "." + strings.Repeat("0", exp)
	}
	format += ";-" + format
	id, _ = b.f.NewStyle(&excelize.Style{CustomNumFmt: &format})
	b.money[exp] = id
	return id, exp
}

// Widths of a column, in characters: at least minWidth, at most maxWidth (a long reference is cut
// on screen, whole in the cell), padded for the filter's button.
const (
	minWidth = 8
	maxWidth = 60
	padWidth = 3
)

// writeTable writes t as a sheet of b: the header, a row per element, the widths, the frozen
// header and the filters.
func writeTable[T any](b *book, t table[T], currencies []string) error {
	f, name := b.f, t.sheet
	if b.sheets == 0 {
		if err := f.SetSheetName("Sheet1", name); err != nil {
			return err
		}
	} else if _, err := f.NewSheet(name); err != nil {
		return err
	}
	b.sheets++
	cols := t.columns(currencies)
	widths := make([]int, len(cols))
	for c, col := range cols {
		ref, _ := excelize.CoordinatesToCellName(c+1, 1)
		if err := f.SetCellStr(name, ref, col.header); err != nil {
			return err
		}
		widths[c] = utf8.RuneCountInString(col.header)
	}
	last, _ := excelize.CoordinatesToCellName(len(cols), 1)
	if err := f.SetCellStyle(name, "A1", last, b.header); err != nil {
		return err
	}
	for r, row := range t.rows {
		for c, col := range cols {
			ref, _ := excelize.CoordinatesToCellName(c+1, r+2)
			shown, err := b.setCell(name, ref, col.value(row))
			if err != nil {
				return fmt.Errorf("xlsx %s %s: %w", name, ref, err)
			}
			widths[c] = max(widths[c], shown)
		}
	}
	for c, w := range widths {
		letter, _ := excelize.ColumnNumberToName(c + 1)
		if err := f.SetColWidth(name, letter, letter, float64(min(max(w+padWidth, minWidth), maxWidth))); err != nil {
			return err
		}
	}
	if err := f.SetPanes(name, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft",
		Selection: []excelize.Selection{{SQRef: "A2", ActiveCell: "A2", Pane: "bottomLeft"}}}); err != nil {
		return err
	}
	end, _ := excelize.CoordinatesToCellName(len(cols), max(len(t.rows)+1, 2))
	if err := f.AutoFilter(name, "A1:"+end, nil); err != nil {
		return err
	}
	// The used range, which readers that size a sheet before reading it (pandas, openpyxl's read
	// only mode) trust.
	used, _ := excelize.CoordinatesToCellName(len(cols), len(t.rows)+1)
	return f.SetSheetDimension(name, "A1:"+used)
}

// setCell writes v into the cell ref of sheet, typed and styled, and returns how many characters
// it shows.
func (b *book) setCell(sheet, ref string, v any) (int, error) {
	f := b.f
	switch v := v.(type) {
	case nil:
		return 0, nil
	case string:
		return utf8.RuneCountInString(v), f.SetCellStr(sheet, ref, v)
	case int64:
		return len(strconv.FormatInt(v, 10)), f.SetCellInt(sheet, ref, v)
	case int:
		return len(strconv.Itoa(v)), f.SetCellInt(sheet, ref, int64(v))
	case bool:
		return 5, f.SetCellBool(sheet, ref, v)
	case time.Time:
		if err := f.SetCellFloat(sheet, ref, serial(v), -1, 64); err != nil {
			return 0, err
		}
		return len("2006-01-02 15:04:05"), f.SetCellStyle(sheet, ref, ref, b.when)
	case dateOnly:
		if err := f.SetCellFloat(sheet, ref, float64(int(serial(time.Time(v)))), -1, 64); err != nil {
			return 0, err
		}
		return len("2006-01-02"), f.SetCellStyle(sheet, ref, ref, b.day)
	case amount:
		style, exp := b.moneyStyle(v.currency)
		shown := decimal(v.minor, v.currency)
		x, err := strconv.ParseFloat(shown, 64)
		if err != nil {
			return 0, err
		}
		if err := f.SetCellFloat(sheet, ref, x, exp, 64); err != nil {
			return 0, err
		}
		return len(shown) + thousands(v.minor, exp), f.SetCellStyle(sheet, ref, ref, style)
	}
	return 0, fmt.Errorf("a cell of type %T", v)
}

// thousands is how many thousands separators the amount minor shows with exp decimals.
func thousands(minor int64, exp int) int {
	whole := max(minor, -minor)
	for range exp {
		whole /= 10
	}
	n := 0
	for ; whole >= 1000; whole /= 1000 {
		n++
	}
	return n
}

// excelEpoch is day 0 of Excel's 1900 date system as counted for every date since 1 March 1900.
var excelEpoch = time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)

// serial is t's wall clock (in its own zone) as an Excel date: days since excelEpoch, the time of
// day as the fraction.
func serial(t time.Time) float64 {
	wall := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
	secs := wall.Sub(excelEpoch) / time.Second
	return float64(secs) / 86400
}

// write finishes the workbook: the first sheet active, written to w.
func (b *book) write(w io.Writer) error {
	b.f.SetActiveSheet(0)
	if _, err := b.f.WriteTo(w); err != nil {
		return fmt.Errorf("xlsx: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
