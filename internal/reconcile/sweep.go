package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"knetrecon/internal/checkout"
	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// KindStuck marks a payment that stayed open past KNETRECON_STUCK_AFTER or that the sweep cannot
// resolve (void refused, the API failing again and again). It is a discrepancy like the others,
// alerted when it opens, and resolved when the payment becomes final; resolved by hand while the
// payment is still open, the next sweep reopens it. It counts only while the payment is not final
// (the rule of store.Ledger.Discrepancies and OpenCounts).
const KindStuck = payment.KindStuck

// ErrSweepRunning is returned by Sweep while another sweep of the same Sweeper runs.
var ErrSweepRunning = errors.New("a sweep is already running")

// Check outcomes, as stored in payment_checks.outcome and counted in metrics.
const (
	CheckNotDue          = "not_due"
	CheckStillPending    = "still_pending"
	CheckVoidPending     = "void_pending"
	CheckExpiryConfirmed = "expiry_confirmed"
	CheckCancelConfirmed = "cancel_confirmed"
	CheckDeclineConfirm  = "decline_confirmed"
	CheckVoidConfirmed   = "void_confirmed"
	CheckRecovered       = "recovered"
	CheckMatch           = "match"
	CheckNotFound        = "not_found"
	CheckError           = "error"
	CheckVoidRefused     = "void_refused"
	CheckVoidFailed      = "void_failed"
	// CheckVerified: a final payment verified, the API agreeing with the ledger.
	CheckVerified = "verified"
)

// ActionVoidRequested is the action recorded when the sweep asked Checkout.com to void a payment.
const ActionVoidRequested = "void_requested"

// SweepConfig tunes the sweep. See DefaultSweepConfig for the defaults and docs/ledger.md for the
// variables.
type SweepConfig struct {
	// PendingTimeout is KNET's seven minutes: a payment older than this is asked about.
	PendingTimeout time.Duration
	// VoidGrace is waited past PendingTimeout before voiding, to let Checkout.com's own expiry land.
	VoidGrace time.Duration
	// VoidPending voids payments still Pending past PendingTimeout+VoidGrace.
	VoidPending bool
	// StuckAfter: a payment open longer than this is stuck.
	StuckAfter time.Duration
	// Backoff is when to check, in multiples of PendingTimeout from the payment's age base; after
	// the last entry, hourly until a day old, then daily.
	Backoff []float64
	// MaxErrors is how many failed checks in a row make a payment stuck (for a verification:
	// give its step up).
	MaxErrors int
	// VerifyAfter are the verification steps of a final payment, counted from its latest event
	// (a webhook's, or an API action's): Checkout.com has stopped retrying a lost webhook by the
	// first, so every final payment is asked about then; the later steps apply while it holds
	// money a refund could still move. Empty: no verification.
	VerifyAfter []time.Duration
	// VerifyPerSweep bounds the verifications of one sweep, so that a backlog of them (after an
	// upgrade, a replay, a long outage) never holds up the open payments' next sweep; the rest
	// wait for the following sweeps, earliest first.
	VerifyPerSweep int
	// Concurrency bounds the API calls in flight (the client's rate limit still applies).
	Concurrency int
	// PageSize is how many due payments are read at a time.
	PageSize int
	// MaxSkew: an event dated further ahead of its receipt is timed by its receipt and flagged
	// clock_skew (the ledger's schedule; see store.Schedule).
	MaxSkew time.Duration
	// Now is the clock.
	Now func() time.Time
}

// Schedule is the ledger schedule these settings ask for: published as a settings fact by the
// sweep's holder, so that every replica applies the stream with it.
func (c SweepConfig) Schedule() store.Schedule {
	s := store.Schedule{FirstCheckAfter: c.PendingTimeout, MaxSkew: c.MaxSkew}
	if len(c.VerifyAfter) > 0 {
		s.VerifyAfter = c.VerifyAfter[0]
	}
	return s
}

// DefaultSweepConfig returns the defaults: 7m timeout, 5m grace, voids on, stuck after 30m.
func DefaultSweepConfig() SweepConfig {
	return SweepConfig{
		PendingTimeout: 7 * time.Minute,
		VoidGrace:      5 * time.Minute,
		VoidPending:    true,
		StuckAfter:     30 * time.Minute,
		Backoff:        []float64{1, 1.15, 1.4, 2, 4, 8},
		MaxErrors:      5,
		VerifyAfter:    []time.Duration{31 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour},
		VerifyPerSweep: 1000,
		Concurrency:    8,
		PageSize:       200,
		MaxSkew:        24 * time.Hour,
		Now:            time.Now,
	}
}

// Validate checks the configuration; messages name the variables.
func (c SweepConfig) Validate() error {
	var errs []error
	if c.PendingTimeout <= 0 {
		errs = append(errs, fmt.Errorf("KNETRECON_PENDING_TIMEOUT must be positive, got %s", c.PendingTimeout))
	}
	if c.VoidGrace < 0 {
		errs = append(errs, fmt.Errorf("KNETRECON_VOID_GRACE must not be negative, got %s", c.VoidGrace))
	}
	if c.StuckAfter < c.PendingTimeout {
		errs = append(errs, fmt.Errorf("KNETRECON_STUCK_AFTER (%s) must not be shorter than KNETRECON_PENDING_TIMEOUT (%s)", c.StuckAfter, c.PendingTimeout))
	}
	if len(c.Backoff) == 0 || !slices.IsSorted(c.Backoff) || c.Backoff[0] < 1 {
		errs = append(errs, fmt.Errorf("KNETRECON_SWEEP_BACKOFF must be increasing multiples of the timeout starting at 1 or more, got %v", c.Backoff))
	}
	if !slices.IsSorted(c.VerifyAfter) || (len(c.VerifyAfter) > 0 && c.VerifyAfter[0] <= 0) {
		errs = append(errs, fmt.Errorf("KNETRECON_VERIFY_AFTER must be increasing positive durations, got %v", c.VerifyAfter))
	}
	if len(c.VerifyAfter) > 0 && c.VerifyPerSweep < 1 {
		errs = append(errs, fmt.Errorf("KNETRECON_VERIFY_PER_SWEEP must be at least 1, got %d", c.VerifyPerSweep))
	}
	if c.MaxErrors < 1 {
		errs = append(errs, fmt.Errorf("KNETRECON_SWEEP_MAX_ERRORS must be at least 1, got %d", c.MaxErrors))
	}
	if c.MaxSkew < 0 {
		errs = append(errs, fmt.Errorf("KNETRECON_MAX_CLOCK_SKEW must not be negative, got %s", c.MaxSkew))
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		errs = append(errs, fmt.Errorf("KNETRECON_SWEEP_CONCURRENCY must be 1 to 256, got %d", c.Concurrency))
	}
	return errors.Join(errs...)
}

// Sweeper asks Checkout.com about payments left open and turns the answers into ledger facts
// through the same Apply as webhooks.
type Sweeper struct {
	ledger  *store.Ledger
	client  *checkout.Client
	log     *zap.Logger
	metrics *SweepMetrics
	cfg     SweepConfig
	running sync.Mutex
	facts   *FactBus
	// OnDone, when set, is called after every sweep that wrote (the alerter's nudge).
	OnDone func()
	// Leader, when set, reports whether this reconciler still holds the sweep's lease: a void is
	// asked for only while it does (a void's idempotency key makes a second one harmless anyway).
	Leader func() bool
	// Gauges, when set, are refreshed from the ledger after every sweep.
	Gauges *Gauges
}

// NewSweeper returns a Sweeper. metrics may be nil (a one-off sweep from the command line).
//
// What a sweep learns and decides goes to facts, the stream, never straight into the ledger: every
// reconciler's consumer applies it, this one's included, before the sweep reads on.
func NewSweeper(ledger *store.Ledger, facts *FactBus, client *checkout.Client, log *zap.Logger, metrics *SweepMetrics, cfg SweepConfig) *Sweeper {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 200
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.VerifyPerSweep <= 0 {
		cfg.VerifyPerSweep = DefaultSweepConfig().VerifyPerSweep
	}
	return &Sweeper{ledger: ledger, facts: facts, client: client, log: log, metrics: metrics, cfg: cfg}
}

// Decision is what the sweep did, or in a dry run would do, about one payment.
type Decision struct {
	PaymentID      string         `json:"payment_id"`
	LedgerStatus   payment.Status `json:"ledger_status"`
	Age            string         `json:"age"`
	ProviderStatus string         `json:"provider_status,omitempty"`
	Outcome        string         `json:"outcome"`
	Action         string         `json:"action,omitempty"`
	Applied        []string       `json:"applied,omitempty"`
	Discrepancies  []string       `json:"discrepancies,omitempty"`
	Error          string         `json:"error,omitempty"`
	// NextCheckAt is when the payment is asked about next; for a verification, zero when no
	// step is left.
	NextCheckAt time.Time `json:"next_check_at"`
	// Verification marks the check of a final payment (see SweepConfig.VerifyAfter).
	Verification bool `json:"verification,omitempty"`
	// NotApplied: the check is on the stream but this ledger had not applied it within the wait,
	// so Outcome, Applied and Discrepancies are what the sweep saw, not what the ledger did.
	NotApplied bool `json:"not_applied,omitempty"`
	// verifiedFrom is the latest event a verification counted its next step from.
	verifiedFrom time.Time
	// manual marks a check an operator asked for (Reconcile): schedules are left alone.
	manual bool
	// operator is who asked for this check, kept in the audit trail with its result.
	operator *OperatorNote
}

// Report sums up one sweep.
type Report struct {
	Started   time.Time      `json:"started"`
	Duration  string         `json:"duration"`
	DryRun    bool           `json:"dry_run"`
	Decisions []Decision     `json:"decisions"`
	Outcomes  map[string]int `json:"outcomes"`
	NewStuck  []string       `json:"new_stuck,omitempty"`
	Unstuck   []string       `json:"unstuck,omitempty"`
	Stuck     int            `json:"stuck"`
}

// Sweep runs one sweep: every open payment that is due, oldest first, then every final payment
// due for verification, in pages, with at most Concurrency API calls at once; then it refreshes
// the stuck list. A dry run asks the API (reads only) and writes nothing: no ledger change, no
// check recorded, no void.
func (s *Sweeper) Sweep(ctx context.Context, dryRun bool) (Report, error) {
	if !s.running.TryLock() {
		return Report{}, ErrSweepRunning
	}
	defer s.running.Unlock()
	now := s.cfg.Now()
	started := time.Now()
	rep := Report{Started: now, DryRun: dryRun, Outcomes: map[string]int{}}

	if !dryRun {
		if err := s.publishSchedule(ctx, now); err != nil {
			return rep, err
		}
	}
	if err := s.sweepList(ctx, false, now, dryRun, &rep); err != nil {
		return rep, err
	}
	if err := s.learnKNET(ctx, now, dryRun, &rep); err != nil {
		return rep, err
	}
	if len(s.cfg.VerifyAfter) > 0 {
		if err := s.sweepList(ctx, true, now, dryRun, &rep); err != nil {
			return rep, err
		}
	}
	if err := s.refreshStuck(ctx, now, dryRun, &rep); err != nil {
		return rep, err
	}
	rep.Duration = time.Since(started).Round(time.Millisecond).String()
	if s.metrics != nil {
		s.metrics.duration.Observe(time.Since(started).Seconds())
	}
	if s.Gauges != nil {
		if err := s.Gauges.Refresh(ctx, now); err != nil {
			s.log.Warn("sweep done, gauges not refreshed", zap.Error(err))
		}
	}
	if !dryRun && s.OnDone != nil {
		s.OnDone()
	}
	return rep, nil
}

// publishSchedule publishes this sweeper's schedule as a settings fact when the ledger's differs.
func (s *Sweeper) publishSchedule(ctx context.Context, now time.Time) error {
	want := s.cfg.Schedule()
	have, err := s.ledger.ScheduleOfRecord(ctx)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	if have == want {
		return nil
	}
	id := factID(FactSettings, want.FirstCheckAfter.String(), want.VerifyAfter.String(), want.MaxSkew.String(), stamp(now))
	if _, err := s.facts.Commit(ctx, Fact{Kind: FactSettings, ID: id, At: now, Settings: &want}); err != nil {
		return fmt.Errorf("sweep: settings: %w", err)
	}
	s.log.Info("ledger schedule set", zap.Duration("first_check_after", want.FirstCheckAfter),
		zap.Duration("verify_after", want.VerifyAfter), zap.Duration("max_skew", want.MaxSkew))
	return nil
}

// sweepList checks every payment of one due list: open payments, or (verify) final ones, at
// most VerifyPerSweep of those.
func (s *Sweeper) sweepList(ctx context.Context, verify bool, now time.Time, dryRun bool, rep *Report) error {
	check, left := s.check, -1
	if verify {
		check, left = s.verify, s.cfg.VerifyPerSweep
	}
	// A dry run publishes no settings fact: when this sweeper's first check comes sooner than the
	// ledger's, it reads the payments never checked that its schedule would make due, as the
	// real sweep would once its settings are applied.
	due, early := now, time.Duration(0)
	if sched, err := s.ledger.ScheduleOfRecord(ctx); err == nil && dryRun && !verify && sched.FirstCheckAfter > s.cfg.PendingTimeout {
		early = sched.FirstCheckAfter - s.cfg.PendingTimeout
		due = now.Add(early)
	}
	var cursor store.Cursor
	for left != 0 {
		limit := s.cfg.PageSize
		if left > 0 {
			limit = min(limit, left)
			left -= limit
		}
		page, next, err := s.ledger.DuePayments(ctx, store.DueQuery{Due: due, Verify: verify, After: cursor, Limit: limit})
		if err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		if early > 0 {
			page = slices.DeleteFunc(page, func(p store.Payment) bool { return p.LastCheckedAt != nil && p.NextCheckAt.After(now) })
		}
		decisions := s.checkPage(ctx, page, func(p *store.Payment) Decision { return check(ctx, p, now, dryRun) })
		for _, d := range decisions {
			if d.PaymentID == "" {
				continue
			}
			rep.Outcomes[d.Outcome]++
			if d.Outcome != CheckNotDue {
				rep.Decisions = append(rep.Decisions, d)
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		if next == (store.Cursor{}) {
			return nil
		}
		cursor = next
	}
	return nil
}

// CheckReconciled is the outcome of a check `reconciler reconcile` asked for.
const CheckReconciled = "reconciled"

// Reconcile checks every payment first seen or with an event in [from, to), as a verification
// does, at the API's rate limit: it learns what Checkout.com knows and the ledger lacks (a
// recovered capture or refund) and compares the two both ways (status_mismatch, amount_mismatch;
// see store.Tx.CompareWithProvider). It leaves the sweep's schedules alone. With apply false it
// writes nothing: each decision lists what would be learned, and where the ledger and the API
// differ before learning.
func (s *Sweeper) Reconcile(ctx context.Context, from, to time.Time, apply bool) (Report, error) {
	if !s.running.TryLock() {
		return Report{}, ErrSweepRunning
	}
	defer s.running.Unlock()
	now := s.cfg.Now()
	started := time.Now()
	rep := Report{Started: now, DryRun: !apply, Outcomes: map[string]int{}}
	after := ""
	for {
		page, err := s.ledger.PaymentsActive(ctx, from, to, after, s.cfg.PageSize)
		if err != nil {
			return rep, fmt.Errorf("reconcile: %w", err)
		}
		if len(page) == 0 {
			break
		}
		decisions := s.checkPage(ctx, page, func(p *store.Payment) Decision { return s.reconcileOne(ctx, p, now, !apply, Decision{}) })
		for _, d := range decisions {
			if d.PaymentID != "" {
				rep.Outcomes[d.Outcome]++
				rep.Decisions = append(rep.Decisions, d)
			}
		}
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("reconcile: %w", err)
		}
		after = page[len(page)-1].ID
	}
	rep.Duration = time.Since(started).Round(time.Millisecond).String()
	return rep, nil
}

// Check asks Checkout.com about one payment now and applies what it learns, as Reconcile does
// for a window (the operator's "check now", op says who asked and why). It returns the decision;
// store.ErrNotFound when the ledger has no such payment.
func (s *Sweeper) Check(ctx context.Context, id string, op *OperatorNote) (Decision, error) {
	p, err := s.ledger.Payment(ctx, id)
	if err != nil {
		return Decision{}, err
	}
	d := Decision{operator: op}
	return s.reconcileOne(ctx, &p.Payment, s.cfg.Now(), false, d), nil
}

// reconcileOne checks one payment for Reconcile.
func (s *Sweeper) reconcileOne(ctx context.Context, p *store.Payment, now time.Time, dryRun bool, d Decision) Decision {
	d.PaymentID, d.LedgerStatus, d.Age, d.manual = p.ID, p.Status, now.Sub(p.FirstSeenAt).Round(time.Second).String(), true
	pay, actions, latency, err := s.fetch(ctx, p)
	var ans answer
	switch {
	case errors.Is(err, checkout.ErrNotFound):
		d.Outcome, ans.notFound = CheckNotFound, true
	case err != nil:
		d.Outcome, d.Error = CheckError, err.Error()
	default:
		d.ProviderStatus, ans.pay, ans.actions = pay.Status, pay, actions
		d.Outcome = CheckReconciled // becomes recovered in record when the API taught the ledger money
		if dryRun {
			st := payment.Status(pay.Status)
			if st.Known() && st != p.Status {
				d.Discrepancies = append(d.Discrepancies, string(payment.KindStatusMismatch))
			}
			if b := pay.Balances; b != nil && (b.TotalCaptured != p.Captured || b.TotalRefunded != p.Refunded) {
				d.Discrepancies = append(d.Discrepancies, string(payment.KindAmountMismatch))
			}
		}
	}
	return s.record(ctx, p, ans, d, "", latency, now, dryRun)
}

// answer is what the API said about a payment: the payment and its actions, or 404.
type answer struct {
	pay      *checkout.Payment
	actions  []checkout.Action
	notFound bool
}

// CheckKNETIDs is the outcome of asking for a captured KNET payment's KNET ids.
const CheckKNETIDs = "knet_ids"

// learnKNET asks Checkout.com for the KNET ids (the bank statement's keys) of every captured
// KNET payment that has none yet, at most VerifyPerSweep a sweep, oldest first: webhooks do not
// carry them, and settlement matching needs them the next day. The answer is applied like any
// API snapshot; a payment whose answer has none is marked asked, so it is asked once.
func (s *Sweeper) learnKNET(ctx context.Context, now time.Time, dryRun bool, rep *Report) error {
	if dryRun {
		return nil
	}
	missing, err := s.ledger.KNETMissing(ctx, now, s.cfg.VerifyPerSweep)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	for i := range missing {
		if ctx.Err() != nil {
			return fmt.Errorf("sweep: %w", ctx.Err())
		}
		p := &missing[i]
		pay, err := s.client.GetPayment(ctx, p.ID)
		s.countAPI(err)
		k := &KNETFact{PaymentID: p.ID, Payment: pay, NotFound: errors.Is(err, checkout.ErrNotFound)}
		if err != nil && !k.NotFound {
			// Asked again next sweep; a payment Checkout.com does not know is marked asked.
			s.log.Warn("KNET ids not fetched", zap.String("payment_id", p.ID), zap.Error(err))
			continue
		}
		if _, err := s.facts.Commit(ctx, Fact{Kind: FactKNET, ID: factID(FactKNET, p.ID, stamp(now)), At: now, KNET: k}); err != nil {
			s.log.Error("KNET ids not recorded", zap.String("payment_id", p.ID), zap.Error(err))
			continue
		}
		if k.NotFound {
			s.log.Warn("KNET ids not fetched", zap.String("payment_id", p.ID), zap.Error(err))
			continue
		}
		ids := knetOf(pay.Source)
		if ids == nil {
			ids = &store.KNETIDs{}
		}
		rep.Outcomes[CheckKNETIDs]++
		if s.metrics != nil {
			s.metrics.checks.WithLabelValues(CheckKNETIDs).Inc()
		}
		s.log.Info("KNET ids learned", zap.String("payment_id", p.ID), zap.String("knet_payment_id", ids.PaymentID),
			zap.String("knet_transaction_id", ids.TransactionID), zap.String("bank_reference", ids.BankReference))
	}
	return nil
}

// knetOf returns KNET's ids from a payment's source (nil for a source that is not KNET).
func knetOf(src checkout.Source) *store.KNETIDs {
	if !strings.EqualFold(src.Type, "knet") {
		return nil
	}
	return &store.KNETIDs{PaymentID: src.KNETPaymentID, TransactionID: src.KNETTransactionID, BankReference: src.BankReference,
		AuthCode: src.AuthCode, PostDate: src.PostDate, Result: src.KNETResult, PTLF: src.PTLF,
		UDF: [5]string{src.UserDefinedField1, src.UserDefinedField2, src.UserDefinedField3, src.UserDefinedField4, src.UserDefinedField5}}
}

// checkPage runs check over a page of payments, Concurrency at a time (the client's rate limiter
// paces the API calls), and returns the decisions in page order; it stops starting checks when
// ctx ends.
func (s *Sweeper) checkPage(ctx context.Context, page []store.Payment, check func(*store.Payment) Decision) []Decision {
	decisions := make([]Decision, len(page))
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range page {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			decisions[i] = check(&page[i])
		}()
	}
	wg.Wait()
	return decisions
}

// check asks about one payment and records what it learned. Errors are part of the decision: one
// payment's trouble never stops the sweep.
func (s *Sweeper) check(ctx context.Context, p *store.Payment, now time.Time, dryRun bool) Decision {
	base := p.AgeBase()
	age := now.Sub(base)
	d := Decision{PaymentID: p.ID, LedgerStatus: p.Status, Age: age.Round(time.Second).String()}
	if age < s.cfg.PendingTimeout {
		// Met before its first check is due: schedule that check and move on.
		d.Outcome, d.NextCheckAt = CheckNotDue, base.Add(s.cfg.PendingTimeout)
		if !dryRun {
			if _, err := s.facts.Commit(ctx, Fact{Kind: FactSchedule, ID: factID(FactSchedule, p.ID, stamp(d.NextCheckAt)), At: now,
				Schedule: &ScheduleFact{PaymentID: p.ID, NextCheckAt: d.NextCheckAt}}); err != nil {
				d.Error = err.Error()
			}
		}
		return d
	}
	stats, err := s.ledger.CheckStats(ctx, p.ID)
	if err != nil {
		d.Outcome, d.Error = CheckError, err.Error()
		return d
	}
	d.NextCheckAt = s.nextCheck(base, stats.Attempts+1, now)

	pay, actions, latency, err := s.fetch(ctx, p)
	var ans answer
	var stuckReason string
	switch {
	case errors.Is(err, checkout.ErrNotFound):
		d.Outcome, ans.notFound = CheckNotFound, true
	case err != nil:
		d.Outcome, d.Error = CheckError, err.Error()
		if stats.ConsecutiveErrors+1 >= s.cfg.MaxErrors {
			stuckReason = fmt.Sprintf("%d failed checks in a row; last: %v", stats.ConsecutiveErrors+1, err)
		}
	default:
		d.ProviderStatus, ans.pay, ans.actions = pay.Status, pay, actions
		status := payment.Status(pay.Status)
		switch {
		case status == payment.StatusExpired:
			d.Outcome = CheckExpiryConfirmed
		case status == payment.StatusCanceled:
			d.Outcome = CheckCancelConfirmed
		case status == payment.StatusDeclined:
			d.Outcome = CheckDeclineConfirm
		case status == payment.StatusVoided:
			d.Outcome = CheckVoidConfirmed
		case status.Final():
			d.Outcome = CheckMatch // becomes recovered below when the API taught the ledger money
		case status == payment.StatusPending && s.cfg.VoidPending && age >= s.cfg.PendingTimeout+s.cfg.VoidGrace:
			if stats.VoidRequested {
				d.Outcome = CheckVoidPending
				break
			}
			d.Outcome = CheckStillPending
			if dryRun {
				d.Action = "would_void"
				break
			}
			if s.Leader != nil && !s.Leader() {
				break // the lease was lost during the sweep: the new leader voids it
			}
			_, verr := s.client.VoidPayment(ctx, p.ID, checkout.VoidRequest{Reference: "knetrecon-sweep-expired"})
			switch {
			case errors.Is(verr, checkout.ErrForbidden):
				d.Outcome, d.Error = CheckVoidRefused, verr.Error()
				stuckReason = "void refused by Checkout.com: " + verr.Error()
			case verr != nil:
				d.Outcome, d.Error = CheckVoidFailed, verr.Error()
				if stats.ConsecutiveErrors+1 >= s.cfg.MaxErrors {
					stuckReason = fmt.Sprintf("%d failed checks in a row; last: %v", stats.ConsecutiveErrors+1, verr)
				}
			default:
				d.Action = ActionVoidRequested
				if s.metrics != nil {
					s.metrics.voids.Inc()
				}
				// Look again soon for the void's outcome.
				d.NextCheckAt = now.Add(s.cfg.PendingTimeout)
			}
		default:
			d.Outcome = CheckStillPending
		}
	}
	return s.record(ctx, p, ans, d, stuckReason, latency, now, dryRun)
}

// verify asks about one final payment due for verification: money the API knows and the ledger
// does not (a capture or refund whose webhook was lost for good) is posted through Apply, as in
// check. The next step is counted from the latest event known, the API's actions included.
func (s *Sweeper) verify(ctx context.Context, p *store.Payment, now time.Time, dryRun bool) Decision {
	anchor := p.FirstSeenAt
	if p.LastEventAt != nil {
		anchor = *p.LastEventAt
	}
	d := Decision{PaymentID: p.ID, LedgerStatus: p.Status, Age: now.Sub(anchor).Round(time.Second).String(), Verification: true}
	stats, err := s.ledger.CheckStats(ctx, p.ID)
	if err != nil {
		d.Outcome, d.Error = CheckError, err.Error()
		return d
	}
	pay, actions, latency, err := s.fetch(ctx, p)
	var ans answer
	switch {
	case errors.Is(err, checkout.ErrNotFound):
		d.Outcome, ans.notFound = CheckNotFound, true
		d.NextCheckAt = s.nextVerify(anchor, now, false)
	case err != nil:
		d.Outcome, d.Error = CheckError, err.Error()
		d.NextCheckAt = now.Add(time.Hour)
		if stats.ConsecutiveErrors+1 >= s.cfg.MaxErrors {
			// This step is given up (its errors are recorded); the next one, if any, asks again.
			d.NextCheckAt = s.nextVerify(anchor, now, p.Captured > p.Refunded)
		}
	default:
		d.ProviderStatus, ans.pay, ans.actions = pay.Status, pay, actions
		inputs := apiInputs(p.ID, pay, actions, now)
		d.Outcome = CheckVerified // becomes recovered in record when the API taught the ledger money
		for _, in := range inputs {
			if in.Type != payment.EventSnapshot && in.OccurredAt.After(anchor) {
				anchor = in.OccurredAt // an action: Apply moves last_event_at to it too
			}
		}
		d.NextCheckAt = s.nextVerify(anchor, now, holdsMoney(pay))
	}
	d.verifiedFrom = anchor
	return s.record(ctx, p, ans, d, "", latency, now, dryRun)
}

// fetch reads a payment from the API, and its actions when the ledger's money disagrees.
func (s *Sweeper) fetch(ctx context.Context, p *store.Payment) (*checkout.Payment, []checkout.Action, time.Duration, error) {
	t0 := time.Now()
	pay, err := s.client.GetPayment(ctx, p.ID)
	var actions []checkout.Action
	if err == nil && needActions(p, pay) {
		actions, err = s.client.GetPaymentActions(ctx, p.ID)
	}
	latency := time.Since(t0)
	s.countAPI(err)
	return pay, actions, latency, err
}

// record publishes what a check learned and decided as one fact (applied by every ledger in one
// transaction: see applyCheck) and fills the decision in from what applying it did here. A dry
// run only lists what it would apply.
func (s *Sweeper) record(ctx context.Context, p *store.Payment, ans answer, d Decision, stuckReason string,
	latency time.Duration, now time.Time, dryRun bool) Decision {
	if dryRun {
		if ans.pay != nil {
			for _, in := range apiInputs(p.ID, ans.pay, ans.actions, now) {
				d.Applied = append(d.Applied, in.Type+" "+in.EventID)
			}
		}
		return d
	}
	f := Fact{Kind: FactCheck, ID: factID(FactCheck, p.ID, stamp(now)), At: now, Operator: d.operator, Check: &CheckFact{
		PaymentID: p.ID, LedgerStatus: p.Status, Age: d.Age, Outcome: d.Outcome, ProviderStatus: d.ProviderStatus,
		Payment: ans.pay, Actions: ans.actions, NotFound: ans.notFound, StuckReason: stuckReason, NextCheckAt: d.NextCheckAt,
		Verify: d.Verification, VerifiedFrom: d.verifiedFrom, KeepSchedule: d.manual, Action: d.Action,
		LatencyMS: latency.Milliseconds(), Error: d.Error,
	}}
	res, err := s.facts.Commit(ctx, f)
	if err != nil {
		d.Error = err.Error()
		s.log.Error("sweep check not recorded", zap.String("payment_id", p.ID), zap.Error(err))
		return d
	}
	if res.Outcome != "" {
		d.Outcome = res.Outcome
	}
	d.Applied, d.Discrepancies = res.Applied, res.Discrepancies
	if res.Waiting {
		d.NotApplied = true
		s.log.Warn("sweep check published, not yet applied here (the consumer is behind)", zap.String("payment_id", p.ID), zap.Uint64("seq", res.Seq))
	}
	if s.metrics != nil {
		s.metrics.checks.WithLabelValues(d.Outcome).Inc()
	}
	s.log.Info("sweep check", zap.String("payment_id", p.ID), zap.String("outcome", d.Outcome),
		zap.Bool("verification", d.Verification), zap.String("provider_status", d.ProviderStatus), zap.String("action", d.Action),
		zap.Strings("discrepancies", d.Discrepancies), zap.Duration("latency", latency), zap.String("error", d.Error))
	return d
}

// nextVerify returns the first verification step after now counted from anchor, the latest
// event; only the first step for a payment holding no money. Zero: no step is left.
func (s *Sweeper) nextVerify(anchor, now time.Time, money bool) time.Time {
	steps := s.cfg.VerifyAfter
	if !money {
		steps = steps[:1]
	}
	for _, step := range steps {
		if at := anchor.Add(step); at.After(now) {
			return at
		}
	}
	return time.Time{}
}

// holdsMoney reports whether the API shows money a refund could still move.
func holdsMoney(pay *checkout.Payment) bool {
	if pay.Balances != nil {
		return pay.Balances.TotalCaptured > pay.Balances.TotalRefunded
	}
	switch payment.Status(pay.Status) {
	case payment.StatusCaptured, payment.StatusPartiallyCaptured, payment.StatusPartiallyRefunded, payment.StatusPaid:
		return true
	}
	return false
}

// nextCheck returns when to check a payment again after its n-th check: at Backoff[n]×timeout
// from its age base, then hourly until it is a day old, then daily; never sooner than a second
// from now, so one sweep never meets the same payment twice.
func (s *Sweeper) nextCheck(base time.Time, n int, now time.Time) time.Time {
	var next time.Time
	if n < len(s.cfg.Backoff) {
		next = base.Add(time.Duration(math.Round(s.cfg.Backoff[n] * float64(s.cfg.PendingTimeout))))
	} else if now.Sub(base) < 24*time.Hour {
		next = now.Add(time.Hour)
	} else {
		next = now.Add(24 * time.Hour)
	}
	// The void is due at timeout+grace: never let the schedule step over it.
	if voidAt := base.Add(s.cfg.PendingTimeout + s.cfg.VoidGrace); s.cfg.VoidPending && now.Before(voidAt) && next.After(voidAt) {
		next = voidAt
	}
	if min := now.Add(time.Second); next.Before(min) {
		next = min
	}
	return next
}

// refreshStuck marks open payments older than StuckAfter as stuck (reopening a mark resolved
// while the payment stayed open), and resolves the stuck mark of payments that became final
// since. It publishes a stuck fact only for a change: a payment marked and still open is left
// alone. rep.Stuck is the ledger's count by the one rule (store.Ledger.OpenCounts) once the fact
// is applied; a dry run's, what it would be.
func (s *Sweeper) refreshStuck(ctx context.Context, now time.Time, dryRun bool, rep *Report) error {
	open, err := s.ledger.Discrepancies(ctx, store.DiscrepancyFilter{Kind: KindStuck})
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	stuck := map[string]bool{}
	for _, d := range open {
		stuck[d.PaymentID] = true
	}
	overdue, err := s.ledger.OpenSince(ctx, now.Add(-s.cfg.StuckAfter), 10000)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	var newly []store.Payment
	for _, p := range overdue {
		if !stuck[p.ID] {
			newly = append(newly, p)
			rep.NewStuck = append(rep.NewStuck, p.ID)
		}
	}
	resolved, err := s.ledger.OpenOnFinal(ctx, KindStuck)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	rep.Unstuck = resolved
	if !dryRun && (len(newly) > 0 || len(resolved) > 0) {
		st := &StuckFact{Resolved: resolved}
		for _, p := range newly {
			st.New = append(st.New, StuckMark{PaymentID: p.ID, LedgerStatus: string(p.Status), ProviderStatus: p.ProviderStatus,
				Reason: fmt.Sprintf("open for %s, longer than %s", now.Sub(p.AgeBase()).Round(time.Second), s.cfg.StuckAfter)})
		}
		if _, err := s.facts.Commit(ctx, Fact{Kind: FactStuck, ID: factID(FactStuck, stamp(now)), At: now, Stuck: st}); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
	}
	_, counts, err := s.ledger.OpenCounts(ctx)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	rep.Stuck = int(counts[KindStuck])
	if dryRun {
		rep.Stuck += len(newly)
	}
	return nil
}

func (s *Sweeper) countAPI(err error) {
	if s.metrics == nil || err == nil {
		return
	}
	status := "network"
	var apiErr *checkout.APIError
	if errors.As(err, &apiErr) {
		status = fmt.Sprint(apiErr.StatusCode)
	}
	s.metrics.apiErrors.WithLabelValues(status).Inc()
}

// needActions reports whether the payment's money must be read from its actions: the API reports
// money the ledger does not hold (or cannot say, without balances).
func needActions(p *store.Payment, pay *checkout.Payment) bool {
	if pay.Balances != nil {
		return pay.Balances.TotalCaptured != p.Captured || pay.Balances.TotalRefunded != p.Refunded
	}
	switch payment.Status(pay.Status) {
	case payment.StatusCaptured, payment.StatusPaid:
		return p.Captured < pay.Amount
	case payment.StatusPartiallyCaptured, payment.StatusPartiallyRefunded, payment.StatusRefunded:
		return true
	}
	return false
}

// apiInputs turns an API answer into ledger inputs: one per approved capture or refund action
// (keyed by its action id, so a webhook for the same action posts nothing twice), oldest first,
// then a snapshot of the reported status. Ids are derived from the content, so asking again and
// hearing the same answer changes nothing.
func apiInputs(paymentID string, pay *checkout.Payment, actions []checkout.Action, now time.Time) []store.Input {
	var out []store.Input
	// The API lists newest first: reverse, then sort by time, so equal times keep their order.
	actions = slices.Clone(actions)
	slices.Reverse(actions)
	slices.SortStableFunc(actions, func(a, b checkout.Action) int { return a.ProcessedOn.Compare(b.ProcessedOn) })
	for _, a := range actions {
		var typ string
		switch a.Type {
		case "Capture":
			typ = payment.EventCaptured
		case "Refund":
			typ = payment.EventRefunded
		default:
			continue
		}
		if !a.Approved {
			continue
		}
		body, _ := json.Marshal(a)
		out = append(out, store.Input{
			EventID: "api:" + a.ID, Type: typ, Origin: store.OriginAPI, PaymentID: paymentID,
			ActionID: a.ID, Amount: a.Amount, Currency: pay.Currency, Reference: pay.Reference,
			OccurredAt: a.ProcessedOn, ReceivedAt: now, Body: body,
		})
	}
	body, _ := json.Marshal(pay)
	sum := sha256.Sum256(body)
	snap := store.Input{
		EventID: "api:" + pay.ID + ":" + hex.EncodeToString(sum[:8]), Type: payment.EventSnapshot, Origin: store.OriginAPI,
		PaymentID: paymentID, Amount: pay.Amount, Currency: pay.Currency, Reference: pay.Reference,
		Method: pay.Source.Type, Status: payment.Status(pay.Status), RequestedAt: pay.RequestedOn,
		OccurredAt: now, ReceivedAt: now, Body: body, KNET: knetOf(pay.Source),
	}
	if pay.Customer != nil {
		snap.Customer = pay.Customer.ID
	}
	return append(out, snap)
}
