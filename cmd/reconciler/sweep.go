package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/report"
	"knetrecon/internal/store"
)

// startSweep takes part in the sweep's lease, schedules the sweep on cron (SkipIfStillRunning,
// Recover) and starts the alerter; only the lease's holder sweeps and alerts, so only it calls
// Checkout.com. stopSweep undoes it (and gives the lease up, for the next one to take at once).
func (m *Main) startSweep(ctx context.Context) error {
	client, err := checkout.NewClient(m.Config.Checkout)
	if err != nil {
		return fmt.Errorf("KNETRECON_CHECKOUT_URL / KNETRECON_CHECKOUT_SECRET_KEY: %w", err)
	}
	log := m.Log.Named("sweep")
	if err := m.startLease(ctx, log); err != nil {
		return err
	}
	metrics := reconcile.NewSweepMetrics(m.Registry)
	m.facts.Fence = func() reconcile.LeaseTerm {
		return reconcile.LeaseTerm{Holder: m.holder(), Epoch: m.leaseEpoch, Term: m.lease.Term()}
	}
	m.sweeper = reconcile.NewSweeper(m.ledger, m.facts, client, log, metrics, m.Config.Sweep)
	m.sweeper.Leader = m.lease.Held
	m.sweeper.Gauges = m.gauges
	m.checker.Store(m.sweeper)
	sweepCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopSweepCtx = cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.lease.Run(sweepCtx, func(held bool, err error) {
			switch {
			case err != nil:
				log.Warn("sweep lease not renewed", zap.Bool("held", held), zap.Error(err))
			case held:
				log.Info("sweep lease taken: this reconciler sweeps", zap.String("holder", m.holder()))
			default:
				log.Info("sweep lease not held: another reconciler sweeps; this one never calls Checkout.com")
			}
		})
	}()
	if m.Config.AlertWebhookURL != "" {
		alerter := reconcile.NewAlerter(m.ledger, m.facts, m.Config.AlertWebhookURL, m.Log.Named("alert"), metrics)
		alerter.Now = m.ledger.Now
		alerter.Leader = m.lease.Held
		m.sweeper.OnDone = alerter.Nudge
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			alerter.Run(sweepCtx, time.Minute)
		}()
	}
	cl := cronLogger{log}
	m.cron = cron.New(cron.WithLogger(cl), cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)))
	if _, err := m.cron.AddFunc(m.Config.SweepSchedule, func() { m.sweepOnce(sweepCtx, log) }); err != nil {
		return fmt.Errorf("KNETRECON_SWEEP_SCHEDULE %q: %w", m.Config.SweepSchedule, err)
	}
	m.cron.Start()
	log.Info("sweep scheduled", zap.String("schedule", m.Config.SweepSchedule), zap.Duration("pending_timeout", m.Config.Sweep.PendingTimeout),
		zap.Duration("void_grace", m.Config.Sweep.VoidGrace), zap.Bool("void_pending", m.Config.Sweep.VoidPending),
		zap.Bool("alerts", m.Config.AlertWebhookURL != ""), zap.Duration("lease_ttl", m.Config.SweepLeaseTTL))
	return nil
}

// sweepOnce is one tick of the schedule: a sweep if this reconciler holds the lease.
func (m *Main) sweepOnce(ctx context.Context, log *zap.Logger) {
	if !m.lease.Held() {
		holder, _ := m.lease.Holder(ctx)
		m.lastSweep.Store(&lastRun{At: time.Now(), Detail: "standby: the sweep runs on " + holder})
		log.Debug("not sweeping: the lease is held by another reconciler", zap.String("holder", holder))
		return
	}
	if g := m.proc.Gap(); !g.Ready() {
		// The ledger lacks what its consumer acked: the sweep would ask about payments as they
		// were before the cut, and the check facts would compare against a ledger behind.
		m.lastSweep.Store(&lastRun{At: time.Now(), Err: "skipped: " + g.Why()})
		log.Warn("sweep skipped: the ledger does not hold everything its consumer acked", zap.String("why", g.Why()))
		return
	}
	if m.proc.Failing() {
		// Its facts would wait behind the held batch, and it would ask again about what it
		// cannot yet read back: the sweep waits for the ledger.
		m.lastSweep.Store(&lastRun{At: time.Now(), Err: "skipped: the ledger refuses writes"})
		log.Warn("sweep skipped: the ledger refuses writes")
		return
	}
	rep, err := m.sweeper.Sweep(ctx, false)
	if err != nil {
		m.lastSweep.Store(&lastRun{At: time.Now(), Err: err.Error()})
		log.Error("sweep failed", zap.Error(err))
		return
	}
	asked := 0
	for _, n := range rep.Outcomes {
		asked += n
	}
	m.lastSweep.Store(&lastRun{At: time.Now(), Detail: fmt.Sprintf("%d asked of Checkout.com, %d stuck", asked, rep.Stuck)})
	log.Info("sweep done", zap.String("duration", rep.Duration), zap.Any("outcomes", rep.Outcomes),
		zap.Int("stuck", rep.Stuck), zap.Strings("new_stuck", rep.NewStuck), zap.Strings("unstuck", rep.Unstuck))
}

// holder names this reconciler in the lease: its consumer and host.
func (m *Main) holder() string {
	host, _ := os.Hostname()
	return m.Config.Consumer.Durable + "@" + host
}

// startLease opens the lease bucket (as many copies as the stream has) and this process's claim.
func (m *Main) startLease(ctx context.Context, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, m.Config.StartTimeout)
	defer cancel()
	kv, err := events.EnsureLeases(ctx, m.js, m.Config.SweepLeaseTTL)
	if err != nil {
		return err
	}
	ttl, err := leaseTTL(ctx, kv, m.Config.SweepLeaseTTL, log)
	if err != nil {
		return err
	}
	m.lease = events.NewLease(kv, events.SweepLease, m.holder(), ttl)
	if m.leaseEpoch, err = events.BucketEpoch(ctx, kv); err != nil {
		return err
	}
	// Read at each scrape from the lease itself (timed by the bucket's TTL): a holder paused past
	// its lease says 0 the moment it runs again, before its next renewal tells it so.
	m.leader = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "knetrecon_reconciler_sweep_leader",
		Help: "1 while this reconciler holds the sweep's lease (sweeps and alerts), 0 on standby."},
		func() float64 { return map[bool]float64{true: 1}[m.lease.Held()] })
	m.Registry.MustRegister(m.leader)
	log.Info("sweep lease bucket ready", zap.String("bucket", events.LeaseBucket))
	return nil
}

// leaseTTL is the lease bucket's TTL, which times every holder's lease; a local setting that
// differs is said once (the bucket keeps the TTL of whoever created it).
func leaseTTL(ctx context.Context, kv jetstream.KeyValue, local time.Duration, log *zap.Logger) (time.Duration, error) {
	ttl, err := events.BucketTTL(ctx, kv)
	if err != nil {
		return 0, err
	}
	if ttl <= 0 {
		return 0, fmt.Errorf("lease bucket %s has no TTL: a dead holder's lease would never expire; delete the bucket (nats kv rm %s) and restart", events.LeaseBucket, events.LeaseBucket)
	}
	if ttl != local {
		log.Warn("KNETRECON_SWEEP_LEASE_TTL differs from the lease bucket's TTL; the bucket's is used (it expires the keys)",
			zap.Duration("setting", local), zap.Duration("bucket_ttl", ttl))
	}
	return ttl, nil
}

// stopSweep stops scheduling, cancels the sweep in progress and waits for it, bounded by ctx.
func (m *Main) stopSweep(ctx context.Context) {
	if m.cron == nil {
		return
	}
	done := m.cron.Stop()
	if m.stopSweepCtx != nil {
		m.stopSweepCtx()
	}
	select {
	case <-done.Done():
	case <-ctx.Done():
		m.Log.Warn("sweep did not stop in time")
	}
}

// cronLogger adapts zap to cron's logger.
type cronLogger struct{ log *zap.Logger }

// Info logs cron's routine messages at debug level.
func (c cronLogger) Info(msg string, kv ...any) { c.log.Sugar().Debugw("cron: "+msg, kv...) }

// Error logs cron's errors (a recovered panic in a sweep among them).
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.log.Sugar().Errorw("cron: "+msg, append(kv, "error", err)...)
}

// cmdSweep runs one sweep now and prints what it did (or, with --dry-run, would do).
func cmdSweep(ctx context.Context, cfg Config, log *zap.Logger, once, dryRun, asJSON bool, stdout io.Writer, fail func(error) int) int {
	if !once {
		return fail(badUsage("usage: reconciler sweep --once [--dry-run] [--json] (the schedule runs inside `reconciler run`)"))
	}
	r, err := openRoad(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer r.close()
	client, err := checkout.NewClient(cfg.Checkout)
	if err != nil {
		return fail(err)
	}
	sw := reconcile.NewSweeper(r.ledger, r.facts, client, log.Named("sweep"), nil, cfg.Sweep)
	if !dryRun {
		// One sweeper at a time: take the lease as a running reconciler would, or step back.
		kv, err := events.EnsureLeases(ctx, r.js, cfg.SweepLeaseTTL)
		if err != nil {
			return fail(err)
		}
		host, _ := os.Hostname()
		ttl, err := leaseTTL(ctx, kv, cfg.SweepLeaseTTL, log)
		if err != nil {
			return fail(err)
		}
		holder := "cli:" + cfg.Consumer.Durable + "@" + host
		lease := events.NewLease(kv, events.SweepLease, holder, ttl)
		if held, err := lease.Try(ctx); err != nil || !held {
			holder, _ := lease.Holder(ctx)
			return fail(fmt.Errorf("the sweep's lease is held by %s: a running reconciler sweeps (use --dry-run to look without writing) %v", holder, err))
		}
		defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
		sw.Leader = lease.Held
		epoch, err := events.BucketEpoch(ctx, kv)
		if err != nil {
			return fail(err)
		}
		r.facts.Fence = func() reconcile.LeaseTerm {
			return reconcile.LeaseTerm{Holder: holder, Epoch: epoch, Term: lease.Term()}
		}
	}
	rep, err := sw.Sweep(ctx, dryRun)
	if err != nil {
		return fail(err)
	}
	verb := "did"
	if dryRun {
		verb = "would do (dry run: nothing written, nothing voided)"
	}
	if err := printSweep(stdout, rep, asJSON, fmt.Sprintf("sweep at %s, %s: what it %s", localTime(rep.Started, cfg.ReportLocation), rep.Duration, verb)); err != nil {
		return fail(err)
	}
	if !asJSON {
		fmt.Fprintf(stdout, "stuck: %d (new %v, resolved %v)\n", rep.Stuck, rep.NewStuck, rep.Unstuck)
	}
	return 0
}

// cmdReconcile checks every payment seen or with activity in the days from..to (YYYY-MM-DD in the
// report time zone, both included) against Checkout.com, both ways; --apply records what it learns.
func cmdReconcile(ctx context.Context, cfg Config, log *zap.Logger, from, to string, apply, asJSON bool, stdout io.Writer, fail func(error) int) int {
	if from == "" || to == "" {
		return fail(badUsage("usage: reconciler reconcile --from YYYY-MM-DD --to YYYY-MM-DD [--apply] [--json]"))
	}
	start, _, err := report.Day(from, cfg.ReportLocation)
	if err != nil {
		return fail(badUsage("--from: %v", err))
	}
	_, end, err := report.Day(to, cfg.ReportLocation)
	if err != nil {
		return fail(badUsage("--to: %v", err))
	}
	if !end.After(start) {
		return fail(badUsage("--to %s is before --from %s", to, from))
	}
	r, err := openRoad(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer r.close()
	client, err := checkout.NewClient(cfg.Checkout)
	if err != nil {
		return fail(err)
	}
	rep, err := reconcile.NewSweeper(r.ledger, r.facts, client, log.Named("reconcile"), nil, cfg.Sweep).Reconcile(ctx, start, end, apply)
	if err != nil {
		return fail(err)
	}
	verb := "recorded"
	if !apply {
		verb = "found (nothing written: --apply records it)"
	}
	if err := printSweep(stdout, rep, asJSON, fmt.Sprintf("reconcile %s to %s, %d payments, %s: what it %s", from, to, len(rep.Decisions), rep.Duration, verb)); err != nil {
		return fail(err)
	}
	return reconcileExit(rep, fail)
}

// reconcileExit is reconcile's exit status: ExitFailed when a payment could not be checked (or
// its check not applied here), ExitDifferences when the ledger and Checkout.com differed (money
// learned, a payment Checkout.com does not know, a mismatch), else ExitOK.
func reconcileExit(rep reconcile.Report, fail func(error) int) int {
	failed, differ := 0, 0
	for _, d := range rep.Decisions {
		switch {
		case d.Error != "" || d.NotApplied:
			failed++
		case len(d.Discrepancies) > 0 || d.Outcome == reconcile.CheckRecovered || d.Outcome == reconcile.CheckNotFound:
			differ++
		}
	}
	if failed > 0 {
		return fail(fmt.Errorf("%d of %d payments not checked (see their errors above)", failed, len(rep.Decisions)))
	}
	if differ > 0 {
		return ExitDifferences
	}
	return ExitOK
}

func exitOf(err error, fail func(error) int) int {
	if err != nil {
		return fail(err)
	}
	return 0
}

// printSweep prints a sweep's or a reconciliation's decisions, as JSON or as lines under title.
func printSweep(stdout io.Writer, rep reconcile.Report, asJSON bool, title string) error {
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintln(stdout, title)
	for _, d := range rep.Decisions {
		line := fmt.Sprintf("  %s  age %-8s ledger %-10s provider %-10s %s", d.PaymentID, d.Age, d.LedgerStatus, d.ProviderStatus, d.Outcome)
		if d.Verification {
			line += "  (verification of a final payment)"
		}
		if d.Action != "" {
			line += "  action " + d.Action
		}
		if len(d.Applied) > 0 {
			line += fmt.Sprintf("  applied %v", d.Applied)
		}
		if len(d.Discrepancies) > 0 {
			line += fmt.Sprintf("  discrepancies %v", d.Discrepancies)
		}
		if d.Error != "" {
			line += "  error: " + d.Error
		}
		if d.NotApplied {
			line += "  (published, not applied to this ledger within the wait)"
		}
		fmt.Fprintln(stdout, line)
	}
	keys := make([]string, 0, len(rep.Outcomes))
	for k := range rep.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprint(stdout, "outcomes:")
	for _, k := range keys {
		fmt.Fprintf(stdout, " %s=%d", k, rep.Outcomes[k])
	}
	fmt.Fprintln(stdout)
	return nil
}

// StuckPayment is one line of `reconciler stuck`: the payment, why it is stuck, and the last
// checks (what Checkout.com said and what was tried).
type StuckPayment struct {
	ID string `json:"id"`
	// DiscrepancyID is the stuck discrepancy's id: what `reconciler resolve` takes.
	DiscrepancyID  int64               `json:"discrepancy_id"`
	Status         string              `json:"status"`
	ProviderStatus string              `json:"provider_status,omitempty"`
	Amount         int64               `json:"amount"`
	Currency       string              `json:"currency"`
	Age            string              `json:"age"`
	StuckSince     time.Time           `json:"stuck_since"`
	Reason         json.RawMessage     `json:"reason"`
	Checks         []store.CheckRecord `json:"checks"`
}

// cmdStuck lists the payments marked stuck and not yet final.
func cmdStuck(ctx context.Context, cfg Config, asJSON bool, stdout io.Writer, fail func(error) int) int {
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	ds, err := l.Discrepancies(ctx, store.DiscrepancyFilter{Kind: reconcile.KindStuck})
	if err != nil {
		return fail(err)
	}
	now := time.Now()
	out := []StuckPayment{}
	for _, d := range ds {
		p, err := l.Payment(ctx, d.PaymentID)
		if err != nil {
			return fail(err)
		}
		checks, err := l.Checks(ctx, d.PaymentID, 5)
		if err != nil {
			return fail(err)
		}
		out = append(out, StuckPayment{ID: p.ID, DiscrepancyID: d.ID, Status: string(p.Status), ProviderStatus: p.ProviderStatus, Amount: p.Amount,
			Currency: p.Currency, Age: now.Sub(p.AgeBase()).Round(time.Second).String(), StuckSince: d.DetectedAt,
			Reason: d.Details, Checks: checks})
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fail(err)
		}
		return 0
	}
	if len(out) == 0 {
		fmt.Fprintln(stdout, nothing("stuck payments"))
		return 0
	}
	for _, s := range out {
		fmt.Fprintf(stdout, "%s  %s  age %s  stuck since %s  provider %q  (reconciler resolve %d --note …)\n  reason %s\n", s.ID, s.Status, s.Age,
			localTime(s.StuckSince, cfg.ReportLocation), s.ProviderStatus, s.DiscrepancyID, s.Reason)
		for _, c := range s.Checks {
			fmt.Fprintf(stdout, "    %s  %-16s provider %-10q action %-15s %s\n", localTime(c.CheckedAt, cfg.ReportLocation), c.Outcome, c.ProviderStatus, c.Action, c.Error)
		}
	}
	return 0
}
