package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"knetrecon/internal/store"
)

// A stuck payment resolved by hand while still open, as an operator meets it with the one-shot
// commands: `sweep --once`, `stuck`, `discrepancies --kind stuck` and `resolve` agree at every
// step; the next sweep marks it stuck again (the operator's note and name kept in the mark's
// history, shown by `discrepancies --all --json` and `payment`); the sweeps after it publish
// nothing new about it.
func TestStuckResolvedByHandComesBack(t *testing.T) {
	t.Setenv("USER", "alice") // the operator `resolve` names
	p := newPipeline(t, nil)  // real clock: the CLI runs on time.Now
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	vars := p.env(t, ledger, map[string]string{"KNETRECON_PENDING_TIMEOUT": "1ms", "KNETRECON_STUCK_AFTER": "1ms",
		"KNETRECON_VOID_PENDING": "false"})
	cfg, _, err := ParseConfig("run", nil, env(map[string]string{
		"KNETRECON_NATS_URL": p.nats, "KNETRECON_LEDGER": ledger, "KNETRECON_ADMIN_ADDR": "127.0.0.1:0",
		"KNETRECON_FETCH_WAIT": "100ms", "KNETRECON_SWEEP_SCHEDULE": "off", "KNETRECON_WEBHOOK_KEYS": simHookKy}), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := p.pay(t, 1_250)
	poll(t, "pending applied", func() bool { _, err := m.Ledger().Payment(ctx, id); return err == nil })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	cli := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(ctx, args, env(vars), &out, &errOut); code != 0 {
			t.Fatalf("reconciler %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	decode := func(v any, args ...string) {
		t.Helper()
		if err := json.Unmarshal([]byte(cli(args...)), v); err != nil {
			t.Fatalf("reconciler %v: %v", args, err)
		}
	}
	type sweepReport struct {
		NewStuck []string `json:"new_stuck"`
		Stuck    int      `json:"stuck"`
	}
	sweep := func() sweepReport {
		t.Helper()
		var rep sweepReport
		decode(&rep, "sweep", "--once", "--json")
		return rep
	}
	// agree: the sweep's count, `stuck` and `discrepancies --kind stuck` say the same.
	agree := func(step string, rep sweepReport, want int) int64 {
		t.Helper()
		var stuck []StuckPayment
		decode(&stuck, "stuck", "--json")
		var open []store.Discrepancy
		decode(&open, "discrepancies", "--kind", "stuck", "--json")
		if rep.Stuck != want || len(stuck) != want || len(open) != want {
			t.Fatalf("%s: sweep says %d stuck, `stuck` %d, `discrepancies --kind stuck` %d; want %d", step, rep.Stuck, len(stuck), len(open), want)
		}
		if want == 0 {
			return 0
		}
		if stuck[0].ID != id || stuck[0].DiscrepancyID != open[0].ID {
			t.Fatalf("%s: `stuck` %+v, `discrepancies` %+v", step, stuck[0], open[0])
		}
		return open[0].ID
	}

	rep := sweep()
	if !slices.Equal(rep.NewStuck, []string{id}) {
		t.Fatalf("first sweep: new stuck %v, want %s", rep.NewStuck, id)
	}
	mark := agree("marked", rep, 1)

	cli("resolve", fmt.Sprint(mark), "--note", "customer called, waiting for KNET")
	var none []StuckPayment
	decode(&none, "stuck", "--json")
	if len(none) != 0 {
		t.Fatalf("stuck after the resolution: %+v", none)
	}

	rep = sweep()
	if !slices.Equal(rep.NewStuck, []string{id}) {
		t.Fatalf("sweep after the resolution: new stuck %v, want %s again", rep.NewStuck, id)
	}
	if again := agree("reopened", rep, 1); again != mark {
		t.Fatalf("reopened as #%d, want the same mark #%d", again, mark)
	}
	var all []store.Discrepancy
	decode(&all, "discrepancies", "--kind", "stuck", "--all", "--json")
	if len(all) != 1 || all[0].ResolvedAt != nil || all[0].Reopened != 1 || len(all[0].History) != 3 {
		t.Fatalf("discrepancies --all: %+v", all)
	}
	if h := all[0].History[1]; h.Event != store.DiscrepancyResolved || h.By != "alice" || !strings.Contains(h.Note, "customer called, waiting for KNET") {
		t.Fatalf("the kept resolution: %+v", h)
	}
	if all[0].History[2].Event != store.DiscrepancyReopened {
		t.Fatalf("history %+v, want it to end reopened", all[0].History)
	}
	if text := cli("payment", id); !strings.Contains(text, "resolved by alice: by hand (alice): customer called") || !strings.Contains(text, "reopened") {
		t.Fatalf("payment printed:\n%s", text)
	}

	// Marked and still open: nothing new to say.
	for range 2 {
		rep = sweep()
		if len(rep.NewStuck) != 0 {
			t.Fatalf("sweep of a payment marked stuck: new stuck %v", rep.NewStuck)
		}
		agree("still stuck", rep, 1)
	}
}
