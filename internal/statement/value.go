package statement

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"knetrecon/internal/payment"
)

// money reads an amount cell into minor units, with the layout's sign. minor: the column holds
// minor units whatever the layout's unit.
func (v *values) money(s string, minor bool) (int64, error) {
	minor = minor || v.minor
	var n int64
	var err error
	if d, ok := excelNumber(s, v.xlsx); ok {
		n, err = parseAmount(d, v.currency, v.exp, '.', minor) // a workbook's number: its decimal point is a point
	} else {
		n, err = parseAmount(s, v.currency, v.exp, v.decimal, minor)
	}
	if v.invert {
		n = -n
	}
	return n, err
}

// ParseAmount reads an amount written as text into minor units of currency, exactly, never through
// a float: "1,234.500" KWD is 1234500, "3.5" is 3500, "(2.716)", "2.716-", "-2.716" and "2.716 DR"
// are -2716; a currency code ("KWD", "KD" for KWD) around it and spaces are left out; Arabic-Indic
// digits are read. decimal is the decimal separator ('.' or ','); the other of the two, spaces and
// apostrophes group thousands, in groups of three. minor: s is a whole number of minor units. More
// decimals than the currency has are refused, not rounded.
func ParseAmount(s, currency string, decimal rune, minor bool) (int64, error) {
	exp, err := payment.Exponent(currency)
	if err != nil {
		return 0, err
	}
	return parseAmount(s, currency, exp, decimal, minor)
}

func parseAmount(s, currency string, exp int, decimal rune, minor bool) (int64, error) {
	t := arabicDigits(clean(s), decimal)
	neg := false
	if n := len(t); n > 2 && (strings.EqualFold(t[n-2:], "DR") || strings.EqualFold(t[n-2:], "CR")) {
		neg = strings.EqualFold(t[n-2:], "DR")
		t = clean(t[:n-2])
	}
	marks, ok := currencyMarks[currency]
	if !ok {
		marks = []string{currency}
	}
	for _, c := range marks {
		if len(t) >= len(c) && strings.EqualFold(t[:len(c)], c) {
			t = clean(t[len(c):])
		}
		if len(t) >= len(c) && strings.EqualFold(t[len(t)-len(c):], c) {
			t = clean(t[:len(t)-len(c)])
		}
	}
	if strings.HasPrefix(t, "(") && strings.HasSuffix(t, ")") {
		neg, t = !neg, clean(t[1:len(t)-1])
	}
	switch {
	case strings.HasPrefix(t, "-"):
		neg, t = !neg, clean(t[1:])
	case strings.HasPrefix(t, "\u2212"): // the minus sign
		neg, t = !neg, clean(t[len("\u2212"):])
	case strings.HasPrefix(t, "+"):
		t = clean(t[1:])
	case strings.HasSuffix(t, "-"):
		neg, t = !neg, clean(t[:len(t)-1])
	}
	if t == "" {
		return 0, errors.New("no amount")
	}
	whole, frac := t, ""
	if i := strings.LastIndexByte(t, byte(decimal)); i >= 0 {
		whole, frac = t[:i], t[i+1:]
	}
	if whole == "" {
		whole = "0"
	}
	if strings.ContainsRune(whole, decimal) {
		return 0, errors.New("not a number")
	}
	groups := strings.FieldsFunc(whole, func(r rune) bool { return strings.ContainsRune(",. '\u00a0\u202f\u066c", r) })
	for i, g := range groups {
		if !digits(g) {
			return 0, errors.New("not a number")
		}
		if len(groups) > 1 && (i > 0 && len(g) != 3 || i == 0 && len(g) > 3) {
			return 0, fmt.Errorf("thousands separator out of place (a decimal %q? set decimal = %s in the layout)",
				other(decimal), other(decimal))
		}
	}
	if len(groups) == 0 || !digits(frac) {
		return 0, errors.New("not a number")
	}
	if utf8.RuneCountInString(whole) != len(strings.Join(groups, ""))+len(groups)-1 {
		return 0, errors.New("not a number") // two separators in a row, or one at an end
	}
	whole = strings.TrimLeft(strings.Join(groups, ""), "0")
	limit := 9
	if minor {
		limit += exp
	}
	if len(whole) > limit {
		return 0, errors.New("too large")
	}
	if minor {
		if frac != "" && strings.Trim(frac, "0") != "" || strings.ContainsRune(t, decimal) && frac == "" {
			return 0, errors.New("not a whole number of minor units")
		}
		n := mustAtoi("0" + whole)
		if neg {
			n = -n
		}
		return n, nil
	}
	if len(frac) > exp {
		return 0, fmt.Errorf("%s has %d decimals", currency, exp)
	}
	scale := int64(1)
	for range exp {
		scale *= 10
	}
	n := mustAtoi("0"+whole)*scale + mustAtoi("0"+frac+strings.Repeat("0", exp-len(frac)))
	if neg {
		n = -n
	}
	return n, nil
}

func other(decimal rune) string {
	if decimal == '.' {
		return ","
	}
	return "."
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// mustAtoi reads at most 18 digits, checked by the caller.
func mustAtoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// currencyMarks are the ways an amount names its currency, besides its code.
var currencyMarks = map[string][]string{
	"KWD": {"KWD", "KD", "د.ك.", "د.ك", "دك"},
	"USD": {"USD", "US$", "$"},
}

// arabicDigits writes Arabic-Indic and Persian digits as ASCII, and the Arabic decimal and
// thousands separators as decimal and a space.
func arabicDigits(s string, decimal rune) string {
	if strings.IndexFunc(s, func(r rune) bool { return r >= 0x0660 && r <= 0x06F9 }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= '\u0660' && r <= '\u0669':
			return '0' + r - '\u0660'
		case r >= '\u06F0' && r <= '\u06F9':
			return '0' + r - '\u06F0'
		case r == '\u066B':
			return decimal
		case r == '\u066C':
			return ' '
		}
		return r
	}, s)
}

// excelNumber reads a workbook's raw number ("89.665000000000006", "1.5E-2") as the decimal
// Excel shows: 15 significant digits, trailing zeros dropped ("89.665", "0.015"). ok is false for
// text, and for any cell of a CSV file.
func excelNumber(s string, xlsx bool) (string, bool) {
	if !xlsx || s == "" || strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune("0123456789.eE+-", r) }) >= 0 {
		return "", false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", false
	}
	m := strconv.FormatFloat(f, 'e', 14, 64) // -d.dddddddddddddde±dd
	neg := strings.HasPrefix(m, "-")
	m = strings.TrimPrefix(m, "-")
	mant, e, _ := strings.Cut(m, "e")
	ex, _ := strconv.Atoi(e)
	ds := strings.Replace(mant, ".", "", 1)
	point := ex + 1
	var whole, frac string
	switch {
	case point <= 0:
		whole, frac = "0", strings.Repeat("0", -point)+ds
	case point >= len(ds):
		whole = ds + strings.Repeat("0", point-len(ds))
	default:
		whole, frac = ds[:point], ds[point:]
	}
	out := whole
	if frac = strings.TrimRight(frac, "0"); frac != "" {
		out += "." + frac
	}
	if neg && strings.Trim(out, "0.") != "" {
		out = "-" + out
	}
	return out, true
}

// date reads a date cell: an Excel date (a workbook's number), else text in the layout's format.
func (v *values) date(s string) (time.Time, error) {
	if v.xlsx {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 1 && f < 2958466 { // 1900-01-01 to 9999-12-31
			t, err := excelize.ExcelDateToTime(f, v.date1904)
			if err != nil {
				return time.Time{}, err
			}
			return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, v.loc), nil
		}
	}
	s = arabicDigits(s, '.')
	if v.last != "" { // a bank writes every date alike: the layout that read the last one first
		if t, err := time.ParseInLocation(v.last, s, v.loc); err == nil {
			return t, nil
		}
	}
	for i, ls := range [][]string{v.dates, isoLayouts} { // the layout's format first: it decides
		for _, l := range ls {
			if t, err := time.ParseInLocation(l, s, v.loc); err == nil {
				// The format's own layouts are of other shapes: one of them reads a date. An ISO
				// layout is tried first next time only when no layout of the format reads an ISO
				// date too (yyyy-dd-mm would): then trying it first changes no answer.
				if i == 0 || v.isoApart() {
					v.last = l
				}
				return t, nil
			}
		}
	}
	if v.dayFirst {
		for _, l := range []string{"1/2/2006", "1-2-2006", "1/2/2006 15:04", "1/2/2006 15:04:05", "1/2/2006 3:04 PM", "1/2/2006 3:04:05 PM"} {
			if _, err := time.ParseInLocation(l, s, v.loc); err == nil {
				return time.Time{}, errors.New("not a day-first date (dd/mm/yyyy): if the bank writes the month first, set date_format = mm/dd/yyyy in the layout")
			}
		}
		return time.Time{}, errors.New("not a date (2026-12-01, 01/12/2026, 01-Dec-2026, 20261201; or set date_format in the layout)")
	}
	return time.Time{}, errors.New("not a date in the layout's date_format (nor yyyy-mm-dd)")
}

// isoApart reports whether no layout of the date format reads an ISO date (2026-12-01).
func (v *values) isoApart() bool {
	if v.iso == 0 {
		v.iso = 1
		for _, l := range v.dates {
			for _, d := range []string{"2026-12-01", "2026-01-12", "2026-12-01 10:00:00"} {
				if _, err := time.Parse(l, d); err == nil {
					v.iso = 2
				}
			}
		}
	}
	return v.iso == 1
}
