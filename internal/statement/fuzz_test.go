package statement_test

import (
	"os"
	"testing"

	"knetrecon/internal/statement"
)

// FuzzRead: whatever the bytes, Read returns rows or an error, never panics, and every row and
// skipped row has a line.
func FuzzRead(f *testing.F) {
	for _, file := range []string{"testdata/knet-statement-example.csv", "testdata/account-statement-example.csv"} {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("reference;amount;date\nORD-1;1,234.500;03/12/2026\nTotal;;\n"))
	f.Add([]byte("\ufeff\"reference\",\"amount\"\r\n\"ORD-\"1\",\"(2.716)\"\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tab, err := statement.Read(raw, statement.Layout{}, schema, kuwait)
		if err != nil {
			return
		}
		for _, r := range tab.Rows {
			if r.Line <= tab.HeaderLine {
				t.Fatalf("row line %d at or above the header's %d", r.Line, tab.HeaderLine)
			}
		}
		for _, s := range tab.Skipped {
			if s.Line <= tab.HeaderLine || s.Reason == "" {
				t.Fatalf("skipped %+v", s)
			}
		}
	})
}

// FuzzParseAmount: an amount read is exact: written back with its decimals, it reads the same.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"1,234.500", "(2.716)", "2.716-", "-0.001", "١٬٢٣٤٫٥", "12.345 KWD", "3", ".5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := statement.ParseAmount(s, "KWD", '.', false)
		if err != nil {
			return
		}
		if n > 999_999_999_999 || n < -999_999_999_999 {
			t.Fatalf("%q read as %d: out of bounds", s, n)
		}
		neg, m := "", n
		if m < 0 {
			neg, m = "-", -m
		}
		back, err := statement.ParseAmount(neg+itoa(m/1000)+"."+pad3(m%1000), "KWD", '.', false)
		if err != nil || back != n {
			t.Fatalf("%q read as %d, written back read as %d, %v", s, n, back, err)
		}
	})
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func pad3(n int64) string {
	s := itoa(n)
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}
