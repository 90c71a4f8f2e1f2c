// Command reconciler applies the webhooks the receiver stored in JetStream to the SQLite ledger,
// exactly once each, and answers questions about it. See docs/ledger.md.
//
//	reconciler [run]                         consume the stream (default)
//	reconciler payment <pay_id> [--json]     the ledger's view of one payment
//	reconciler dlq list [--all] | show <id> | replay <id>
//	reconciler replay --since <time> | --from-seq <n>
//	reconciler migrate                       bring the ledger's schema up to date
//	reconciler sweep --once [--dry-run] [--json]  one seven-minute sweep by hand
//	reconciler stuck [--json]                the payments the sweep could not resolve
//	reconciler report [--date D] [--format text|json|csv] [--out DIR]  finance's report of a day
//	reconciler reconcile --from D --to D [--apply] [--json]  the ledger against Checkout.com over days
//	reconciler settle --statement FILE [--layout FILE] [--columns K=Header,…] [--sheet S] [--date D] [--json]  the bank's statement against the ledger
//	reconciler discrepancies [--all] [--kind K] [--json]  what an operator must look at
//	reconciler resolve <id> --note "…"       mark one discrepancy handled
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	_ "time/tzdata" // KNETRECON_REPORT_TZ on machines without a zoneinfo database

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"knetrecon/internal/checkout"
	"knetrecon/internal/desk"
	"knetrecon/internal/events"
	"knetrecon/internal/logging"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/service"
	"knetrecon/internal/settle"
	"knetrecon/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main with its inputs and outputs passed in, so tests can call every subcommand.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if service.VersionRequested(args) {
		fmt.Fprintln(stdout, "reconciler", service.BuildOf())
		return 0
	}
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], getenv, stdout, stderr)
	}
	switch {
	case len(args) == 0:
		printCommands(stderr) // `run` is explicit: a bare reconciler is a usage error
		return 2
	case args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help":
		if len(args) > 1 && args[1] != "run" {
			if _, ok := commandNamed(args[1]); !ok {
				fmt.Fprintf(stderr, "reconciler: unknown command %q\n\n", args[1])
				printCommands(stderr)
				return 2
			}
			return run(ctx, []string{args[1], "--help"}, getenv, stdout, stderr)
		}
		if len(args) > 1 {
			args = []string{"run", "--help"}
			break
		}
		printCommands(stdout)
		return 0
	case strings.HasPrefix(args[0], "-"):
		fmt.Fprintf(stderr, "reconciler: a command comes first (reconciler run %s …)\n\n", args[0])
		printCommands(stderr)
		return 2
	}
	cmd := args[0]
	args = args[1:]
	c, known := commandNamed(cmd)
	if !known || cmd == "help" {
		fmt.Fprintf(stderr, "reconciler: unknown command %q\n\n", cmd)
		printCommands(stderr)
		return 2
	}
	var asJSON, all, once, dryRun, apply, force bool
	var backup string
	var since, until, date, format, outDir, kind, note, reference string
	var sf settleFlags
	var fromSeq uint64
	extra := func(fs *flag.FlagSet) {
		switch cmd {
		case "payment":
			fs.BoolVar(&asJSON, "json", false, "print the payment as JSON")
			fs.StringVar(&reference, "reference", "", "find the payment by the merchant's reference instead of its id")
		case "dlq":
			fs.BoolVar(&all, "all", false, "list replayed and discarded dead letters too")
			fs.StringVar(&note, "note", "", "discard: why it is set aside (required)")
			fs.BoolVar(&asJSON, "json", false, "print as JSON (list, replay, discard; show always is)")
		case "sweep":
			fs.BoolVar(&once, "once", false, "run one sweep now")
			fs.BoolVar(&dryRun, "dry-run", false, "ask the API, write nothing, void nothing: print what would be done")
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
		case "stuck":
			fs.BoolVar(&asJSON, "json", false, "print as JSON")
		case "discrepancies":
			fs.BoolVar(&all, "all", false, "resolved ones too")
			fs.StringVar(&kind, "kind", "", "only this kind (webhook_missing, amount_mismatch, …)")
			fs.BoolVar(&asJSON, "json", false, "print as JSON")
		case "resolve":
			fs.StringVar(&note, "note", "", "what was done (required)")
			fs.BoolVar(&asJSON, "json", false, "print as JSON")
		case "reconcile":
			fs.StringVar(&since, "from", "", "first day, YYYY-MM-DD in KNETRECON_REPORT_TZ")
			fs.StringVar(&date, "to", "", "last day, YYYY-MM-DD in KNETRECON_REPORT_TZ (included)")
			fs.BoolVar(&apply, "apply", false, "record what is learned and the differences (default: show them, write nothing)")
			fs.BoolVar(&asJSON, "json", false, "print as JSON")
		case "settle":
			fs.StringVar(&sf.statement, "statement", "", "the acquiring bank's KNET statement: CSV (comma or semicolon, UTF-8 or Windows-1256) or .xlsx")
			fs.StringVar(&sf.layout, "layout", "", "the bank's layout FILE: settings (sheet, date_format, unit, sign, currency, …) and a [columns] section (see docs/finance.md)")
			fs.StringVar(&sf.columns, "columns", "", "map column keys to the bank's headers (over --layout's): key=Header,… or @file with one key=Header a line (keys: "+strings.Join(settle.Keys, ", ")+")")
			fs.StringVar(&sf.sheet, "sheet", "", "the workbook's sheet to read (over --layout's; default: the first)")
			fs.StringVar(&date, "date", "", "the day the statement covers, YYYY-MM-DD in KNETRECON_REPORT_TZ (default: the days its lines name)")
			fs.StringVar(&sf.notSettledAfter, "not-settled-after", "3d", "a capture or refund older than this that the statement does not show opens not_settled")
			fs.BoolVar(&asJSON, "json", false, "print as JSON")
		case "deposits":
			fs.StringVar(&sf.statement, "statement", "", "the merchant's bank-account statement: CSV or .xlsx")
			fs.StringVar(&sf.layout, "layout", "", "the account statement's layout FILE (as settle's)")
			fs.StringVar(&sf.columns, "columns", "", "map column keys to the account statement's headers: key=Header,… or @file (keys: "+strings.Join(settle.DepositKeys, ", ")+")")
			fs.StringVar(&sf.sheet, "sheet", "", "the workbook's sheet to read (default: the first)")
			fs.IntVar(&sf.days, "days", settle.DefaultDepositDays, "how many days after its posting day a deposit may arrive")
			fs.BoolVar(&asJSON, "json", false, "print as JSON")
		case "report":
			fs.BoolVar(&asJSON, "json", false, "print as JSON (the same as --format json)")
			fs.StringVar(&date, "date", "", "the day, YYYY-MM-DD in KNETRECON_REPORT_TZ (default: yesterday)")
			fs.StringVar(&format, "format", "text", "text, json, csv or xlsx (binary: redirect it to a file)")
			fs.StringVar(&since, "from", "", "with --to: the report of several days (YYYY-MM-DD), one row per payment")
			fs.StringVar(&until, "to", "", "the last day of --from's range (included)")
			fs.StringVar(&outDir, "out", "", "write <date>.json, .csv and .xlsx into this directory instead (a new revision if the day's money changed); only once the ledger holds the day")
			fs.BoolVar(&force, "force", false, "with --out: write the files even if the ledger does not hold the day yet (not over, or the stream not applied up to its end)")
		case "replay":
			fs.StringVar(&since, "since", "", "replay messages stored since: a time (2026-12-01T10:00:00Z), a date (2026-12-01) or a duration ago (6h, 2d)")
			fs.Uint64Var(&fromSeq, "from-seq", 0, "replay from this stream sequence")
			fs.BoolVar(&asJSON, "json", false, "print as JSON")
		case "migrate", "backup", "digest":
			fs.BoolVar(&asJSON, "json", false, "print as JSON")
		case "rebuild":
			fs.StringVar(&backup, "from-backup", "", "start from this backup FILE (made by reconciler backup) and replay the stream after it")
			fs.BoolVar(&force, "force", false, "replace an existing ledger (kept as <ledger>.replaced-<time>)")
			fs.BoolVar(&asJSON, "json", false, "print as JSON")
		}
		// A mistyped flag prints the command's own usage below (not every setting's); only
		// `run --help` lists the settings through the flag package.
		fs.SetOutput(io.Discard)
		if cmd == "run" && wantsHelp(args) {
			fs.SetOutput(stderr)
		}
	}
	if cmd != "run" && wantsHelp(args) {
		printCommand(stdout, c, extra)
		return 0
	}
	if cmd == "run" && wantsHelp(args) {
		fmt.Fprintf(stderr, "Usage: %s\n\n%s\n\nSettings (a flag, or its KNETRECON_… variable):\n", c.usage, c.long)
	}
	cfg, operands, err := ParseConfig(cmd, args, getenv, extra)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if fe := (flagError{}); errors.As(err, &fe) {
		fmt.Fprintf(stderr, "reconciler %s: %v\n\n", cmd, fe.err)
		printUsage(stderr, c, extra)
		return ExitUsage
	}
	if err != nil {
		fmt.Fprintln(stderr, "reconciler: configuration:", err)
		return ExitUsage
	}
	if len(operands) > 0 && slices.Contains(noOperands, cmd) {
		fmt.Fprintf(stderr, "reconciler %s: takes no arguments, got %q\n\n", cmd, operands[0])
		printUsage(stderr, c, extra)
		return ExitUsage
	}
	if cmd == "report" && asJSON {
		if format != "text" && format != "json" {
			fmt.Fprintf(stderr, "reconciler report: --json and --format %s: choose one\n", format)
			return ExitUsage
		}
		format = "json"
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogDevelopment)
	if err != nil {
		fmt.Fprintln(stderr, "reconciler:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()

	fail := func(err error) int {
		fmt.Fprintln(stderr, "reconciler "+cmd+":", err)
		if errors.As(err, new(usageError)) {
			return ExitUsage
		}
		return ExitFailed
	}
	switch cmd {
	case "run":
		m := NewMain(cfg, log)
		if err := m.Run(ctx); err != nil {
			log.Error("reconciler did not start", zap.Error(err))
			_ = m.Close()
			return 1
		}
		select {
		case <-ctx.Done():
		case err := <-m.Done():
			log.Error("consumer stopped", zap.Error(err))
		}
		log.Info("shutting down")
		if err := m.Close(); err != nil {
			log.Error("shutdown", zap.Error(err))
			return 1
		}
		log.Info("stopped")
		return 0
	case "migrate":
		l, err := createLedger(ctx, cfg)
		if err != nil {
			return fail(err)
		}
		defer l.Close()
		v, err := l.SchemaVersion(ctx)
		if err != nil {
			return fail(err)
		}
		if asJSON {
			return exitOf(writeJSON(stdout, map[string]any{"ledger": cfg.Ledger, "schema_version": v}), fail)
		}
		fmt.Fprintf(stdout, "ledger %s at schema version %d\n", cfg.Ledger, v)
		return 0
	case "payment":
		switch {
		case reference != "" && len(operands) == 0:
			return cmdPayment(ctx, cfg, reference, asJSON, stdout, fail)
		case reference == "" && len(operands) == 1:
			return cmdPayment(ctx, cfg, operands[0], asJSON, stdout, fail)
		}
		return fail(badUsage("%s", "usage: reconciler payment <pay_id | KNET payment id | KNET transaction id | bank reference> [--json] | --reference REF"))
	case "dlq":
		return cmdDLQ(ctx, cfg, log, operands, all, asJSON, note, stdout, fail)
	case "replay":
		return cmdReplay(ctx, cfg, log, since, fromSeq, asJSON, stdout, fail)
	case "sweep":
		return cmdSweep(ctx, cfg, log, once, dryRun, asJSON, stdout, fail)
	case "stuck":
		return cmdStuck(ctx, cfg, asJSON, stdout, fail)
	case "reconcile":
		return cmdReconcile(ctx, cfg, log, since, date, apply, asJSON, stdout, fail)
	case "settle":
		return cmdSettle(ctx, cfg, sf, date, asJSON, stdout, fail)
	case "deposits":
		return cmdDeposits(ctx, cfg, sf, asJSON, stdout, fail)
	case "report":
		return cmdReport(ctx, cfg, date, since, until, format, outDir, force, stdout, stderr, fail)
	case "discrepancies":
		return cmdDiscrepancies(ctx, cfg, kind, all, asJSON, stdout, fail)
	case "resolve":
		return cmdResolve(ctx, cfg, operands, note, asJSON, stdout, fail)
	case "digest":
		return cmdDigest(ctx, cfg, asJSON, stdout, fail)
	case "backup":
		return cmdBackup(ctx, cfg, operands, asJSON, stdout, fail)
	case "rebuild":
		return cmdRebuild(ctx, cfg, log, backup, force, asJSON, stdout, fail)
	}
	fmt.Fprintf(stderr, "reconciler: command %q is not wired\n", cmd) // every listed command has a case above
	return 2
}

// Exit statuses, the same for every command, so that scripts can trust them (README, `reconciler help`).
const (
	// ExitOK: done, and clean.
	ExitOK = 0
	// ExitFailed: failed (or not known to be done: a fact published and not applied here).
	ExitFailed = 1
	// ExitUsage: a usage or configuration error; nothing was done.
	ExitUsage = 2
	// ExitDifferences: done, and differences found (settle, reconcile).
	ExitDifferences = 3
)

// usageError is a command given wrongly: the exit status is ExitUsage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// badUsage returns a usageError.
func badUsage(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// newProcessor returns the processor every command that applies messages uses: it verifies each
// message's Cko-Signature against KNETRECON_WEBHOOK_KEYS before applying it.
func newProcessor(cfg *Config, l *store.Ledger, log *zap.Logger, reg prometheus.Registerer) (*reconcile.Processor, error) {
	keys := checkout.ParseKeys(cfg.WebhookKeys)
	if len(keys) == 0 {
		return nil, errors.New("KNETRECON_WEBHOOK_KEYS (or _FILE) is required: every message is verified against the receiver's keys before it is applied")
	}
	ring, err := checkout.NewKeyRing(keys...)
	if err != nil {
		return nil, fmt.Errorf("KNETRECON_WEBHOOK_KEYS: %w", err)
	}
	facts, err := cfg.factRing()
	if err != nil {
		return nil, err
	}
	proc := reconcile.NewProcessor(l, log, reconcile.NewMetrics(reg), cfg.Consumer.MaxDeliver)
	proc.SetKeys(ring)
	proc.SetFactKeys(facts)
	proc.AckWait = cfg.Consumer.AckWait
	return proc, nil
}

// writeJSON writes v as indented JSON: the one form every command's --json takes.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// nothing is the one wording for an empty answer.
func nothing(what string) string { return "none: no " + what }

// outcomes writes a replay's outcomes as "applied 3, duplicate 4", in name order.
func outcomes(m map[store.Outcome]int) string {
	if len(m) == 0 {
		return "nothing applied"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[store.Outcome(k)])
	}
	return strings.Join(parts, ", ")
}

// ErrNoLedger means the ledger file a command was pointed at does not exist.
var ErrNoLedger = errors.New("no ledger")

// openLedger opens an existing ledger with the sweep's schedule for the payments it writes, so
// every command that applies events (run, replay, dlq replay, sweep) schedules their verification
// alike. A missing file is an error naming KNETRECON_LEDGER, never a new empty ledger: a command
// run from the wrong folder must not answer "nothing to see" from a ledger it just created.
func openLedger(ctx context.Context, cfg Config) (*store.Ledger, error) {
	if _, err := os.Stat(cfg.Ledger); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s: set KNETRECON_LEDGER (or --ledger) to the reconciler's ledger file; "+
				"`reconciler run` or `reconciler migrate` creates a new one", ErrNoLedger, cfg.Ledger)
		}
		return nil, fmt.Errorf("ledger %s: %w", cfg.Ledger, err)
	}
	return createLedger(ctx, cfg)
}

// createLedger is openLedger that creates the ledger when it is missing (run, migrate, replay).
func createLedger(ctx context.Context, cfg Config) (*store.Ledger, error) {
	return store.OpenWith(ctx, cfg.Ledger, store.Options{BusyTimeout: cfg.LedgerBusyTimeout})
}

func cmdPayment(ctx context.Context, cfg Config, id string, asJSON bool, stdout io.Writer, fail func(error) int) int {
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	// The key may be a pay_… id, the merchant's reference or one of KNET's ids.
	ids, err := l.FindPayments(ctx, id, 20)
	if err != nil {
		return fail(err)
	}
	switch {
	case len(ids) == 0:
		return fail(fmt.Errorf("no payment with id, reference or KNET id %q: %w", id, store.ErrNotFound))
	case len(ids) > 1:
		fmt.Fprintf(stdout, "%d payments match %q (newest first); ask for one by its id:\n", len(ids), id)
		for _, pid := range ids {
			fmt.Fprintln(stdout, "  "+pid)
		}
		return 0
	}
	p, err := l.Payment(ctx, ids[0])
	if err != nil {
		return fail(err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(p); err != nil {
			return fail(err)
		}
		return 0
	}
	money := func(v int64) string { return formatMoney(v, p.Currency) }
	fmt.Fprintf(stdout, "%s  %s  amount %s  captured %s  refunded %s", p.ID, p.Status, money(p.Amount), money(p.Captured), money(p.Refunded))
	if p.Held > 0 {
		fmt.Fprintf(stdout, "  held refunds %s", money(p.Held))
	}
	fmt.Fprintf(stdout, "\nreference %q  method %s  customer %s  first seen %s\n", p.Reference, p.Method, p.Customer, localTime(p.FirstSeenAt, cfg.ReportLocation))
	if k := p.KNET; k != nil {
		fmt.Fprintf(stdout, "KNET payment id %s  transaction id %s  bank reference %s  auth code %s  post date %s  result %s\n",
			k.PaymentID, k.TransactionID, k.BankReference, k.AuthCode, k.PostDate, k.Result)
	}
	fmt.Fprintln(stdout, "postings:")
	for _, po := range p.Postings {
		fmt.Fprintf(stdout, "  %s  %-7s %-6s %s  (%s, %s)\n", po.ActionID, po.Kind, po.State, money(po.Amount), po.EventID, po.Origin)
		if sb := po.Settlement; sb != nil {
			paid := "paid"
			if !sb.Paid {
				paid = "another amount: " + money(sb.StatementAmount)
			}
			fee, net := "-", "-"
			if sb.Fee != nil {
				fee = money(*sb.Fee)
			}
			if sb.Net != nil {
				net = money(*sb.Net)
			}
			fmt.Fprintf(stdout, "    bank: %s line %d, %s; gross %s  fee %s  net %s\n", sb.File, sb.Line, paid, money(sb.Gross), fee, net)
		}
	}
	fmt.Fprintln(stdout, "events:")
	for _, e := range p.Events {
		fmt.Fprintf(stdout, "  %s  %-32s %-7s %-14s %s -> %s\n", e.ID, e.Type, e.Origin, e.Outcome, e.StatusBefore, e.StatusAfter)
	}
	if len(p.Discrepancies) > 0 {
		fmt.Fprintln(stdout, "discrepancies:")
		for _, d := range p.Discrepancies {
			fmt.Fprintf(stdout, "  #%d %s %s %s\n", d.ID, d.Kind, d.Subject, d.Details)
			writeHistory(stdout, "      ", d, cfg.ReportLocation)
		}
	}
	switch {
	case !p.Final:
		fmt.Fprintf(stdout, "next sweep check %s\n", localTime(p.NextCheckAt, cfg.ReportLocation))
	case p.VerifyAt != nil:
		fmt.Fprintf(stdout, "next verification %s\n", localTime(*p.VerifyAt, cfg.ReportLocation))
	}
	if len(p.Checks) > 0 {
		fmt.Fprintln(stdout, "sweep checks (newest first):")
		for _, c := range p.Checks {
			fmt.Fprintf(stdout, "  %s  %-17s provider %-12q action %-15s %4d ms %s\n", localTime(c.CheckedAt, cfg.ReportLocation),
				c.Outcome, c.ProviderStatus, c.Action, c.LatencyMS, c.Error)
		}
	}
	return 0
}

func cmdDLQ(ctx context.Context, cfg Config, log *zap.Logger, operands []string, all, asJSON bool, note string, stdout io.Writer, fail func(error) int) int {
	if len(operands) == 0 {
		return fail(badUsage("%s", `usage: reconciler dlq list [--all] | show <id> | replay <id> | discard <id> --note "…"`))
	}
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	id := func() (int64, error) {
		if len(operands) != 2 {
			return 0, badUsage("usage: reconciler dlq %s <id>", operands[0])
		}
		n, err := strconv.ParseInt(operands[1], 10, 64)
		if err != nil {
			return 0, badUsage("dead letter id %q: want a number (reconciler dlq list)", operands[1])
		}
		return n, nil
	}
	switch operands[0] {
	case "list":
		dls, err := l.DeadLetters(ctx, !all, 1000)
		if err != nil {
			return fail(err)
		}
		if asJSON {
			return exitOf(writeJSON(stdout, dls), fail)
		}
		for _, d := range dls {
			state := ""
			if d.ReplayedAt != nil {
				state = "  replayed: " + d.ReplayResult
			}
			if d.DiscardedAt != nil {
				state = fmt.Sprintf("  discarded by %s: %s", d.DiscardedBy, d.DiscardNote)
			}
			fmt.Fprintf(stdout, "%d\tseq %d\t%s\t%s\t%s%s\n", d.ID, d.StreamSeq, localTime(d.CreatedAt, cfg.ReportLocation), d.Subject, d.Reason, state)
		}
		if len(dls) == 0 {
			fmt.Fprintln(stdout, nothing("dead letters pending"))
		}
		return 0
	case "discard":
		n, err := id()
		if err != nil {
			return fail(err)
		}
		if strings.TrimSpace(note) == "" {
			return fail(badUsage("%s", `--note is required: say why it is set aside ("test message from the dashboard")`))
		}
		by := operatorName()
		d, err := l.DeadLetter(ctx, n)
		if err != nil {
			return fail(err)
		}
		if d.DiscardedAt != nil {
			return fail(fmt.Errorf("dead letter %d was discarded by %s already: %w", n, d.DiscardedBy, store.ErrAlreadyHandled))
		}
		r, err := openRoad(ctx, cfg)
		if err != nil {
			return fail(err)
		}
		defer r.close()
		res, err := r.outcome(reconcile.NewOperator(r.ledger, r.facts).Discard(ctx, n, by, note))
		if err != nil {
			return fail(err)
		}
		if asJSON {
			return exitOf(writeJSON(stdout, map[string]any{"dead_letter": n, "discarded": true, "by": by, "note": note, "fact": res}), fail)
		}
		fmt.Fprintf(stdout, "dead letter %d discarded (kept, with your note; no longer pending): %s\n", n, applied(res))
		return 0
	case "show":
		n, err := id()
		if err != nil {
			return fail(err)
		}
		d, err := l.DeadLetter(ctx, n)
		if err != nil {
			return fail(err)
		}
		out := struct {
			*store.DeadLetter
			Body string `json:"body"`
		}{d, string(d.Body)}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fail(err)
		}
		return 0
	case "replay":
		n, err := id()
		if err != nil {
			return fail(err)
		}
		r, err := openRoad(ctx, cfg)
		if err != nil {
			return fail(err)
		}
		defer r.close()
		res, err := r.outcome(reconcile.NewOperator(r.ledger, r.facts).Replay(ctx, n, operatorName(), note))
		if errors.Is(err, reconcile.ErrRefused) {
			// Applied again and failed again (or already discarded): the dead letter stays.
			if asJSON {
				_ = writeJSON(stdout, map[string]any{"dead_letter": n, "replayed": false, "result": res})
			}
			return fail(fmt.Errorf("dead letter %d not applied: %s", n, strings.TrimPrefix(res.Refused, "failed: ")))
		}
		if err != nil {
			return fail(err)
		}
		if asJSON {
			return exitOf(writeJSON(stdout, map[string]any{"dead_letter": n, "replayed": true, "result": res}), fail)
		}
		fmt.Fprintf(stdout, "dead letter %d replayed on every ledger (%s): %s\n", n, applied(res), res.Result)
		return 0
	}
	return fail(badUsage("unknown dlq command %q (list, show, replay, discard)", operands[0]))
}

// parseSince reads a point in time as people write it: an RFC 3339 time, a date (midnight in
// loc), or a duration ago (90m, 6h, 2d).
func parseSince(s string, now time.Time, loc *time.Location) (time.Time, error) {
	if t, err := checkout.ParseTime(s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, nil
	}
	if steps, err := parseSteps(s); err == nil && len(steps) == 1 && steps[0] > 0 {
		return now.Add(-steps[0]), nil
	}
	return time.Time{}, badUsage("--since %q: want a time (2026-12-01T10:00:00Z), a date (2026-12-01) or a duration ago (90m, 6h, 2d)", s)
}

func cmdReplay(ctx context.Context, cfg Config, log *zap.Logger, since string, fromSeq uint64, asJSON bool, stdout io.Writer, fail func(error) int) int {
	var from events.ReplayFrom
	switch {
	case since != "" && fromSeq > 0:
		return fail(badUsage("give --since or --from-seq, not both"))
	case since != "":
		t, err := parseSince(since, time.Now(), cfg.ReportLocation)
		if err != nil {
			return fail(err)
		}
		from.Time = t
	case fromSeq > 0:
		from.Seq = fromSeq
	default:
		return fail(badUsage("%s", "usage: reconciler replay --since <time> | --from-seq <n>"))
	}
	l, err := createLedger(ctx, cfg) // a replay from seq 1 may rebuild a ledger from the stream
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	nc, js, err := connectStream(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	proc, err := newProcessor(&cfg, l, log, prometheus.NewRegistry())
	if err != nil {
		return fail(err)
	}
	st, err := proc.Replay(ctx, js, from, cfg.BatchSize)
	if err != nil {
		return fail(err)
	}
	if asJSON {
		return exitOf(writeJSON(stdout, st), fail)
	}
	fmt.Fprintf(stdout, "replayed %d messages (%d of them reconcilers' facts): %s, dead-lettered %d\n", st.Messages, st.Facts, outcomes(st.Outcomes), st.DeadLettered)
	return 0
}

// Main is the reconciler process: the ledger, the NATS connection, the consumer loop and the
// admin server. Tests boot it with a temporary ledger and :0 ports.
type Main struct {
	Config Config
	Log    *zap.Logger
	// Registry holds the process's metrics.
	Registry *prometheus.Registry
	// Now, when set before Run, is the clock of the ledger and the sweep (tests move it).
	Now func() time.Time
	// GaugesEvery, when set before Run, is how often the ledger's gauges (open discrepancies,
	// dead letters pending, stuck payments) are refreshed; 15 s when zero.
	GaugesEvery time.Duration

	ledger  *store.Ledger
	nc      *nats.Conn
	js      jetstream.JetStream
	admin   *http.Server
	addr    net.Addr
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	done    chan error
	running atomic.Bool
	proc    *reconcile.Processor
	// procLive is proc for the NATS callbacks, which may run before it is set.
	procLive atomic.Pointer[reconcile.Processor]
	facts    *reconcile.FactBus
	ops      *reconcile.Operator
	lease    *events.Lease
	leader   prometheus.GaugeFunc
	// leaseEpoch is when the lease bucket was made: with the lease's term, it fences sweep facts.
	leaseEpoch int64
	gauges     *reconcile.Gauges

	sweeper      *reconcile.Sweeper
	checker      atomic.Pointer[reconcile.Sweeper] // the sweeper, for the desk's "check now"
	lastSweep    atomic.Pointer[lastRun]
	lastReport   atomic.Pointer[lastRun]
	reportsLive  atomic.Pointer[reports] // m.reports, for the desk (set after the page is up)
	cron         *cron.Cron
	reports      *reports
	stopSweepCtx context.CancelFunc
}

// mountDesk serves the operator's page on the admin address: openly (operator "desk") on a
// loopback address without credentials configured; with KNETRECON_DESK_TOKEN, _TOKENS_FILE or
// _OPERATOR_HEADER, only to a request that authenticates. Off loopback without any, the page is
// off (logged). Either way it answers only the Hosts of package desk's guard.
func (m *Main) mountDesk(mux *http.ServeMux) error {
	host, _, err := net.SplitHostPort(m.Config.AdminAddr)
	if err != nil {
		return fmt.Errorf("KNETRECON_ADMIN_ADDR: %w", err)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if !loopback && m.Config.DeskToken == "" && m.Config.DeskTokensFile == "" && m.Config.DeskOperatorHeader == "" {
		m.Log.Warn("the desk page is off: KNETRECON_ADMIN_ADDR is not a loopback address and none of KNETRECON_DESK_TOKEN_FILE, KNETRECON_DESK_TOKENS_FILE, KNETRECON_DESK_OPERATOR_HEADER is set",
			zap.String("admin_addr", m.Config.AdminAddr))
		return nil
	}
	hosts, err := desk.ParseHosts(m.Config.DeskHosts)
	if err != nil {
		return err
	}
	tokens := map[string]string{}
	if f := m.Config.DeskTokensFile; f != "" {
		if tokens, err = desk.ReadTokens(f); err != nil {
			return err
		}
	}
	if t := m.Config.DeskToken; t != "" {
		if _, dup := tokens[desk.DefaultOperator]; dup {
			return fmt.Errorf("KNETRECON_DESK_TOKENS_FILE names %q, KNETRECON_DESK_TOKEN's operator: rename one", desk.DefaultOperator)
		}
		tokens[desk.DefaultOperator] = t
	}
	cfg := desk.Config{Ledger: m.ledger, Location: m.Config.ReportLocation, Now: m.ledger.Now, Health: m.health, ReportDir: m.Config.ReportDir, Log: m.Log.Named("desk"),
		Hosts: hosts, Tokens: tokens, OperatorHeader: m.Config.DeskOperatorHeader, SweepSchedule: m.Config.SweepSchedule}
	cfg.Operate(m.ops)
	if m.Config.SweepOn() {
		sw := m.Config.Sweep
		cfg.Sweep = &sw
		if m.Config.Checkout.SecretKey != "" {
			cfg.CheckNow = m.checkNow
		}
	}
	d, err := desk.New(cfg)
	if err != nil {
		return err
	}
	d.Routes(mux)
	return nil
}

// checkNow asks Checkout.com about a payment for an operator, if this reconciler holds the sweep:
// one that does not never calls Checkout.com.
func (m *Main) checkNow(ctx context.Context, id, who, note string) (string, error) {
	s := m.checker.Load()
	if s == nil {
		return "", errors.New("the sweep is still starting; try again")
	}
	if l := m.lease; l != nil && !l.Held() {
		holder, _ := l.Holder(ctx)
		return "", fmt.Errorf("%w: this reconciler does not hold the sweep, so it never calls Checkout.com; ask on the one that does (%s)", reconcile.ErrRefused, holder)
	}
	d, err := s.Check(ctx, id, &reconcile.OperatorNote{Who: who, Note: note})
	if err != nil {
		return "", err
	}
	if d.Error != "" {
		return "", fmt.Errorf("%s: %s", d.Outcome, d.Error)
	}
	out := d.Outcome
	if d.ProviderStatus != "" {
		out += " (Checkout.com says " + d.ProviderStatus + ")"
	}
	if len(d.Applied) > 0 {
		out += "; learned " + strings.Join(d.Applied, ", ")
	}
	return out, nil
}

// receiverHealth asks the receiver's readiness URL, within a second.
func receiverHealth(ctx context.Context, u string) desk.Check {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c := desk.Check{Name: "receiver"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.Detail = "not answering at " + u + ": " + err.Error()
		return c
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	c.OK = resp.StatusCode == http.StatusOK
	c.Detail = fmt.Sprintf("%s: %d %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
	return c
}

// lastRun is when a scheduled job last finished, and how.
type lastRun struct {
	At     time.Time
	Detail string
	Err    string
}

// health is the road's state as the desk shows it.
func (m *Main) health(ctx context.Context) []desk.Check {
	ledger := desk.Check{Name: "ledger", OK: !m.proc.Failing(), Detail: "takes writes"}
	if !ledger.OK {
		ledger.Detail = "refuses writes: a batch is held and retried (see the logs)"
	}
	position := desk.Check{Name: "position", OK: true, Detail: "the ledger holds everything its consumer acked"}
	if g := m.proc.Gap(); !g.Ready() {
		position.OK, position.Detail = false, g.Why()
	}
	checks := []desk.Check{
		{Name: "consumer", OK: m.running.Load(), Detail: "applies the stream (durable " + m.Config.Consumer.Durable + ")"},
		position,
		{Name: "NATS", OK: m.nc.IsConnected(), Detail: "connected to the stream"},
		ledger,
	}
	if u := m.Config.ReceiverHealthURL; u != "" {
		checks = append([]desk.Check{receiverHealth(ctx, u)}, checks...)
	}
	if b, err := events.ReadBacklog(ctx, m.js); err == nil {
		checks = append(checks, desk.Check{Name: "stream", OK: b.MaxBytes <= 0 || b.UnappliedBytes*2 < uint64(b.MaxBytes),
			Detail: fmt.Sprintf("%d messages not applied yet; %d MB of %d MB used", b.UnappliedMsgs, b.Bytes>>20, max(b.MaxBytes, 0)>>20)})
	}
	if m.Config.SweepOn() {
		c := desk.Check{Name: "sweep", OK: true, Detail: "not run yet (schedule " + m.Config.SweepSchedule + ")"}
		if last := m.lastSweep.Load(); last != nil {
			c.Detail = "last at " + last.At.In(m.Config.ReportLocation).Format(desk.TimeLayout) + ": " + last.Detail
			if last.Err != "" {
				c.OK, c.Detail = false, "last at "+last.At.In(m.Config.ReportLocation).Format(desk.TimeLayout)+" failed: "+last.Err
			}
		}
		checks = append(checks, c)
	} else {
		checks = append(checks, desk.Check{Name: "sweep", OK: false, Detail: "off (KNETRECON_SWEEP_SCHEDULE=off): Pending payments are not checked"})
	}
	if r := m.reportsLive.Load(); r != nil {
		checks = append(checks, r.check())
	}
	return checks
}

// KeyCheckEvery is how often the key file is looked at for a change (SIGHUP reloads at once).
var KeyCheckEvery = 5 * time.Second

// reloadKeys reads the key files again (SIGHUP, or a file changed): KNETRECON_WEBHOOK_KEYS_FILE
// verifies the next messages, KNETRECON_FACT_KEYS_FILE signs (its first key) and verifies the
// next facts. Keys that cannot be read, or none, are refused and the keys in use kept.
func (m *Main) reloadKeys(reason string) {
	if ring := m.reloadRing(m.Config.WebhookKeysFile, "KNETRECON_WEBHOOK_KEYS_FILE", "webhook", reason); ring != nil {
		m.proc.SetKeys(ring)
	}
	if ring := m.reloadRing(m.Config.FactKeysFile, "KNETRECON_FACT_KEYS_FILE", "fact", reason); ring != nil {
		m.proc.SetFactKeys(ring)
		m.facts.SetKeys(ring)
	}
}

// reloadRing reads the key file path (none: nil) and logs what came of it.
func (m *Main) reloadRing(path, variable, what, reason string) *checkout.KeyRing {
	if path == "" {
		return nil
	}
	keys, err := service.ReadSecretFile(path)
	var ring *checkout.KeyRing
	if err == nil {
		ring, err = checkout.NewKeyRing(checkout.ParseKeys(keys)...)
	}
	if err != nil {
		m.Log.Error(what+" keys not reloaded; the keys in use are kept", zap.String("reason", reason),
			zap.String("error", variable+": "+err.Error()))
		return nil
	}
	m.Log.Info(what+" keys reloaded", zap.String("reason", reason), zap.Strings("keys", ring.Fingerprints()))
	return ring
}

// chaosHook is set only in a build with the chaos tag (chaos.go): fault injection for the suite.
var chaosHook func(*reconcile.Processor, *zap.Logger)

// NewMain returns a reconciler for cfg logging to log.
func NewMain(cfg Config, log *zap.Logger) *Main {
	return &Main{Config: cfg, Log: log, Registry: prometheus.NewRegistry(), done: make(chan error, 2)}
}

// Run opens the ledger, connects to NATS, waits for the stream, ensures the durable consumer,
// starts the admin server and the consumer loop. It returns once consuming has started.
func (m *Main) Run(ctx context.Context) error {
	factKeys, err := m.Config.factRing()
	if err != nil {
		return err
	}
	cfg := m.Config
	if m.ledger, err = createLedger(ctx, cfg); err != nil {
		return err
	}
	if m.Now != nil {
		m.ledger.Now = m.Now
		m.Config.Sweep.Now = m.Now
	}
	conn, err := cfg.natsConn()
	if err != nil {
		return err
	}
	conn.OnDisconnect = func(err error) { m.Log.Warn("NATS disconnected", zap.Error(err)) }
	conn.OnReconnect = func(url string) {
		m.Log.Info("NATS reconnected", zap.String("url", url))
		if p := m.procLive.Load(); p != nil {
			p.CheckGapSoon() // the server may have come back with other acks (a cut, a new leader)
		}
	}
	if m.nc, err = events.Connect(conn); err != nil {
		return err
	}
	if m.js, err = jetstream.New(m.nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	cons, err := m.ensureConsumer(ctx)
	if err != nil {
		return err
	}
	batches, err := events.NewBatches(cons, cfg.BatchSize, cfg.FetchWait, cfg.BatchLinger)
	if err != nil {
		return err
	}

	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	service.RegisterBuildInfo(m.Registry, "reconciler")
	proc, err := newProcessor(&cfg, m.ledger, m.Log.Named("apply"), m.Registry)
	if err != nil {
		batches.Stop()
		return err
	}
	if chaosHook != nil {
		chaosHook(proc, m.Log)
	}
	m.proc = proc
	m.procLive.Store(proc)
	if proc.Stream, err = m.js.Stream(ctx, events.StreamName); err != nil {
		batches.Stop()
		return fmt.Errorf("stream %s: %w", events.StreamName, err)
	}
	m.facts = reconcile.NewFactBus(m.js, m.ledger, proc, factKeys, cfg.Consumer.Durable)
	m.ops = reconcile.NewOperator(m.ledger, m.facts)
	loop := reconcile.NewConsumer(proc, batches, m.Log.Named("consumer"))
	loop.Connected = m.nc.IsConnected
	loop.FillGap = func(ctx context.Context) { proc.FillGap(ctx, m.js, cfg.Consumer.Durable, cfg.BatchSize) }

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", m.ready)
	if cfg.PProf {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	if err := m.mountDesk(mux); err != nil {
		batches.Stop()
		return err
	}
	ln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		batches.Stop()
		return fmt.Errorf("KNETRECON_ADMIN_ADDR: listen on %s: %w", cfg.AdminAddr, err)
	}
	m.addr = ln.Addr()
	m.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(m.Log.Named("http"))}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("admin server stopped", zap.Error(err))
		}
	}()

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.running.Store(true)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer m.running.Store(false)
		if err := loop.Run(runCtx, cfg.ShutdownTimeout); err != nil {
			m.done <- err
		}
	}()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		proc.WatchLag(runCtx, m.js, cfg.Consumer.Durable, 15*time.Second)
	}()
	// The gauges the alerts page on come from the ledger, so every reconciler exports them,
	// with the sweep off or another replica holding its lease.
	m.gauges = reconcile.NewGauges(m.ledger, m.Registry)
	gaugesEvery := m.GaugesEvery
	if gaugesEvery <= 0 {
		gaugesEvery = 15 * time.Second
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.gauges.Run(runCtx, gaugesEvery, m.ledger.Now, m.Log.Named("gauges"))
	}()
	if files := slices.DeleteFunc([]string{cfg.WebhookKeysFile, cfg.FactKeysFile}, func(f string) bool { return f == "" }); len(files) > 0 {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			service.WatchReload(runCtx, files, KeyCheckEvery, func(reason string) { m.reloadKeys(reason) })
		}()
	}
	if cfg.SweepOn() {
		if err := m.startSweep(ctx); err != nil {
			return err
		}
	} else {
		m.Log.Warn("sweep off (KNETRECON_SWEEP_SCHEDULE=off): payments left Pending are not checked")
	}
	if cfg.ReportsOn() {
		if err := m.startReports(); err != nil {
			return err
		}
	}
	m.Log.Info("reconciler started", zap.String("ledger", cfg.Ledger), zap.String("admin", m.addr.String()),
		zap.String("consumer", cfg.Consumer.Durable), zap.Int("batch_size", cfg.BatchSize))
	return nil
}

// ensureConsumer waits for the receiver's stream (it owns the stream's settings) and creates the
// durable consumer, retrying until StartTimeout.
func (m *Main) ensureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, m.Config.StartTimeout)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		pos, err := m.ledger.Position(attempt)
		var c jetstream.Consumer
		var placed string
		if err == nil {
			c, placed, err = events.EnsureConsumerAt(attempt, m.js, m.Config.Consumer, pos)
		}
		cancelAttempt()
		if err == nil {
			if placed != "" {
				m.Log.Warn("durable consumer placed at the ledger's own position", zap.String("what", placed))
			}
			return c, nil
		}
		m.Log.Warn("stream or consumer not ready, retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("consumer %s on stream %s not ready within %s: %w", m.Config.Consumer.Durable, events.StreamName, m.Config.StartTimeout, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ready answers 200 when the consumer loop runs, NATS is connected and the ledger answers.
func (m *Main) ready(w http.ResponseWriter, r *http.Request) {
	if !m.running.Load() {
		http.Error(w, "consumer not running", http.StatusServiceUnavailable)
		return
	}
	if !m.nc.IsConnected() {
		http.Error(w, "NATS not connected", http.StatusServiceUnavailable)
		return
	}
	if m.proc.Failing() {
		http.Error(w, "ledger refusing writes: a batch is held and retried (see the logs)", http.StatusServiceUnavailable)
		return
	}
	if g := m.proc.Gap(); !g.Ready() {
		http.Error(w, g.Why(), http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := m.ledger.Ping(ctx); err != nil {
		http.Error(w, "ledger not answering", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// AdminAddr is the admin server's address (useful with :0).
func (m *Main) AdminAddr() string { return m.addr.String() }

// Ledger is the open ledger (for tests).
func (m *Main) Ledger() *store.Ledger { return m.ledger }

// Done reports a consumer loop that stopped on its own.
func (m *Main) Done() <-chan error { return m.done }

// Close stops fetching, lets the batch in hand finish and be acked, stops the admin server,
// drains NATS and closes the ledger last. It returns the first error met.
func (m *Main) Close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	m.stopSweep(ctx)
	if m.reports != nil {
		m.reports.stop(ctx)
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.admin != nil {
		keep(m.admin.Shutdown(ctx))
	}
	m.wg.Wait()
	events.Drain(ctx, m.nc)
	if m.ledger != nil {
		keep(m.ledger.Close())
	}
	return first
}
