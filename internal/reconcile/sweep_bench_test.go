package reconcile_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"knetrecon/internal/checkout"
	"knetrecon/internal/checkout/ckosim"
	"knetrecon/internal/reconcile"
)

// BenchmarkSweepOverdue sweeps N overdue Pending payments (default 10,000; KNETRECON_BENCH_N)
// against the simulator answering every API call after 50 ms, with the client's default rate
// limit (50 requests/s; KNETRECON_BENCH_RATE). The floor is N/rate seconds: the figure to
// compare is s/sweep against bound_s. Run: make bench-sweep.
func BenchmarkSweepOverdue(b *testing.B) {
	n := envInt("KNETRECON_BENCH_N", 10_000)
	rate := envInt("KNETRECON_BENCH_RATE", 50)
	for range b.N {
		b.StopTimer()
		e := newSweepEnvTB(b, func(c *reconcile.SweepConfig) { c.VoidPending = false; c.Concurrency = 8; c.PageSize = 500 }, float64(rate))
		for range n {
			c, err := e.sim.CreatePayment(ckosim.PaymentRequest{Amount: 1000, Currency: "KWD", Reference: "B",
				Source: checkout.Source{Type: "knet", Language: "en"}})
			if err != nil {
				b.Fatal(err)
			}
			if err := e.sim.Land(c.ID); err != nil {
				b.Fatal(err)
			}
		}
		e.idle()
		e.advance(8 * time.Minute)
		e.sim.SetFaults(ckosim.Faults{Latency: ckosim.Duration(50 * time.Millisecond)})
		b.StartTimer()
		start := time.Now()
		rep, err := e.sweeper.Sweep(context.Background(), false)
		if err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		if rep.Outcomes[reconcile.CheckStillPending] != n {
			b.Fatalf("outcomes %v, want %d still_pending", rep.Outcomes, n)
		}
		b.ReportMetric(elapsed.Seconds(), "s/sweep")
		b.ReportMetric(float64(n)/float64(rate), "bound_s")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "payments/s")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
