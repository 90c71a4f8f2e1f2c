package desk

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/report"
	"knetrecon/internal/store"
)

// Overdue is a payment open past KNET's window, as the home page lists it.
type Overdue struct {
	store.Payment
	Age string
	// Next says what the sweep does next about it, and when.
	Next string
	// Stuck: the sweep has marked it stuck already.
	Stuck bool
}

// HealthRow is one line of the home page's health: its class says how to read it (ok, warn, bad).
type HealthRow struct {
	Name, State, Detail, Class string
}

// StakeRow is one kind of open discrepancy with its count and the money of its payments.
type StakeRow struct {
	Kind  payment.Kind
	Count int64
	// Money is the payments' amounts by currency, formatted ("12.500 KWD, 3.00 USD").
	Money string
}

// stuckCount finds "N stuck" in a health line's detail (the sweep's last run, say).
var stuckCount = regexp.MustCompile(`\b([0-9]+) stuck\b`)

// window is KNET's window: the sweep's pending timeout, else the ledger's first check.
func (d *Desk) window() time.Duration {
	if d.cfg.Sweep != nil && d.cfg.Sweep.PendingTimeout > 0 {
		return d.cfg.Sweep.PendingTimeout
	}
	return d.cfg.Ledger.Schedule().FirstCheckAfter
}

func (d *Desk) home(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := d.cfg.Now()
	dead, open, err := d.cfg.Ledger.OpenCounts(ctx)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	overdue, overdueN, err := d.overdue(ctx, now)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	stuck, err := d.cfg.Ledger.DeskDiscrepancies(ctx, store.DeskDiscrepancyFilter{Kind: payment.KindStuck, Limit: 20})
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	stakes, err := d.stakes(ctx, open)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	openList, err := d.cfg.Ledger.DeskDiscrepancies(ctx, store.DeskDiscrepancyFilter{Limit: 20})
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	dls, err := d.cfg.Ledger.DeadLetters(ctx, true, 10)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	var checks []Check
	if d.cfg.Health != nil {
		checks = d.cfg.Health(ctx)
	}
	var openN int64
	for _, n := range open {
		openN += n
	}
	health := d.health(checks, open[payment.KindStuck], overdueN, openN, dead)
	bars, currency, err := d.chart(ctx, 30)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	actions, err := d.cfg.Ledger.Actions(ctx, "", 10)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	d.render(w, "home.html", http.StatusOK, map[string]any{"Title": "knetrecon", "Health": health, "DeadLetters": dead, "DeadList": dls,
		"Actions": actions, "Overdue": overdue, "OverdueN": overdueN, "Window": age(d.window()), "Stuck": stuck, "StuckN": open[payment.KindStuck],
		"Stakes": stakes, "OpenList": openList, "OpenN": openN, "Bars": bars, "Currency": currency,
		"Today": now.In(d.cfg.Location).Format(time.DateOnly), "Yesterday": report.Yesterday(now, d.cfg.Location),
		"Quiet": overdueN == 0 && openN == 0 && dead == 0, "Flash": r.URL.Query().Get("flash")})
}

// overdue lists the oldest payments open past KNET's window (20 at most) and counts them all.
func (d *Desk) overdue(ctx context.Context, now time.Time) ([]Overdue, int64, error) {
	cutoff := now.Add(-d.window())
	n, err := d.cfg.Ledger.CountOpenSince(ctx, cutoff)
	if err != nil || n == 0 {
		return nil, n, err
	}
	list, err := d.cfg.Ledger.OpenSince(ctx, cutoff, 20)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Overdue, 0, len(list))
	for _, p := range list {
		o := Overdue{Payment: p, Age: age(now.Sub(p.AgeBase()))}
		stuck, err := d.cfg.Ledger.Discrepancies(ctx, store.DiscrepancyFilter{PaymentID: p.ID, Kind: payment.KindStuck})
		if err != nil {
			return nil, 0, err
		}
		o.Stuck = len(stuck) > 0
		if o.Next, err = d.nextStep(ctx, &p, o.Stuck, now); err != nil {
			return nil, 0, err
		}
		out = append(out, o)
	}
	return out, n, nil
}

// nextStep says what the sweep does next about an open payment, and when, by the sweep's rules
// (reconcile.Sweeper.check): it asks Checkout.com at the payment's next check; a payment still
// Pending past the timeout and the void grace is voided there (once: then it looks for the
// void's outcome); one open past KNETRECON_STUCK_AFTER is marked stuck.
func (d *Desk) nextStep(ctx context.Context, p *store.Payment, stuck bool, now time.Time) (string, error) {
	sw := d.cfg.Sweep
	if sw == nil {
		return "nothing: the sweep is off here (KNETRECON_SWEEP_SCHEDULE=off); ask Checkout.com from its page", nil
	}
	loc := d.cfg.Location
	when := "at " + stamp(p.NextCheckAt, loc)
	if !p.NextCheckAt.After(now) {
		when = "at the next sweep"
		if d.cfg.SweepSchedule != "" {
			when += " (" + d.cfg.SweepSchedule + ")"
		}
		when += ", due since " + stamp(p.NextCheckAt, loc)
	}
	stats, err := d.cfg.Ledger.CheckStats(ctx, p.ID)
	if err != nil {
		return "", err
	}
	base := p.AgeBase()
	voidAt := base.Add(sw.PendingTimeout + sw.VoidGrace)
	checkAt := p.NextCheckAt // a check already due happens at the next sweep: now, or soon after
	if checkAt.Before(now) {
		checkAt = now
	}
	next := "asks Checkout.com " + when
	switch {
	case p.Status != payment.StatusPending || !sw.VoidPending:
	case stats.VoidRequested:
		next = "asks Checkout.com whether its void went through, " + when
	case !checkAt.Before(voidAt):
		next += " and voids it there if still Pending"
	default:
		next += "; voids it from " + stamp(voidAt, loc) + " if still Pending"
	}
	if stats.ConsecutiveErrors > 0 {
		next += fmt.Sprintf(" (the last %d checks failed; %d in a row mark it stuck)", stats.ConsecutiveErrors, sw.MaxErrors)
	}
	if stuckAt := base.Add(sw.StuckAfter); !stuck && sw.StuckAfter > 0 {
		if stuckAt.After(now) {
			next += "; marked stuck at " + stamp(stuckAt, loc) + " if still open"
		} else {
			next += "; marked stuck by that sweep"
		}
	}
	return next, nil
}

// stakes sums the open discrepancies' payments by kind, money by currency.
func (d *Desk) stakes(ctx context.Context, open map[payment.Kind]int64) ([]StakeRow, error) {
	all, err := d.cfg.Ledger.OpenStakes(ctx)
	if err != nil {
		return nil, err
	}
	var out []StakeRow
	for _, s := range all {
		if len(out) == 0 || out[len(out)-1].Kind != s.Kind {
			out = append(out, StakeRow{Kind: s.Kind, Count: open[s.Kind]})
		}
		row := &out[len(out)-1]
		m := strconv.FormatInt(s.Amount, 10)
		if f, err := payment.Format(s.Amount, s.Currency); err == nil {
			m = f + " " + s.Currency
		}
		if row.Money != "" {
			row.Money += ", "
		}
		row.Money += m
	}
	return out, nil
}

// health colours the road's checks by what they say (an "ok" line that reports stuck payments
// is amber, never green) and adds the desk's own counts: stuck, open past the window, open
// discrepancies, dead letters.
func (d *Desk) health(checks []Check, stuck, overdue, open, dead int64) []HealthRow {
	rows := make([]HealthRow, 0, len(checks)+4)
	for _, c := range checks {
		row := HealthRow{Name: c.Name, State: "ok", Detail: c.Detail, Class: "ok"}
		if !c.OK {
			row.State, row.Class = "NOT OK", "bad"
		} else if m := stuckCount.FindStringSubmatch(c.Detail); m != nil && m[1] != "0" {
			row.State, row.Class = "ok, "+m[1]+" stuck", "warn"
		}
		rows = append(rows, row)
	}
	count := func(name string, n int64, class, detail string) {
		row := HealthRow{Name: name, State: strconv.FormatInt(n, 10), Detail: detail, Class: "ok"}
		if n > 0 {
			row.Class = class
		}
		rows = append(rows, row)
	}
	count("stuck payments", stuck, "bad", "open past KNETRECON_STUCK_AFTER, or the sweep cannot settle them")
	count("open past KNET's window", overdue, "warn", "open longer than "+age(d.window())+": the sweep asks Checkout.com about them")
	count("open discrepancies", open, "warn", "see below, by kind")
	count("dead letters pending", dead, "bad", "replay or discard them on the dead letters page")
	return rows
}
