package store

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestFmtTimeMatchesFormat holds the hand-written formatter to time.Format, round trip included.
func TestFmtTimeMatchesFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []time.Time{
		{}, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 10, 0, 0, 1, time.FixedZone("AST", 3*3600)),
	}
	for range 10000 {
		cases = append(cases, time.Unix(r.Int64N(300000000000)-62135596800, r.Int64N(1e9)).In(time.FixedZone("z", r.IntN(50000)-25000)))
	}
	for _, c := range cases {
		got, want := fmtTime(c), c.UTC().Format(timeFormat)
		if got != want {
			t.Fatalf("fmtTime(%v) = %q, want %q", c, got, want)
		}
		if c.Year() >= 0 && c.Year() <= 9999 {
			if back, err := time.Parse(timeFormat, got); err != nil || !back.Equal(c) {
				t.Fatalf("%q parses back to %v, %v; want %v", got, back, err, c)
			}
		}
	}
}

func BenchmarkFmtTime(b *testing.B) {
	t := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	for b.Loop() {
		_ = fmtTime(t)
	}
}
