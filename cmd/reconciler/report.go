package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"knetrecon/internal/desk"
	"knetrecon/internal/events"
	"knetrecon/internal/report"
	"knetrecon/internal/store"
)

// ReportsOn reports whether `reconciler run` writes the daily report on its schedule.
func (c Config) ReportsOn() bool {
	return !strings.EqualFold(c.ReportSchedule, "off") && c.ReportSchedule != ""
}

// cmdReportRange prints (or writes into outDir) the report of the days from..to: the money that
// counts in them and one row per payment. Like cmdReport, it checks first that the ledger holds
// the last day.
func cmdReportRange(ctx context.Context, cfg Config, date, from, to, format, outDir string, force bool, stdout, stderr io.Writer, fail func(error) int) int {
	if date != "" || from == "" || to == "" {
		return fail(badUsage("usage: reconciler report --date D | --from D --to D [--format text|json|csv|xlsx] [--out DIR] [--force]"))
	}
	if err := checkFormat(format); err != nil {
		return fail(err)
	}
	if _, _, err := report.Day(from, cfg.ReportLocation); err != nil {
		return fail(badUsage("--from: %v", err))
	}
	if _, _, err := report.Day(to, cfg.ReportLocation); err != nil {
		return fail(badUsage("--to: %v", err))
	}
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	if code, stop := refuseUnheld(ctx, cfg, l, to, outDir != "", force, stderr, fail); stop {
		return code
	}
	r, err := report.BuildRange(ctx, l, from, to, cfg.ReportLocation, time.Now())
	if err != nil {
		return fail(err)
	}
	if outDir != "" {
		paths, err := report.WriteRangeFiles(outDir, r)
		if err == nil {
			err = setReportModes(paths, cfg.ReportMode)
		}
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, strings.Join(paths, "\n"))
		return 0
	}
	if err := writeFormat(r, format, stdout); err != nil {
		return fail(err)
	}
	return 0
}

// formatted is what a daily and a range report can both be written as.
type formatted interface {
	WriteText(io.Writer) error
	WriteJSON(io.Writer) error
	WriteCSV(io.Writer) error
	WriteXLSX(io.Writer) error
}

// checkFormat refuses a --format no report is written as: a usage error, before any work.
func checkFormat(format string) error {
	switch format {
	case "json", "csv", "xlsx", "text", "":
		return nil
	}
	return badUsage("--format %q: want text, json, csv or xlsx", format)
}

// writeFormat writes r in format (text when empty).
func writeFormat(r formatted, format string, w io.Writer) error {
	switch format {
	case "json":
		return r.WriteJSON(w)
	case "csv":
		return r.WriteCSV(w)
	case "xlsx":
		return r.WriteXLSX(w)
	case "text", "":
		return r.WriteText(w)
	}
	return fmt.Errorf("--format %q: want text, json, csv or xlsx", format)
}

// cmdReport prints the report of date (yesterday in the report time zone when empty), or writes
// its files into outDir. The files are written only once the ledger holds the day (every message
// the stream stored before the day's end applied), unless force; printed, a report of a day the
// ledger does not hold yet comes with a warning on stderr.
func cmdReport(ctx context.Context, cfg Config, date, from, to, format, outDir string, force bool, stdout, stderr io.Writer, fail func(error) int) int {
	if from != "" || to != "" {
		return cmdReportRange(ctx, cfg, date, from, to, format, outDir, force, stdout, stderr, fail)
	}
	if date == "" {
		date = report.Yesterday(time.Now(), cfg.ReportLocation)
	}
	if err := checkFormat(format); err != nil {
		return fail(err)
	}
	if _, _, err := report.Day(date, cfg.ReportLocation); err != nil {
		return fail(badUsage("--date: %v", err))
	}
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	if code, stop := refuseUnheld(ctx, cfg, l, date, outDir != "", force, stderr, fail); stop {
		return code
	}
	d, err := report.Build(ctx, l, date, cfg.ReportLocation, time.Now())
	if err != nil {
		return fail(err)
	}
	if outDir != "" {
		paths, err := report.WriteFiles(outDir, d)
		if err == nil {
			err = setReportModes(paths, cfg.ReportMode)
		}
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, strings.Join(paths, "\n"))
		return 0
	}
	if err := writeFormat(d, format, stdout); err != nil {
		return fail(err)
	}
	return 0
}

// reportHoldWait bounds how long a one-shot report waits for the ledger to reach the day's
// watermark: a `reconciler run` beside it applies the last messages within moments.
var reportHoldWait = 10 * time.Second

// refuseUnheld checks that the ledger holds date before its report is written (out) or printed.
// Written, a day it does not hold (or that cannot be checked: NATS down) is refused unless force;
// printed, it is a warning on stderr. stop says the command ends with code.
func refuseUnheld(ctx context.Context, cfg Config, l *store.Ledger, date string, out, force bool, stderr io.Writer, fail func(error) int) (code int, stop bool) {
	wait := time.Duration(0) // printed: one look, a warning at most
	if out {
		wait = reportHoldWait
	}
	err := commandHold(ctx, cfg, l, date, wait)
	switch {
	case err == nil:
		return 0, false
	case out && !force:
		return fail(fmt.Errorf("%w; --force writes the report anyway (a new revision follows when the day's money changes)", err)), true
	}
	fmt.Fprintf(stderr, "reconciler report: warning: %v: the figures may still change\n", err)
	return 0, false
}

// commandHold returns nil once the ledger holds date, waiting up to wait for it to apply the
// stream up to the day's watermark; otherwise an error saying where the day stands.
func commandHold(ctx context.Context, cfg Config, l *store.Ledger, date string, wait time.Duration) error {
	var nc *nats.Conn
	defer func() {
		if nc != nil {
			nc.Close()
		}
	}()
	lastSeq := func() (uint64, error) {
		c, js, err := connectStream(ctx, cfg)
		if err != nil {
			return 0, err
		}
		nc = c
		return streamEnd(ctx, js)
	}
	position := func() (uint64, error) { return l.Position(ctx) }
	deadline := time.Now().Add(wait)
	h, err := report.CheckHold(date, cfg.ReportLocation, time.Now(), report.Watermark{}, lastSeq, position)
	for err == nil && h.IsOver() && !h.Held() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		h, err = report.CheckHold(date, cfg.ReportLocation, time.Now(), h.Mark, lastSeq, position)
	}
	switch {
	case err != nil:
		return fmt.Errorf("cannot tell whether the ledger holds %s: %w", date, err)
	case !h.IsOver():
		return fmt.Errorf("the ledger does not hold %s: %s", date, h)
	case !h.Held():
		return fmt.Errorf("the ledger does not hold %s yet: %s (is `reconciler run` applying the stream?)", date, h)
	}
	return nil
}

// streamEnd returns the stream's last sequence: every message stored until now has one at most
// this.
func streamEnd(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", events.StreamName, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", events.StreamName, err)
	}
	return info.State.LastSeq, nil
}

// reportRetry is how often a day whose report could not be written is tried again, and the
// written days of the last week are looked at for money that landed on them since.
const reportRetry = 10 * time.Minute

// reportPoll is how often a day whose report waits for the ledger to hold it is looked at again.
var reportPoll = 5 * time.Second

// reportCatchUp is how many days back the start looks for reports never written, and the
// reconciler for written days whose money changed.
const reportCatchUp = 7

// reports writes the daily report inside `reconciler run`: yesterday's, on KNETRECON_REPORT_SCHEDULE
// in the report time zone, and at start every missing day of the last week (the process was down
// at the scheduled time).
//
// A day's report is written only once the ledger holds the day (report.CheckHold): postings count
// on the day the stream stored their message, so a report written while the consumer is behind
// would miss money that counts on the day. Until then the day waits, looked at every reportPoll:
// knetrecon_reports_waiting counts the days waiting, knetrecon_reports_wait_seconds says for how
// long, and the desk's "reports" check says up to which sequence the ledger must apply the stream.
//
// A day that fails is tried again every reportRetry until it is written; knetrecon_reports_unwritten
// stays above zero (and its alert on) until then. Every reportRetry the written days of the last
// week are also looked at: when postings landed on one since it was written, a new revision of its
// files is written beside the earlier one (report.WriteFiles), listing what changed.
type reports struct {
	m    *Main
	log  *zap.Logger
	cron *cron.Cron
	// writing serialises the writes: the start's catch-up, the schedule, the poll and the retries.
	writing sync.Mutex

	mu sync.Mutex
	// failed: the days whose report failed; waits: those waiting for the ledger to hold them.
	failed map[string]bool
	waits  map[string]*reportWait
	// marks: each day's watermark, read once the day was over (report.CheckHold).
	marks map[string]report.Watermark
	// onDisk: report.Money of each day's latest written revision, once read or written.
	onDisk map[string]string

	written   *prometheus.CounterVec
	revisions prometheus.Counter
	unwritten prometheus.Gauge
	waiting   prometheus.Gauge
	// ctx ends at shutdown: a report being built is abandoned (and written by the next run).
	ctx    context.Context
	cancel context.CancelFunc
}

// reportWait is a day whose report waits for the ledger to hold it.
type reportWait struct {
	since time.Time
	hold  report.Hold
	err   error
}

func (m *Main) startReports() error {
	r := &reports{m: m, log: m.Log.Named("report"), failed: map[string]bool{}, waits: map[string]*reportWait{},
		marks: map[string]report.Watermark{}, onDisk: map[string]string{}}
	r.written = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "knetrecon_reports_written_total", Help: "Daily reports written by the reconciler, by result (ok, error).",
	}, []string{"result"})
	r.revisions = prometheus.NewCounter(prometheus.CounterOpts{Name: "knetrecon_reports_revisions_total",
		Help: "New revisions of daily reports already written: postings landed on the day after its report was written."})
	r.unwritten = prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_reports_unwritten",
		Help: "Days whose daily report failed and is not written yet (retried every 10 minutes)."})
	r.waiting = prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_reports_waiting",
		Help: "Days whose daily report is due and waits for the ledger to hold the day (apply every message the stream stored before its end)."})
	waited := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "knetrecon_reports_wait_seconds",
		Help: "How long the daily report waiting longest for the ledger to hold its day has waited (0: none waits)."}, r.waitedSeconds)
	m.Registry.MustRegister(r.written, r.revisions, r.unwritten, r.waiting, waited)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	cl := cronLogger{r.log}
	r.cron = cron.New(cron.WithLocation(m.Config.ReportLocation), cron.WithLogger(cl),
		cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)))
	if _, err := r.cron.AddFunc(m.Config.ReportSchedule, func() { r.try(r.yesterday()) }); err != nil {
		return fmt.Errorf("KNETRECON_REPORT_SCHEDULE %q: %w", m.Config.ReportSchedule, err)
	}
	if _, err := r.cron.AddFunc(fmt.Sprintf("@every %s", reportRetry), r.retry); err != nil {
		return err
	}
	m.reports = r
	m.reportsLive.Store(r)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for _, date := range r.missing() {
			r.try(date)
		}
		r.pollWaiting()
	}()
	r.cron.Start()
	r.log.Info("daily report scheduled", zap.String("schedule", m.Config.ReportSchedule),
		zap.String("time_zone", m.Config.ReportLocation.String()), zap.String("dir", m.Config.ReportDir))
	return nil
}

// yesterday is the last whole day on the process's clock (the ledger's: Main.Now when set).
func (r *reports) yesterday() string {
	return report.Yesterday(r.m.ledger.Now(), r.m.Config.ReportLocation)
}

// missing returns the days, oldest first, of the last week whose report file is not there:
// yesterday always, the days before it from the ledger's first applied event on.
func (r *reports) missing() []string {
	loc := r.m.Config.ReportLocation
	first, err := r.m.ledger.FirstAppliedAt(r.ctx)
	if err != nil {
		r.log.Warn("first applied event not read; catching up yesterday only", zap.Error(err))
	}
	var out []string
	now := r.m.ledger.Now().In(loc)
	for back := reportCatchUp; back >= 1; back-- {
		day := time.Date(now.Year(), now.Month(), now.Day()-back, 0, 0, 0, 0, loc)
		if back > 1 && (first.IsZero() || !day.AddDate(0, 0, 1).After(first)) {
			continue // before the ledger had anything: nothing was ever due
		}
		date := day.Format(time.DateOnly)
		if _, err := os.Stat(filepath.Join(r.m.Config.ReportDir, date+".json")); err != nil {
			out = append(out, date) // not there, or the folder unreadable: write it (or fail visibly)
		}
	}
	return out
}

// pollWaiting writes the waiting days' reports as the ledger comes to hold them, every
// reportPoll until shutdown.
func (r *reports) pollWaiting() {
	t := time.NewTicker(reportPoll)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		for _, d := range r.waitingDays() {
			r.try(d)
		}
	}
}

// retry writes again every day whose report failed, oldest first, then writes a new revision of
// every written day of the last week whose money changed since.
func (r *reports) retry() {
	r.mu.Lock()
	dates := slices.Sorted(maps.Keys(r.failed))
	r.mu.Unlock()
	for _, d := range dates {
		r.try(d)
	}
	r.revise()
}

// revise writes a new revision of each day of the last week whose report is written and whose
// money in the ledger differs from it now: postings landed on the day after it was written. A day
// the ledger does not hold (the consumer is behind, a ledger rebuilt from the stream) is left
// until it does: a revision is never written from a ledger that knows less.
func (r *reports) revise() {
	loc := r.m.Config.ReportLocation
	now := r.m.ledger.Now().In(loc)
	keep := map[string]bool{}
	for back := reportCatchUp; back >= 1; back-- {
		date := time.Date(now.Year(), now.Month(), now.Day()-back, 0, 0, 0, 0, loc).Format(time.DateOnly)
		keep[date] = true
		r.mu.Lock()
		busy := r.failed[date] || r.waits[date] != nil
		money, known := r.onDisk[date]
		r.mu.Unlock()
		if busy {
			continue
		}
		if !known {
			d, err := report.Latest(r.m.Config.ReportDir, date)
			if err != nil {
				r.log.Warn("daily report not read back; not revised", zap.String("date", date), zap.Error(err))
				continue
			}
			if d == nil {
				continue // never written: the start's catch-up and the schedule write missing days
			}
			money = report.Money(d.Postings)
			r.setOnDisk(date, money)
		}
		from, to, _ := report.Day(date, loc)
		lines, _, err := r.m.ledger.PostingLines(r.ctx, from, to)
		if err != nil {
			r.log.Warn("daily report's money not read; not revised", zap.String("date", date), zap.Error(err))
			continue
		}
		if report.Money(lines) == money {
			continue
		}
		if h, err := r.hold(date); err != nil || !h.Held() {
			continue // looked at again in reportRetry
		}
		r.writing.Lock()
		r.write(date, time.Time{})
		r.writing.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	maps.DeleteFunc(r.marks, func(d string, _ report.Watermark) bool { return !keep[d] && r.waits[d] == nil && !r.failed[d] })
	maps.DeleteFunc(r.onDisk, func(d string, _ string) bool { return !keep[d] })
}

// hold says whether the ledger holds date, keeping the day's watermark once read.
func (r *reports) hold(date string) (report.Hold, error) {
	r.mu.Lock()
	mark := r.marks[date]
	r.mu.Unlock()
	h, err := report.CheckHold(date, r.m.Config.ReportLocation, r.m.ledger.Now(), mark,
		func() (uint64, error) { return streamEnd(r.ctx, r.m.js) },
		func() (uint64, error) { return r.m.ledger.Position(r.ctx) })
	if h.IsOver() {
		r.mu.Lock()
		r.marks[date] = h.Mark
		r.mu.Unlock()
	}
	return h, err
}

// try writes date's report if the ledger holds the day; otherwise the day waits (pollWaiting
// tries it again).
func (r *reports) try(date string) {
	r.writing.Lock()
	defer r.writing.Unlock()
	h, err := r.hold(date)
	if err != nil && r.ctx.Err() != nil {
		return
	}
	if err != nil || !h.Held() {
		if r.setWaiting(date, h, err) {
			r.log.Info("daily report waits for the ledger to hold the day", zap.String("date", date), zap.Stringer("hold", h), zap.Error(err))
		}
		return
	}
	r.mu.Lock()
	var since time.Time
	if w := r.waits[date]; w != nil {
		since = w.since
	}
	r.mu.Unlock()
	r.write(date, since)
}

// write builds and writes the report of date (held by the ledger; it waited since since, when not
// zero). A failure is logged and counted, and the day is tried again every reportRetry until it is
// written. Called with r.writing held.
func (r *reports) write(date string, since time.Time) {
	d, err := report.Build(r.ctx, r.m.ledger, date, r.m.Config.ReportLocation, r.m.ledger.Now())
	var paths []string
	var written bool
	if err == nil {
		paths, written, err = report.WriteRevision(r.m.Config.ReportDir, d)
	}
	if err == nil {
		err = setReportModes(paths, r.m.Config.ReportMode)
	}
	if err != nil && r.ctx.Err() != nil {
		r.log.Info("daily report abandoned at shutdown", zap.String("date", date))
		return
	}
	r.clearWait(date)
	if err != nil {
		r.written.WithLabelValues("error").Inc()
		r.setFailed(date, true)
		r.log.Error("daily report not written; trying again", zap.String("date", date), zap.Duration("every", reportRetry), zap.Error(err))
		return
	}
	r.setFailed(date, false)
	r.setOnDisk(date, report.Money(d.Postings))
	if !written {
		return // the latest revision holds the same money
	}
	r.written.WithLabelValues("ok").Inc()
	detail := fmt.Sprintf("%s written (%d postings, balanced %t)", date, len(d.Postings), d.Balanced)
	fields := []zap.Field{zap.String("date", date), zap.Strings("files", paths), zap.Int("postings", len(d.Postings)),
		zap.Int("late_postings", len(d.LatePostings)), zap.Bool("balanced", d.Balanced), zap.Uint64("stream_position", d.StreamPosition)}
	if !since.IsZero() {
		fields = append(fields, zap.Duration("waited_for_the_ledger", r.m.ledger.Now().Sub(since)))
	}
	if c := d.Changes; c != nil {
		r.revisions.Inc()
		detail = fmt.Sprintf("%s revision %d written (%d postings added, %d removed since revision %d)", date, d.Revision,
			len(c.PostingsAdded), len(c.PostingsRemoved), c.PreviousRevision)
		r.log.Warn("daily report revised: postings landed on the day after it was written", append(fields, zap.Int("revision", d.Revision),
			zap.Int("postings_added", len(c.PostingsAdded)), zap.Int("postings_removed", len(c.PostingsRemoved)))...)
	} else {
		r.log.Info("daily report written", fields...)
	}
	r.m.lastReport.Store(&lastRun{At: time.Now(), Detail: detail})
}

// unwrittenDays lists the days whose report failed and is not written yet.
func (r *reports) unwrittenDays() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.failed))
}

// waitingDays lists the days whose report waits for the ledger to hold them.
func (r *reports) waitingDays() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.waits))
}

// setFailed records whether date's report is still unwritten, and updates the gauge.
func (r *reports) setFailed(date string, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if failed {
		r.failed[date] = true
	} else {
		delete(r.failed, date)
	}
	r.unwritten.Set(float64(len(r.failed)))
}

// setWaiting records that date's report waits (h, or err when the hold could not be read); it
// reports whether the day just began to wait.
func (r *reports) setWaiting(date string, h report.Hold, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, was := r.waits[date]
	if !was {
		w = &reportWait{since: r.m.ledger.Now()}
		r.waits[date] = w
	}
	w.hold, w.err = h, err
	r.waiting.Set(float64(len(r.waits)))
	return !was
}

// clearWait records that date's report waits no more.
func (r *reports) clearWait(date string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.waits, date)
	r.waiting.Set(float64(len(r.waits)))
}

// setOnDisk records the money of date's latest written revision.
func (r *reports) setOnDisk(date, money string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onDisk[date] = money
}

// waitedSeconds is how long the day waiting longest has waited.
func (r *reports) waitedSeconds() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var longest time.Duration
	now := r.m.ledger.Now()
	for _, w := range r.waits {
		longest = max(longest, now.Sub(w.since))
	}
	return longest.Seconds()
}

// check is the desk's "reports" line: the last report written, the days waiting for the ledger
// (up to which sequence it must apply the stream) and the days that failed.
func (r *reports) check() desk.Check {
	loc := r.m.Config.ReportLocation
	c := desk.Check{Name: "reports", OK: true, Detail: "none written by this process yet"}
	if last := r.m.lastReport.Load(); last != nil {
		c.Detail = "last at " + last.At.In(loc).Format(desk.TimeLayout) + ": " + last.Detail
	}
	r.mu.Lock()
	var waiting []string
	for _, d := range slices.Sorted(maps.Keys(r.waits)) {
		w := r.waits[d]
		why := w.hold.String()
		if w.err != nil {
			why = w.err.Error()
		}
		waiting = append(waiting, fmt.Sprintf("%s since %s: %s", d, w.since.In(loc).Format(desk.TimeLayout), why))
	}
	r.mu.Unlock()
	if len(waiting) > 0 {
		c.OK, c.Detail = false, "not written yet, waiting for the ledger to hold the day: "+strings.Join(waiting, "; ")
	}
	if days := r.unwrittenDays(); len(days) > 0 {
		c.OK, c.Detail = false, "not written yet (retried): "+strings.Join(days, ", ")
	}
	return c
}

// stop stops scheduling, abandons a report being built and waits for it, bounded by ctx.
func (r *reports) stop(ctx context.Context) {
	done := r.cron.Stop()
	r.cancel()
	select {
	case <-done.Done():
	case <-ctx.Done():
		r.log.Warn("daily report did not finish in time")
	}
}
