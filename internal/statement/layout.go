package statement

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"knetrecon/internal/payment"
)

// Layout says how to read one bank's statements. It is written once per bank (a --layout file,
// see ParseLayout) and travels with each statement, so that every reader reads it alike. The zero
// Layout reads the columns under their keys' own names, dates as yyyy-mm-dd or day first, amounts
// in KWD major units, a negative amount as a refund.
type Layout struct {
	// Columns maps column keys to the bank's headers (compared without case or extra spaces).
	// The header row is the first row that holds every one of them.
	Columns map[string]string
	// Sheet is the workbook's sheet to read; the first visible one when empty.
	Sheet string
	// DateFormat is how the bank writes a date, in d, dd, m, mm, mon (Dec), yy, yyyy, and for a
	// time hh, mm, ss: dd/mm/yyyy, mm/dd/yyyy, yyyy-mm-dd, dd-mon-yyyy, yyyymmdd. A time after the
	// date is read too. Empty: yyyy-mm-dd, or the day first (dd/mm/yyyy, dd-mm-yyyy, dd.mm.yyyy,
	// dd-mon-yyyy). yyyy-mm-dd and Excel dates are read whatever the format.
	DateFormat string
	// Unit of the amounts: major (3.500, the default) or minor (3500 fils).
	Unit string
	// Sign says which amounts are refunds: normal (the default: a refund is negative, or the
	// bank's kind column says so) or inverted (the bank shows captures negative, refunds positive).
	Sign string
	// Currency of the amounts, which says how many decimals they have: KWD (the default, 3).
	Currency string
	// Decimal is the decimal separator of amounts written as text: "." (the default) or ",".
	Decimal string
	// Separator of a CSV file's cells: ",", ";", "tab" or "|"; found when empty.
	Separator string
	// Encoding of a CSV file: utf-8, windows-1256 or utf-16; found when empty (a byte-order mark,
	// else UTF-8 if the bytes are, else Windows-1256).
	Encoding string
}

// Settings of a layout file, in the order docs/finance.md lists them.
var settings = []string{"sheet", "date_format", "unit", "sign", "currency", "decimal", "separator", "encoding"}

// ParseLayout reads a layout file: "name = value" lines, # comments, settings first, then a
// [columns] section of "key = Bank's Header" lines:
//
//	# Example Bank K.S.C.P.: KNET merchant settlement statement
//	sheet       = Settlement
//	date_format = dd/mm/yyyy
//	unit        = major
//	sign        = normal
//	currency    = KWD
//
//	[columns]
//	date           = Transaction Date
//	amount         = Amount
//	reference      = Track ID
//	bank_reference = Reference No
//
// A value may be quoted ("Amount "); a # starts a comment only at the start of a line, so that a
// header may hold one. The column keys are the caller's to check.
func ParseLayout(raw []byte) (Layout, error) {
	raw = bytes.TrimPrefix(raw, []byte("\ufeff"))
	if !utf8.Valid(raw) {
		return Layout{}, fmt.Errorf("layout: not UTF-8: save it as UTF-8")
	}
	l := Layout{Columns: map[string]string{}}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
			if section != "columns" {
				return Layout{}, fmt.Errorf("layout line %d: unknown section [%s] (settings come first, then [columns])", n, section)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), unquote(strings.TrimSpace(v))
		if !ok || k == "" || v == "" {
			return Layout{}, fmt.Errorf("layout line %d: %q: want name = value", n, line)
		}
		if section == "columns" {
			if _, dup := l.Columns[k]; dup {
				return Layout{}, fmt.Errorf("layout line %d: column %s mapped twice", n, k)
			}
			l.Columns[k] = v
			continue
		}
		switch strings.ToLower(k) {
		case "sheet":
			l.Sheet = v
		case "date_format":
			l.DateFormat = v
		case "unit":
			l.Unit = v
		case "sign":
			l.Sign = v
		case "currency":
			l.Currency = v
		case "decimal":
			l.Decimal = v
		case "separator":
			l.Separator = v
		case "encoding":
			l.Encoding = v
		default:
			return Layout{}, fmt.Errorf("layout line %d: unknown setting %q (settings: %s; columns go under [columns])", n, k, strings.Join(settings, ", "))
		}
	}
	if err := sc.Err(); err != nil {
		return Layout{}, fmt.Errorf("layout: %w", err)
	}
	if err := l.Check(); err != nil {
		return Layout{}, err
	}
	return l, nil
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// ParseColumns reads "key=Header,key=Header" (the --columns flag) into a map; the keys are the
// caller's to check.
func ParseColumns(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q: want key=Header", part)
		}
		out[k] = v
	}
	return out, nil
}

// Check says what is wrong with the layout's settings, naming the setting.
func (l Layout) Check() error {
	_, err := l.values(time.UTC)
	return err
}

// values is how a layout reads amounts and dates.
type values struct {
	currency string
	exp      int
	decimal  rune
	minor    bool // amounts in minor units
	invert   bool
	// dates are the Go layouts of the date format, tried in order; dayFirst when none was given.
	dates    []string
	dayFirst bool
	last     string // the layout that read the last date
	iso      int8   // isoApart's answer: 0 not known yet, 1 apart, 2 not

	loc *time.Location
	// xlsx: cells are raw workbook values (Excel serials for dates, binary floats for numbers).
	xlsx, date1904 bool
}

func (l Layout) values(loc *time.Location) (*values, error) {
	v := &values{currency: "KWD", decimal: '.', loc: loc}
	if l.Currency != "" {
		v.currency = strings.ToUpper(strings.TrimSpace(l.Currency))
	}
	exp, err := payment.Exponent(v.currency)
	if err != nil {
		return nil, fmt.Errorf("layout: currency %q: want an ISO code like KWD", l.Currency)
	}
	v.exp = exp
	switch strings.ToLower(strings.TrimSpace(l.Unit)) {
	case "", "major":
	case "minor":
		v.minor = true
	default:
		return nil, fmt.Errorf("layout: unit %q: want major (3.500) or minor (3500)", l.Unit)
	}
	switch strings.ToLower(strings.TrimSpace(l.Sign)) {
	case "", "normal":
	case "inverted":
		v.invert = true
	default:
		return nil, fmt.Errorf("layout: sign %q: want normal (refunds negative) or inverted (captures negative)", l.Sign)
	}
	switch strings.TrimSpace(l.Decimal) {
	case "", ".":
	case ",":
		v.decimal = ','
	default:
		return nil, fmt.Errorf("layout: decimal %q: want . or ,", l.Decimal)
	}
	if _, err := separator(l.Separator); err != nil {
		return nil, err
	}
	if !slices.Contains([]string{"", "utf-8", "utf8", "windows-1256", "cp1256", "utf-16"}, strings.ToLower(strings.TrimSpace(l.Encoding))) {
		return nil, fmt.Errorf("layout: encoding %q: want utf-8, windows-1256 or utf-16", l.Encoding)
	}
	if strings.TrimSpace(l.DateFormat) == "" {
		v.dayFirst = true
		v.dates = dayFirstLayouts
		return v, nil
	}
	base, err := goDateLayout(l.DateFormat)
	if err != nil {
		return nil, err
	}
	v.dates = []string{base}
	if !strings.Contains(base, "15") {
		for _, t := range timeSuffixes {
			v.dates = append(v.dates, base+t)
		}
	}
	return v, nil
}

// separator is a CSV separator setting's rune; 0 when it is to be found.
func separator(s string) (rune, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return 0, nil
	case ",", "comma":
		return ',', nil
	case ";", "semicolon":
		return ';', nil
	case "tab", `\t`:
		return '\t', nil
	case "|", "pipe":
		return '|', nil
	}
	if s == "\t" {
		return '\t', nil
	}
	return 0, fmt.Errorf("layout: separator %q: want , ; tab or |", s)
}

// goDateLayout turns a date format (dd/mm/yyyy, mon, hh:mm) into Go's layout. Days and months
// written with separators are read with one or two digits.
func goDateLayout(f string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(f))
	loose := strings.ContainsAny(s, "/-. ")
	two := func(short, long string) string {
		if loose {
			return short
		}
		return long
	}
	var b strings.Builder
	var day, month, year, inTime bool
	for i := 0; i < len(s); {
		rest := s[i:]
		tok, out := "", ""
		switch {
		case strings.HasPrefix(rest, "yyyy"):
			tok, out, year = "yyyy", "2006", true
		case strings.HasPrefix(rest, "yy"):
			tok, out, year = "yy", "06", true
		case strings.HasPrefix(rest, "mon"), strings.HasPrefix(rest, "mmm"):
			tok, out, month = rest[:3], "Jan", true
		case strings.HasPrefix(rest, "mm") && inTime:
			tok, out = "mm", "04"
		case strings.HasPrefix(rest, "mm"):
			tok, out, month = "mm", two("1", "01"), true
		case strings.HasPrefix(rest, "m") && !inTime:
			tok, out, month = "m", "1", true
		case strings.HasPrefix(rest, "dd"):
			tok, out, day = "dd", two("2", "02"), true
		case strings.HasPrefix(rest, "d"):
			tok, out, day = "d", "2", true
		case strings.HasPrefix(rest, "hh"):
			tok, out, inTime = "hh", "15", true
		case strings.HasPrefix(rest, "ss") && inTime:
			tok, out = "ss", "05"
		case strings.ContainsRune("/-.: ,t", rune(rest[0])):
			tok, out = rest[:1], strings.ToUpper(rest[:1])
		default:
			return "", fmt.Errorf("layout: date_format %q: %q is not d, dd, m, mm, mon, yy, yyyy, hh, mm, ss or a separator", f, rest[:1])
		}
		b.WriteString(out)
		i += len(tok)
	}
	if !day || !month || !year {
		return "", fmt.Errorf("layout: date_format %q: want a day, a month and a year (like dd/mm/yyyy)", f)
	}
	return b.String(), nil
}

// timeSuffixes are the times of day a date may carry.
var timeSuffixes = []string{" 15:04", " 15:04:05", " 3:04 PM", " 3:04:05 PM", "T15:04:05"}

// isoLayouts are read whatever the date format: they are not ambiguous.
var isoLayouts = []string{"2006-1-2", "2006-1-2 15:04", "2006-1-2 15:04:05", "2006-1-2T15:04:05", time.RFC3339, "2006/1/2", "2006/1/2 15:04:05"}

// dayFirstLayouts are read when the layout names no date format: Kuwait writes the day first.
var dayFirstLayouts = func() []string {
	var out []string
	for _, base := range []string{"2/1/2006", "2-1-2006", "2.1.2006", "2-Jan-2006", "2 Jan 2006", "2-Jan-06", "2/1/06", "20060102"} {
		out = append(out, base)
		for _, t := range timeSuffixes {
			out = append(out, base+t)
		}
	}
	return out
}()

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
