package report_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"knetrecon/internal/report"
	"knetrecon/internal/store"
)

// TestCSVFormulaGuard: a merchant's reference (or a KNET id) that a spreadsheet would run as a
// formula is written inert: with spaces or no-break spaces before the sign, and after a ";",
// where a spreadsheet whose list separator is ";" (Kuwait's locales) splits the line whatever the
// quotes. Read as a ","-spreadsheet does, each cell is the guarded text; split at ";", no part
// starts a formula.
func TestCSVFormulaGuard(t *testing.T) {
	tests := []struct{ give, want string }{
		{"ORD-1", "ORD-1"}, {"a-b+c@d", "a-b+c@d"}, {"a;b", "a;b"}, {"", ""},
		{"=1+1", "'=1+1"}, {"+1", "'+1"}, {"-1", "'-1"}, {"@SUM(A1)", "'@SUM(A1)"}, {"\t=1", "'\t=1"}, {"\r=1", "'\r=1"},
		{" =1+1", "' =1+1"}, {"   +1", "'   +1"}, {"\u00a0=1+1", "'\u00a0=1+1"}, {"\u202f \u00a0@x", "'\u202f \u00a0@x"},
		{"a;=1+1", "a;'=1+1"}, {"a; =1+1", "a;' =1+1"}, {"a;\u00a0-2", "a;'\u00a0-2"}, {"=a;=b", "'=a;'=b"}, {`x;"=1`, `x;'"=1`},
		{"ORD-9;;+1", "ORD-9;;'+1"},
	}
	rows := make([]store.PaymentRow, len(tests))
	postings := make([]store.PostingLine, len(tests))
	for i, tt := range tests {
		rows[i] = store.PaymentRow{ID: fmt.Sprintf("pay_%d", i), Reference: tt.give, Currency: "KWD", KNETTransactionID: tt.give, BankReference: tt.give}
		postings[i] = store.PostingLine{ActionID: fmt.Sprintf("act_%d", i), PaymentID: fmt.Sprintf("pay_%d", i), Reference: tt.give, Kind: "capture", Currency: "KWD"}
	}
	kuwait := time.FixedZone("Asia/Kuwait", 3*3600)
	var rng, daily bytes.Buffer
	if err := (&report.Range{From: "2026-12-01", To: "2026-12-01", TimeZone: "Asia/Kuwait", Payments: rows}).WriteCSV(&rng); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, kuwait)
	if err := (&report.Daily{Date: "2026-12-01", From: day, To: day.AddDate(0, 0, 1), Postings: postings}).WriteCSV(&daily); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		csv  []byte
		cols []int // the columns that hold the reference
	}{{"range", rng.Bytes(), []int{1, 9, 10}}, {"daily", daily.Bytes(), []int{5}}} {
		recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(f.csv, []byte("\ufeff")))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for i, tt := range tests {
			for _, c := range f.cols {
				if got := recs[1+i][c]; got != tt.want {
					t.Errorf("%s: %q written %q, want %q", f.name, tt.give, got, tt.want)
				}
			}
		}
		for _, rec := range recs {
			for _, c := range rec {
				if _, err := strconv.ParseFloat(c, 64); err != nil && startsFormula(c) {
					t.Errorf("%s: a ','-spreadsheet runs %q", f.name, c)
				}
			}
		}
		for n, line := range strings.Split(string(f.csv), "\n") {
			for _, part := range strings.Split(line, ";")[1:] {
				if startsFormula(part) {
					t.Errorf("%s line %d: a ';'-spreadsheet runs %q", f.name, n+1, part)
				}
			}
		}
	}
}

// startsFormula is what a spreadsheet runs: =, +, -, @, a tab or a line break first, after
// spaces, no-break spaces or an opening quote.
func startsFormula(s string) bool {
	s = strings.TrimLeftFunc(s, func(r rune) bool { return r == ' ' || r == '"' || unicode.Is(unicode.Zs, r) })
	return s != "" && strings.ContainsRune("=+-@\t\r\n", rune(s[0]))
}
