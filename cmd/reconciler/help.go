package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// command is one subcommand of the reconciler, for `reconciler help`.
type command struct {
	name, usage, short, long string
}

// commands are the reconciler's subcommands, in the order `reconciler help` lists them.
var commands = []command{
	{"run", "reconciler run", "the daemon: apply the stream to the ledger, sweep, write the daily reports",
		"Consumes the stream into the SQLite ledger, runs the seven-minute sweep and the verification of\nfinal payments, writes the daily reports, and serves /healthz, /readyz and /metrics."},
	{"payment", "reconciler payment <pay_id | KNET id | bank reference> [--json] | --reference REF", "the ledger's view of one payment",
		"Its status, money, postings, events, discrepancies, the sweep's checks and KNET's ids."},
	{"stuck", "reconciler stuck [--json]", "the payments the sweep could not resolve", ""},
	{"discrepancies", "reconciler discrepancies [--all] [--kind K] [--json]", "what an operator must look at", ""},
	{"resolve", "reconciler resolve <id> --note \"…\" [--json]", "mark one discrepancy handled, with a note", ""},
	{"report", "reconciler report [--date D | --from D --to D] [--format text|json|csv|xlsx | --json] [--out DIR [--force]]", "finance's report of a day or of several days",
		"Dates are YYYY-MM-DD in KNETRECON_REPORT_TZ (default: yesterday). --out writes the files, once the\nledger holds the day (the day is over and every message the stream stored before its end is\napplied; it waits up to 10 s, then exits 1 saying why, unless --force); a day already written with\nother money gets a new revision beside it. Printed, a day the ledger does not hold is a warning."},
	{"reconcile", "reconciler reconcile --from D --to D [--apply] [--json]", "every payment of those days against Checkout.com, both ways",
		"A dry run unless --apply. Needs KNETRECON_CHECKOUT_SECRET_KEY."},
	{"settle", settleUsage, "the acquiring bank's KNET statement against the ledger",
		"The statement is CSV or .xlsx; its header row is found below any title rows, and blank, total and\nfooter rows are listed as skipped. A bank's layout is written once in a --layout file."},
	{"deposits", depositsUsage, "the merchant's bank account against the nets the bank's statements promise",
		"For each posting day of the settled statements, one credit of that day's net (one per batch when the\naccount statement has a batch column) within --days. Missing and short deposits open deposit_missing\nand deposit_amount_mismatch; a later account statement showing the money resolves them."},
	{"sweep", "reconciler sweep --once [--dry-run] [--json]", "one seven-minute sweep by hand", "Needs KNETRECON_CHECKOUT_SECRET_KEY."},
	{"dlq", "reconciler dlq list [--all] [--json] | show <id> | replay <id> | discard <id> --note \"…\"", "the dead letters: look, replay, set aside", ""},
	{"replay", "reconciler replay --since <time> | --from-seq <n> [--json]", "apply the stream again from a point (idempotent)",
		"--since takes 2026-12-01T10:00:00Z, 2026-12-01 (midnight in KNETRECON_REPORT_TZ) or a duration ago (90m, 6h, 2d)."},
	{"backup", "reconciler backup FILE [--json]", "copy the ledger (online, consistent) with the stream position it holds",
		"SQLite's online backup: the reconciler runs on meanwhile. The copy records the last stream sequence it\nholds, so `reconciler rebuild --from-backup FILE` replays only what came after."},
	{"rebuild", "reconciler rebuild [--from-backup FILE] [--force] [--json]", "make the ledger anew from the stream (or a backup and the stream)",
		"Stop the reconciler first. The new ledger is built beside KNETRECON_LEDGER and moved into place; an\nexisting one needs --force and is kept as <ledger>.replaced-<time>. Without a backup the stream must\nstill hold its first message (see KNETRECON_STREAM_MAX_AGE)."},
	{"digest", "reconciler digest [--json]", "what replicas must agree on, hashed: payments, postings, discrepancies",
		"Two ledgers of the same stream, applied as far (the same stream seq), print the same digest."},
	{"migrate", "reconciler migrate [--json]", "bring the ledger's schema up to date", ""},
	{"healthcheck", "reconciler healthcheck [--path /readyz] [--url URL] [--timeout 3s]", "ask the running reconciler's /readyz (the container's health check)", ""},
	{"help", "reconciler help [command]", "this list, or one command's synopsis and flags", ""},
}

func commandNamed(name string) (command, bool) {
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return commands[i], true
}

// printCommands writes the overview `reconciler help` prints.
func printCommands(w io.Writer) {
	fmt.Fprintln(w, "reconciler: applies the webhooks stored in JetStream to the SQLite ledger, and answers questions about it.")
	fmt.Fprintln(w, "\nUsage: reconciler <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w, "\nreconciler <command> --help shows a command's synopsis and its flags. Every command also takes\n"+
		"the settings of `reconciler run --help` (KNETRECON_LEDGER, KNETRECON_NATS_URL, …), from flags or the\n"+
		"environment. --version prints the build. Times in the text are in KNETRECON_REPORT_TZ (default\n"+
		"Asia/Kuwait) with the offset; --json writes RFC 3339.\n\n"+
		"Exit codes, the same for every command:\n"+
		"  0  done, and clean\n"+
		"  1  failed (or not known to be done: a fact published and not applied to this ledger within the wait)\n"+
		"  2  usage or configuration error: nothing was done\n"+
		"  3  done, and differences found (settle, deposits, reconcile)\n\n"+
		"Commands that act (settle, deposits, resolve, dlq discard and replay, reconcile --apply, sweep --once) publish\n"+
		"a fact on the stream and print what applying it did to this ledger, whoever applied it: the\n"+
		"running reconciler, or the command itself when it has KNETRECON_WEBHOOK_KEYS.")
}

// printCommand writes one command's help: synopsis, what it does, and only its own flags.
func printCommand(w io.Writer, c command, own func(*flag.FlagSet)) {
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", c.usage, strings.ToUpper(c.short[:1])+c.short[1:])
	if c.long != "" {
		fmt.Fprintf(w, "\n%s\n", c.long)
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	own(fs)
	fs.SetOutput(w)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
	fmt.Fprintln(w, "\nThe settings of `reconciler run --help` apply too: KNETRECON_LEDGER (default ./data/ledger.db), …")
}

// noOperands are the commands that take flags only: anything else on their command line is a
// usage error, not silently ignored.
var noOperands = []string{"run", "stuck", "discrepancies", "report", "reconcile", "settle", "deposits", "sweep", "replay", "digest", "migrate", "rebuild"}

// printUsage writes what a usage error shows: the command's own synopsis and flags (≤ a screen),
// or for run, where its settings are listed.
func printUsage(w io.Writer, c command, own func(*flag.FlagSet)) {
	if c.name == "run" {
		fmt.Fprintf(w, "Usage: %s [flags]\n\n`reconciler run --help` lists its settings (each a flag or a KNETRECON_… variable).\n", c.usage)
		return
	}
	printCommand(w, c, own)
}

// wantsHelp reports whether args ask for help (-h, -help, --help) before any -- separator.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}
