// Package statement reads the files banks send: a KNET settlement statement, a merchant's account
// statement. A bank's file is CSV (comma, semicolon or tab; UTF-8 with or without a byte-order
// mark, Windows-1256 or UTF-16; quoted or not) or an .xlsx workbook, with title rows above the
// table, blank rows, a total row and a footer below it. Read finds the header row (the first that
// holds every mapped column), maps the columns by header name (never by position), reads amounts
// into minor units exactly and dates in the layout's format, and lists every row below the header
// that is not a transaction, with its line and why, instead of failing the whole file.
//
// Reading is pure: bytes and a Layout in, rows out. What a row means (which key pays which
// posting) is the caller's: settle matches statements against the ledger.
package statement

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind says what a column holds.
type Kind int

// Kinds of columns.
const (
	// Text is kept as read (trimmed).
	Text Kind = iota
	// Money is an amount in major units (3.500 KWD), or in minor units when the layout's unit is
	// minor.
	Money
	// MoneyMinor is an amount in minor units (3500 fils), whatever the layout's unit.
	MoneyMinor
	// Date is a day, with or without a time of day: text in the layout's date format, or an
	// Excel date.
	Date
)

// Column is one column a caller reads.
type Column struct {
	// Key names the column for the caller; unless the layout maps it to another header, the
	// column is found under a header named like the key.
	Key  string
	Kind Kind
	// ID marks a column that names a transaction: a row with none of them is not one (a total
	// row, a footer).
	ID bool
}

// Schema is what a caller reads from a statement.
type Schema struct {
	Columns []Column
	// Need lists groups of keys: the header row holds at least one column of each group, and a
	// transaction row a value in at least one of them (an amount, a key).
	Need [][]string
}

// Skip is a row below the header that is not read as a transaction.
type Skip struct {
	// Line is the row's line in a CSV file, its row number in a workbook.
	Line   int    `json:"line"`
	Reason string `json:"reason"`
	// Unreadable marks a row that looks like a transaction but could not be read (an amount, a
	// date, a quote): a difference to look at, unlike a blank, total or footer row.
	Unreadable bool `json:"unreadable,omitempty"`
}

// Table is a statement as read.
type Table struct {
	// Format names the file's format: `CSV (UTF-8 with byte-order mark, ","-separated)`,
	// `xlsx, sheet "Settlement"`.
	Format string
	// HeaderLine is the header row's line; Header its cells.
	HeaderLine int
	Header     []string
	// Rows are the transactions, in the file's order.
	Rows []Row
	// Skipped are the rows below the header that are not transactions, in the file's order.
	Skipped []Skip
	idx     *index
}

// Has reports whether the statement has the column key.
func (t *Table) Has(key string) bool {
	_, ok := t.idx.slot[key]
	return ok
}

// Row is one transaction of a statement.
type Row struct {
	// Line is the row's line in a CSV file, its row number in a workbook.
	Line    int
	text    []string
	amounts []int64
	dates   []time.Time
	idx     *index
}

// Text returns the row's cell in the column key (trimmed; "" when the statement has no such
// column). Any column the layout maps is there, known to the schema or not (a fee, a net, a
// terminal id): read as text.
func (r Row) Text(key string) string {
	if i, ok := r.idx.slot[key]; ok {
		return r.text[i]
	}
	return ""
}

// Amount returns the row's amount in the Money or MoneyMinor column key, in minor units, with
// the layout's sign; ok is false when the cell is empty.
func (r Row) Amount(key string) (v int64, ok bool) {
	i, found := r.idx.money[key]
	if !found || r.Text(key) == "" {
		return 0, false
	}
	return r.amounts[i], true
}

// Date returns the row's time in the Date column key, in the reader's location; ok is false when
// the cell is empty.
func (r Row) Date(key string) (t time.Time, ok bool) {
	i, found := r.idx.date[key]
	if !found || r.Text(key) == "" {
		return time.Time{}, false
	}
	return r.dates[i], true
}

// index places each key found in the header: its cell in the file's rows, its slot in a Row.
type index struct {
	keys  []string       // by slot
	cell  []int          // by slot: the column in the file
	kind  []Kind         // by slot
	id    []bool         // by slot
	head  []string       // by slot: the header as found
	slot  map[string]int // key → slot
	money map[string]int // key → index in Row.amounts
	date  map[string]int // key → index in Row.dates
}

// ErrFormat wraps every reason a file cannot be read as a statement: not a format read here, no
// header row, a broken workbook. The message names the file's format and the headers found.
var ErrFormat = errors.New("statement")

// record is one row of the file, before the header is known.
type record struct {
	line  int
	cells []string
	err   error // a CSV row that could not be split into cells
}

// source is a file split into rows.
type source struct {
	format  string
	records []record
	// xlsx: numbers and dates are raw cell values (Excel serials, binary floats).
	xlsx, date1904 bool
}

// Read reads a statement from raw: CSV or xlsx (told by its bytes, not by a file name), with l
// saying how (columns, sheet, date format, amount unit and sign, currency), the columns of s.
// Dates without a zone are in loc. Rows above the header are ignored; rows below it that are
// not transactions are listed in Skipped.
func Read(raw []byte, l Layout, s Schema, loc *time.Location) (*Table, error) {
	if loc == nil {
		loc = time.UTC
	}
	vr, err := l.values(loc)
	if err != nil {
		return nil, err
	}
	src, err := split(raw, l, s)
	if err != nil {
		return nil, err
	}
	vr.xlsx, vr.date1904 = src.xlsx, src.date1904
	h, err := findHeader(src, l, s)
	if err != nil {
		return nil, err
	}
	t := &Table{Format: src.format, HeaderLine: src.records[h.row].line, Header: trimAll(src.records[h.row].cells), idx: h.idx}
	t.Rows = make([]Row, 0, len(src.records)-h.row-1)
	var blanks []int
	for _, rec := range src.records[h.row+1:] {
		if rec.err == nil && blank(rec.cells) {
			blanks = append(blanks, rec.line) // listed once a row below shows they were inside the table
			continue
		}
		for _, b := range blanks {
			t.Skipped = append(t.Skipped, Skip{Line: b, Reason: "blank row"})
		}
		blanks = blanks[:0]
		row, skip := h.idx.row(rec, vr, s)
		if skip != nil {
			t.Skipped = append(t.Skipped, *skip)
			continue
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// split tells the file's format by its first bytes and splits it into rows.
func split(raw []byte, l Layout, s Schema) (*source, error) {
	head := raw[:min(len(raw), 512)]
	switch {
	case len(raw) == 0:
		return nil, fmt.Errorf("%w: the file is empty", ErrFormat)
	case bytes.HasPrefix(raw, []byte("PK\x03\x04")):
		return readXLSX(raw, l)
	case bytes.HasPrefix(raw, []byte{0xD0, 0xCF, 0x11, 0xE0}):
		return nil, fmt.Errorf("%w: an Excel 97-2003 workbook (.xls) or a password-protected one: save it as .xlsx without a password, or as CSV", ErrFormat)
	case bytes.HasPrefix(raw, []byte("%PDF")):
		return nil, fmt.Errorf("%w: a PDF: ask the bank for the statement as .xlsx or CSV", ErrFormat)
	case bytes.Contains(bytes.ToLower(head), []byte("<html")) || bytes.Contains(bytes.ToLower(head), []byte("<table")):
		return nil, fmt.Errorf("%w: an HTML page (a web table saved as .xls?): open it in a spreadsheet and save it as .xlsx or CSV", ErrFormat)
	}
	return readCSV(raw, l, s)
}

// header is the header row found, and where each key is.
type header struct {
	row int // index in source.records
	idx *index
}

// headerSearch is how many rows from the top may hold the header.
const headerSearch = 200

// findHeader returns the first row that holds every header l maps and a column of each of s's
// Need groups; an error naming the nearest row's headers when none does.
func findHeader(src *source, l Layout, s Schema) (header, error) {
	best, bestScore, bestCells := -1, -1, 0
	for i, rec := range src.records {
		if i >= headerSearch {
			break
		}
		if rec.err != nil {
			continue
		}
		pos := positions(rec.cells)
		if idx, score, ok := match(pos, rec.cells, l, s); ok {
			return header{row: i, idx: idx}, nil
		} else if cells := filled(rec.cells); score > bestScore || score == bestScore && cells > bestCells {
			best, bestScore, bestCells = i, score, cells
		}
	}
	var want []string
	for _, k := range sortedKeys(l.Columns) {
		want = append(want, fmt.Sprintf("%q (%s)", l.Columns[k], k))
	}
	for _, g := range s.Need {
		var names []string
		for _, k := range g {
			if h, ok := l.Columns[k]; ok {
				names = append(names, fmt.Sprintf("%q", h))
			} else {
				names = append(names, fmt.Sprintf("%q", k))
			}
		}
		want = append(want, "one of "+strings.Join(names, ", "))
	}
	msg := fmt.Sprintf("%s: no row holds every mapped column (%s)", src.format, strings.Join(want, "; "))
	if best < 0 || bestCells == 0 {
		return header{}, fmt.Errorf("%w: %s; the file has no row with headers", ErrFormat, msg)
	}
	rec := src.records[best]
	var found []string
	for _, c := range rec.cells {
		if c = clean(c); c != "" {
			found = append(found, fmt.Sprintf("%q", c))
		}
	}
	var missing []string
	pos := positions(rec.cells)
	for _, k := range sortedKeys(l.Columns) {
		if _, ok := pos[norm(l.Columns[k])]; !ok {
			missing = append(missing, fmt.Sprintf("%q", l.Columns[k]))
		}
	}
	for _, g := range s.Need {
		ok := false
		for _, k := range g {
			if _, ok = pos[norm(headerOf(l, k))]; ok {
				break
			}
		}
		if !ok {
			missing = append(missing, "a column for "+strings.Join(g, " or "))
		}
	}
	return header{}, fmt.Errorf("%w: %s; the nearest is line %d, without %s; its headers: %s (map the bank's headers with --columns key=Header or a --layout file)",
		ErrFormat, msg, rec.line, strings.Join(missing, ", "), strings.Join(found, ", "))
}

// headerOf is the header the column key is found under: the layout's, or the key itself.
func headerOf(l Layout, key string) string {
	if h, ok := l.Columns[key]; ok {
		return h
	}
	return key
}

// positions maps each header (normalised) to its first cell.
func positions(cells []string) map[string]int {
	pos := make(map[string]int, len(cells))
	for i, c := range cells {
		n := norm(c)
		if _, seen := pos[n]; !seen && n != "" {
			pos[n] = i
		}
	}
	return pos
}

// match reports whether a row with headers pos is the header: every column l maps is there, and
// one of each Need group. score counts the columns found, to name the nearest row when none is.
func match(pos map[string]int, cells []string, l Layout, s Schema) (idx *index, score int, ok bool) {
	ok = true
	for _, k := range sortedKeys(l.Columns) {
		if _, found := pos[norm(l.Columns[k])]; found {
			score++
		} else {
			ok = false
		}
	}
	for _, g := range s.Need {
		any := false
		for _, k := range g {
			if _, found := pos[norm(headerOf(l, k))]; found {
				any = true
			}
		}
		if any {
			score++
		} else {
			ok = false
		}
	}
	if !ok {
		return nil, score, false
	}
	idx = &index{slot: map[string]int{}, money: map[string]int{}, date: map[string]int{}}
	add := func(key string, kind Kind, id bool) {
		c, found := pos[norm(headerOf(l, key))]
		if _, dup := idx.slot[key]; !found || dup {
			return
		}
		idx.slot[key] = len(idx.keys)
		idx.keys = append(idx.keys, key)
		idx.cell = append(idx.cell, c)
		idx.kind = append(idx.kind, kind)
		idx.id = append(idx.id, id)
		idx.head = append(idx.head, clean(cells[c]))
		switch kind {
		case Money, MoneyMinor:
			idx.money[key] = len(idx.money)
		case Date:
			idx.date[key] = len(idx.date)
		}
	}
	for _, c := range s.Columns {
		add(c.Key, c.Kind, c.ID)
	}
	for _, k := range sortedKeys(l.Columns) { // columns the caller does not know: text
		add(k, Text, false)
	}
	return idx, score, true
}

// row reads one row below the header, or says why it is not a transaction.
func (x *index) row(rec record, vr *values, s Schema) (Row, *Skip) {
	if rec.err != nil {
		return Row{}, &Skip{Line: rec.line, Reason: "cannot be read: " + rec.err.Error(), Unreadable: true}
	}
	r := Row{Line: rec.line, text: make([]string, len(x.keys)), idx: x}
	same, hasID, hasMoney := true, false, false
	for i, c := range x.cell {
		if c < len(rec.cells) {
			r.text[i] = clean(rec.cells[c])
		}
		if !strings.EqualFold(r.text[i], x.head[i]) {
			same = false
		}
		if r.text[i] == "" {
			continue
		}
		switch {
		case x.id[i] && !isTotal(r.text[i]):
			hasID = true
		case x.kind[i] == Money || x.kind[i] == MoneyMinor:
			hasMoney = true
		}
	}
	if same {
		return Row{}, &Skip{Line: rec.line, Reason: "the header again"}
	}
	for _, c := range rec.cells {
		if c = clean(c); isBalance(c) {
			return Row{}, &Skip{Line: rec.line, Reason: fmt.Sprintf("a balance row (%q)", short(c))}
		}
	}
	if !hasID {
		for _, c := range rec.cells {
			if c = clean(c); isTotal(c) {
				return Row{}, &Skip{Line: rec.line, Reason: fmt.Sprintf("a total row (%q)", short(c))}
			}
		}
		if !hasMoney {
			return Row{}, &Skip{Line: rec.line, Reason: fmt.Sprintf("not a transaction: no key, no amount (%q)", short(firstFilled(rec.cells)))}
		}
	}
	for _, g := range s.Need {
		found := false
		for _, k := range g {
			found = found || r.Text(k) != ""
		}
		if !found {
			var heads []string
			for _, k := range g {
				if i, ok := x.slot[k]; ok {
					heads = append(heads, fmt.Sprintf("%q", x.head[i]))
				}
			}
			return Row{}, &Skip{Line: rec.line, Reason: "no value in " + strings.Join(heads, " or "), Unreadable: true}
		}
	}
	r.amounts = make([]int64, len(x.money))
	r.dates = make([]time.Time, len(x.date))
	for i, k := range x.keys {
		v := r.text[i]
		if v == "" {
			continue
		}
		var err error
		switch x.kind[i] {
		case Money, MoneyMinor:
			r.amounts[x.money[k]], err = vr.money(v, x.kind[i] == MoneyMinor)
		case Date:
			r.dates[x.date[k]], err = vr.date(v)
		}
		if err != nil {
			return Row{}, &Skip{Line: rec.line, Reason: fmt.Sprintf("%s %q: %v", x.head[i], short(v), err), Unreadable: true}
		}
	}
	return r, nil
}

// clean trims a cell: spaces, no-break spaces, a stray byte-order mark.
func clean(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '\ufeff' || r == '\u200f' || r == '\u200e' })
}

// norm is a header as compared: trimmed, inner spaces collapsed, case folded.
func norm(s string) string {
	return strings.ToLower(strings.Join(strings.FieldsFunc(clean(s), unicode.IsSpace), " "))
}

func trimAll(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = clean(c)
	}
	return out
}

func blank(cells []string) bool {
	return filled(cells) == 0
}

func filled(cells []string) int {
	n := 0
	for _, c := range cells {
		if clean(c) != "" {
			n++
		}
	}
	return n
}

func firstFilled(cells []string) string {
	for _, c := range cells {
		if c = clean(c); c != "" {
			return c
		}
	}
	return ""
}

// short cuts a cell for a message.
func short(s string) string {
	if utf8.RuneCountInString(s) > 60 {
		return string([]rune(s)[:60]) + "…"
	}
	return s
}

// isBalance reports whether a cell labels an account statement's balance row: "Opening
// balance", "Closing Balance", "Balance b/f", "Balance carried forward", "الرصيد الافتتاحي".
func isBalance(s string) bool {
	if !strings.ContainsAny(s, "bBالر") {
		return false
	}
	s = norm(s)
	for _, p := range []string{"opening balance", "closing balance", "balance b/f", "balance c/f", "balance brought forward",
		"balance carried forward", "available balance", "ledger balance", "الرصيد الافتتاحي", "الرصيد الختامي", "رصيد افتتاحي", "رصيد ختامي"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// isTotal reports whether a cell labels a total: "Total", "TOTAL:", "Grand Total", "Sub-total",
// "Totals (12)", "Total 12 transactions", "Net Total", "المجموع", "الإجمالي". A cell whose word
// after it is a name ("Total Oil Co.") is not one.
func isTotal(s string) bool {
	if !strings.ContainsAny(s, "tTمجإا") { // every label below has one: most cells are passed over without a copy
		return false
	}
	s = norm(s)
	for _, p := range []string{"grand ", "sub-", "sub ", "sub", "net ", "overall ", "day ", "daily ", "batch "} {
		if strings.HasPrefix(s, p) {
			s = strings.TrimPrefix(s, p)
			break
		}
	}
	for _, w := range []string{"totals", "total", "المجموع الكلي", "المجموع", "مجموع", "الإجمالي", "الاجمالي", "إجمالي", "اجمالي"} {
		if rest, ok := strings.CutPrefix(s, w); ok {
			rest = strings.TrimSpace(rest)
			first, _ := utf8.DecodeRuneInString(rest)
			return rest == "" || strings.ContainsRune(":(-–=#", first) || unicode.IsDigit(first) || strings.IndexFunc(rest, unicode.IsLetter) < 0
		}
	}
	return false
}
