package events_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"knetrecon/internal/events"
)

func TestIsStoreFailure(t *testing.T) {
	api := func(code jetstream.ErrorCode, desc string) error {
		return &jetstream.APIError{Code: 503, ErrorCode: code, Description: desc}
	}
	tests := []struct {
		name string
		give error
		want bool
	}{
		{"insufficient resources", api(10023, "insufficient resources"), true},
		{"storage resources exceeded", api(10047, "insufficient storage resources available"), true},
		{"account limits", api(10002, "resource limits exceeded for account"), true},
		{"write error", api(10077, "write /data/nats/jetstream/$G/streams/CHECKOUT_EVENTS/msgs/1.blk: no space left on device"), true},
		{"wrapped", fmt.Errorf("publish evt_1: %w: %w", events.ErrNotStored, api(10023, "insufficient resources")), true},
		{"circuit open", fmt.Errorf("%w (context canceled)", events.ErrStoreFailing), true},
		{"stream full", api(10077, "maximum bytes exceeded"), false},
		{"too large", api(10077, "message too large"), false},
		{"stream not found", api(10059, "stream not found"), false},
		{"timeout", fmt.Errorf("publish: %w: %w", events.ErrNotStored, context.DeadlineExceeded), false},
		{"stream full error", fmt.Errorf("publish evt_1: %w", events.ErrStreamFull), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := events.IsStoreFailure(tt.give); got != tt.want {
				t.Fatalf("IsStoreFailure(%v) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}

// circuitLog records a StoreCircuit's changes.
type circuitLog struct {
	mu      sync.Mutex
	changes []string
}

func (l *circuitLog) add(failing bool, reason string, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, fmt.Sprintf("%v %s", failing, reason))
}

func (l *circuitLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.changes...)
}

// within polls cond every 5 ms for at most d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %s", what, d)
		}
	}
}

// TestStoreCircuitWatch: with a watching probe, the circuit opens when the probe fails (and a
// publish waiting on it gives up at once, with ErrStoreFailing), and closes when the probe passes.
func TestStoreCircuitWatch(t *testing.T) {
	var probeErr atomic.Pointer[error]
	none := error(nil)
	probeErr.Store(&none)
	var log circuitLog
	c := events.NewStoreCircuit(events.StoreCircuitConfig{Every: 10 * time.Millisecond, Hold: time.Hour, Watch: true,
		Probe: func(context.Context) error { return *probeErr.Load() }, OnChange: log.add}, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waiting, stop := c.Bind(context.Background())
	defer stop()
	full := errors.New("the NATS store's file system has 0 bytes free")
	probeErr.Store(&full)
	within(t, time.Second, "open", func() bool { failing, _ := c.Failing(); return failing })
	select {
	case <-waiting.Done():
		if context.Cause(waiting) != events.ErrStoreFailing {
			t.Fatalf("cause %v, want ErrStoreFailing", context.Cause(waiting))
		}
	case <-time.After(time.Second):
		t.Fatal("a publish waiting when the circuit opened did not give up")
	}
	if _, reason := c.Failing(); reason != full.Error() {
		t.Fatalf("reason %q", reason)
	}
	probeErr.Store(&none) // opened by the probe: the probe alone closes it, Hold aside
	within(t, time.Second, "closed", func() bool { failing, _ := c.Failing(); return !failing })
	fresh, stop2 := c.Bind(context.Background())
	defer stop2()
	if fresh.Err() != nil {
		t.Fatal("a publish bound after the circuit closed is canceled")
	}
	if got := log.get(); len(got) != 2 || got[0] != "true "+full.Error() || got[1] != "false "+full.Error() {
		t.Fatalf("changes %q", got)
	}
}

// TestStoreCircuitReported: a publish's store failure opens the circuit for at least Hold even
// though the probe (which cannot see the store) passes; a publish timeout makes it probe at once.
func TestStoreCircuitReported(t *testing.T) {
	var probes atomic.Int32
	c := events.NewStoreCircuit(events.StoreCircuitConfig{Every: time.Hour, Hold: 100 * time.Millisecond,
		Probe: func(context.Context) error { probes.Add(1); return nil }}, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	c.Report(fmt.Errorf("publish: %w: %w", events.ErrNotStored, context.DeadlineExceeded))
	within(t, time.Second, "probed after a timeout", func() bool { return probes.Load() == 1 })
	if failing, _ := c.Failing(); failing {
		t.Fatal("a timeout alone opened the circuit")
	}

	opened := time.Now()
	c.Report(&jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"})
	if failing, _ := c.Failing(); !failing {
		t.Fatal("a store failure did not open the circuit")
	}
	c.Report(fmt.Errorf("publish: %w: %w", events.ErrNotStored, context.DeadlineExceeded)) // probe passes, within Hold
	within(t, time.Second, "probed", func() bool { return probes.Load() == 2 })
	if failing, _ := c.Failing(); !failing {
		t.Fatal("closed before Hold")
	}
	for range 20 {
		if failing, _ := c.Failing(); !failing {
			break
		}
		time.Sleep(20 * time.Millisecond)
		c.Report(context.DeadlineExceeded)
	}
	if failing, _ := c.Failing(); failing {
		t.Fatal("still open well after Hold with the probe passing")
	}
	if d := time.Since(opened); d < 100*time.Millisecond {
		t.Fatalf("closed after %s, before Hold", d)
	}
}
