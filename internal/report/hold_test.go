package report_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/report"
)

// TestCheckHold: a day's watermark is read once the day is over (and the grace), kept, and the
// day is held once the ledger's position reaches it; the wording says which.
func TestCheckHold(t *testing.T) {
	seq := func(n uint64) func() (uint64, error) { return func() (uint64, error) { return n, nil } }
	broken := func() (uint64, error) { return 0, errors.New("nats: no responders") }
	read := report.Watermark{Seq: 42, ReadAt: at(25, 21, 15)}
	tests := []struct {
		name     string
		now      time.Time
		mark     report.Watermark
		last     func() (uint64, error)
		position func() (uint64, error)
		wantOver bool
		wantHeld bool
		wantSeq  uint64
		want     string
	}{
		{"not over", at(25, 20, 59), report.Watermark{}, broken, broken, false, false, 0,
			"2026-11-25 is not over (in Asia/Kuwait until 2026-11-26T00:00:00+03:00)"},
		{"within the grace", at(25, 21, 0), report.Watermark{}, broken, broken, false, false, 0, "is not over"},
		{"over, the ledger behind", at(25, 21, 15), report.Watermark{}, seq(42), seq(17), true, false, 42,
			"waiting for the ledger to apply the stream up to seq 42 (its end at 2026-11-26 00:15:00); applied up to seq 17"},
		{"the watermark kept, not read again", at(26, 9, 0), read, broken, seq(41), true, false, 42, "up to seq 42"},
		{"held", at(26, 9, 0), read, broken, seq(42), true, true, 42, "the ledger holds 2026-11-25: applied up to seq 42"},
		{"an empty stream", at(25, 21, 15), report.Watermark{}, seq(0), seq(0), true, true, 0, "holds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := report.CheckHold("2026-11-25", kuwait, tt.now, tt.mark, tt.last, tt.position)
			if err != nil {
				t.Fatal(err)
			}
			if h.IsOver() != tt.wantOver || h.Held() != tt.wantHeld || h.Mark.Seq != tt.wantSeq || !strings.Contains(h.String(), tt.want) {
				t.Fatalf("over %v held %v seq %d: %q", h.IsOver(), h.Held(), h.Mark.Seq, h.String())
			}
		})
	}
	if _, err := report.CheckHold("2026-11-25", kuwait, at(26, 9, 0), report.Watermark{}, broken, seq(1)); err == nil ||
		!strings.Contains(err.Error(), "the stream's end") {
		t.Fatalf("the stream unreadable: %v", err)
	}
}
