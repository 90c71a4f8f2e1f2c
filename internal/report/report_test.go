package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"knetrecon/internal/payment"
	"knetrecon/internal/report"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

var kuwait = time.FixedZone("Asia/Kuwait", 3*3600)

// at is a UTC time on 2026-11-dd.
func at(day, hour, minute int) time.Time {
	return time.Date(2026, 11, day, hour, minute, 0, 0, time.UTC)
}

func event(id, typ, pid, action, currency, ref string, amount int64, when time.Time) store.Input {
	return store.Input{EventID: id, Type: typ, Origin: store.OriginWebhook, PaymentID: pid, ActionID: action,
		Amount: amount, Currency: currency, Reference: ref, Method: "knet", OccurredAt: when, ReceivedAt: when,
		Body: []byte(fmt.Sprintf(`{"id":%q}`, id))}
}

// ledgerOfTheDay holds payments around 2026-11-25 in Kuwait (UTC+3): from 2026-11-24T21:00Z to
// 2026-11-25T21:00Z. Every event reaches the ledger at noon UTC on the 25th.
func ledgerOfTheDay(t *testing.T) *store.Ledger {
	t.Helper()
	l := storetest.MustOpenLedger(t)
	l.Now = func() time.Time { return at(25, 12, 0) }
	ins := []store.Input{
		// Requested the evening before (23:50 in Kuwait), captured five minutes past midnight.
		event("evt_a1", payment.EventPending, "pay_a", "", "KWD", "ORD-A", 1000, at(24, 20, 50)),
		event("evt_a2", payment.EventCaptured, "pay_a", "act_a", "KWD", "ORD-A", 1000, at(24, 21, 5)),
		// Captured and partly refunded on the day; a reference a spreadsheet would run.
		event("evt_b1", payment.EventPending, "pay_b", "", "KWD", "=HYPERLINK(\"x\")", 2500, at(25, 10, 0)),
		event("evt_b2", payment.EventCaptured, "pay_b", "act_b", "KWD", "", 2500, at(25, 10, 5)),
		event("evt_b3", payment.EventRefunded, "pay_b", "act_b_r", "KWD", "", 500, at(25, 11, 0)),
		// Requested on the day, captured after its midnight: the next day's money.
		event("evt_c1", payment.EventPending, "pay_c", "", "KWD", "ORD-C", 700, at(25, 20, 55)),
		event("evt_c2", payment.EventCaptured, "pay_c", "act_c", "KWD", "ORD-C", 700, at(25, 21, 1)),
		// Captured five days before, learned on the day: late.
		event("evt_d1", payment.EventPending, "pay_d", "", "KWD", "ORD-D", 4000, at(20, 10, 0)),
		event("evt_d2", payment.EventCaptured, "pay_d", "act_d", "KWD", "ORD-D", 4000, at(20, 10, 1)),
		// A refund no capture covers: held.
		event("evt_e1", payment.EventPending, "pay_e", "", "KWD", "ORD-E", 900, at(25, 9, 0)),
		event("evt_e2", payment.EventRefunded, "pay_e", "act_e_r", "KWD", "ORD-E", 300, at(25, 9, 30)),
		// Another currency.
		event("evt_f1", payment.EventCaptured, "pay_f", "act_f", "USD", "ORD-F", 1999, at(25, 15, 0)),
	}
	if _, err := l.ApplyBatch(context.Background(), ins); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestDaily(t *testing.T) {
	l := ledgerOfTheDay(t)
	d, err := report.Build(context.Background(), l, "2026-11-25", kuwait, at(26, 0, 15))
	if err != nil {
		t.Fatal(err)
	}
	if !d.From.Equal(at(24, 21, 0)) || !d.To.Equal(at(25, 21, 0)) || !d.Balanced {
		t.Fatalf("bounds %s – %s, balanced %v (%s)", d.From, d.To, d.Balanced, d.Imbalance)
	}
	wantTotals := []report.Totals{
		// act_d, captured five days before and learned on the day, counts on the day.
		{Currency: "KWD", Captures: 3, Captured: 7500, Refunds: 1, Refunded: 500, Net: 7000, HeldRefunds: 1, Held: 300},
		{Currency: "USD", Captures: 1, Captured: 1999, Net: 1999},
	}
	if !reflect.DeepEqual(d.Totals, wantTotals) {
		t.Fatalf("totals %+v\nwant   %+v", d.Totals, wantTotals)
	}
	if want := []report.Totals{{Currency: "KWD", Captures: 1, Captured: 4000, Net: 4000}}; !reflect.DeepEqual(d.Late, want) {
		t.Fatalf("late %+v, want %+v", d.Late, want)
	}
	var actions []string
	for _, pl := range d.Postings {
		actions = append(actions, pl.ActionID)
	}
	// In the order they count: all were posted at noon (ties by action id), act_f's own time is later.
	if want := []string{"act_a", "act_b", "act_b_r", "act_d", "act_e_r", "act_f"}; !reflect.DeepEqual(actions, want) {
		t.Fatalf("postings %v, want %v (in the order they count)", actions, want)
	}
	if len(d.LatePostings) != 1 || d.LatePostings[0].ActionID != "act_d" || !d.LatePostings[0].LearnedAt.Equal(at(25, 12, 0)) {
		t.Fatalf("late postings %+v", d.LatePostings)
	}
	started := map[string]int64{}
	for _, c := range d.Payments {
		started[string(c.Status)+" "+c.Currency] += c.Count
	}
	if want := map[string]int64{"Partially Refunded KWD": 1, "Captured KWD": 1, "Captured USD": 1, "Pending KWD": 1}; !reflect.DeepEqual(started, want) {
		t.Fatalf("payments requested on the day %v, want %v", started, want)
	}
	if d.OpenPayments != 1 { // pay_e
		t.Fatalf("open payments %d", d.OpenPayments)
	}

	var text bytes.Buffer
	if err := d.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"KWD  captures 3: 7.500  refunds 1: 0.500  net 7.000  held refunds 1: 0.300",
		"USD  captures 1: 19.99", "KWD  captures 1: 4.000", "ledger: balanced", "1 payments not final"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

func TestDailyCSVAndFiles(t *testing.T) {
	l := ledgerOfTheDay(t)
	d, err := report.Build(context.Background(), l, "2026-11-25", kuwait, at(26, 0, 15))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	paths, err := report.WriteFiles(dir, d)
	if err != nil || len(paths) != 4 || filepath.Base(paths[3]) != "2026-11-25.totals.csv" {
		t.Fatalf("%v %v", paths, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Fatalf("report dir holds %d files (a temporary file left behind?)", len(entries))
	}
	raw, err := os.ReadFile(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("\ufeff")) {
		t.Fatal("the CSV has no UTF-8 byte order mark: Excel would misread it")
	}
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(raw, []byte("\ufeff")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// 6 postings and nothing else: no total rows among the detail rows.
	if len(rows) != 1+6 || !reflect.DeepEqual(rows[0], report.CSVHeader) {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	// The amount column's SUM, per currency, is the day's net; a held refund is blank there.
	sum := map[string]int64{}
	for _, r := range rows[1:] {
		if r[1] != "day" && r[1] != "late" {
			t.Fatalf("a row that is not a posting: %v", r)
		}
		if r[9] != "" {
			n, err := strconv.ParseInt(r[9], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			sum[r[17]] += n
		}
	}
	if want := map[string]int64{"KWD": 7000, "USD": 1999}; !reflect.DeepEqual(sum, want) {
		t.Fatalf("SUM(amount_minor) %v, want the day's net %v", sum, want)
	}
	b := rows[2] // act_b: the day's second posting
	want := []string{"2026-11-25", "day", "2026-11-25 13:05:00", "2026-11-25 15:00:00", "pay_b",
		`'=HYPERLINK("x")`, "act_b", "capture", "posted", "2500", "2.500", "", "", "", "", "", "", "KWD", "webhook", "evt_b2", "2026-11-25 15:00:00"}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("row %v\nwant %v", b, want)
	}
	if refund := rows[3]; refund[6] != "act_b_r" || refund[9] != "-500" || refund[10] != "-0.500" {
		t.Fatalf("refund row %v: want a negative amount", refund)
	}
	if late := rows[4]; late[1] != "late" || late[6] != "act_d" || late[10] != "4.000" {
		t.Fatalf("late row %v", late)
	}
	if h := rows[5]; h[8] != "held" || h[9] != "" || h[10] != "" || h[11] != "-300" || h[12] != "-0.300" {
		t.Fatalf("held row %v", h)
	}
	if usd := rows[6]; usd[10] != "19.99" || usd[17] != "USD" {
		t.Fatalf("USD row %v: want 2 decimals", usd)
	}
	raw, err = os.ReadFile(paths[3])
	if err != nil {
		t.Fatal(err)
	}
	totals, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(raw, []byte("\ufeff")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantTotals := [][]string{report.TotalsHeader,
		{"2026-11-25", "2026-11-25", "day", "KWD", "3", "1", "1", "7.500", "-0.500", "7.000", "-0.300", "0.000", "0.000"},
		{"2026-11-25", "2026-11-25", "day", "USD", "1", "0", "0", "19.99", "0.00", "19.99", "0.00", "0.00", "0.00"},
		{"2026-11-25", "2026-11-25", "late (included in day)", "KWD", "1", "0", "0", "4.000", "0.000", "4.000", "0.000", "0.000", "0.000"}}
	if !reflect.DeepEqual(totals, wantTotals) {
		t.Fatalf("totals file %v\nwant %v", totals, wantTotals)
	}
	raw, err = os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	var back report.Daily
	if err := json.Unmarshal(raw, &back); err != nil || back.Date != "2026-11-25" || len(back.Postings) != 6 || back.Totals[0].Net != 7000 {
		t.Fatalf("JSON file: %v %+v", err, back.Totals)
	}
	// Written again (a later run of the same day), the files are replaced whole.
	if _, err := report.WriteFiles(dir, d); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Fatalf("after a rewrite the dir holds %d files", len(entries))
	}
	// The workbook is TestDailyXLSX's.
	if _, err := excelize.OpenFile(paths[2]); err != nil {
		t.Fatal(err)
	}
}

func TestDayAndYesterday(t *testing.T) {
	if _, _, err := report.Day("25/11/2026", kuwait); err == nil {
		t.Fatal("a malformed date was accepted")
	}
	if got := report.Yesterday(at(25, 21, 30), kuwait); got != "2026-11-25" { // 00:30 on the 26th in Kuwait
		t.Fatalf("yesterday %s", got)
	}
	if got := report.Yesterday(at(25, 20, 30), kuwait); got != "2026-11-24" {
		t.Fatalf("yesterday %s", got)
	}
}

// A report that cannot be written says so and leaves nothing behind.
func TestWriteFilesFailure(t *testing.T) {
	l := ledgerOfTheDay(t)
	d, err := report.Build(context.Background(), l, "2026-11-25", kuwait, at(26, 0, 15))
	if err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := report.WriteFiles(filepath.Join(blocker, "reports"), d); err == nil || !strings.Contains(err.Error(), "report 2026-11-25") {
		t.Fatalf("writing under a file: %v", err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if os.Geteuid() != 0 { // root writes anywhere
		if _, err := report.WriteFiles(dir, d); err == nil {
			t.Fatal("a read-only directory accepted the report")
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("a failed write left %d files", len(entries))
		}
	}
}

// TestReportsTieOutToTheLedger runs randomized stories over ten days: captures whose webhook
// comes on time or days late, partial refunds, some arriving before their capture (held, then
// released). Each day's report is due just after the day ends and is written once the ledger
// holds the day (report.CheckHold); built again at the end it has not changed (no revision), and
// the reports' nets add up, currency by currency, to the ledger's money.
//
// Each story runs twice: with a consumer that keeps up, and with one held back over midnight
// every night (from 22:00 to 01:30), so that the messages the stream stored late in the day are
// applied after the report fell due. Those postings still count on the day (stream time): a
// report written when due, as before, would miss them; the test checks it would (the exposure
// is real in the story) and that the report waits for the ledger instead.
func TestReportsTieOutToTheLedger(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) { tieOut(t, seed, false) })
		t.Run(fmt.Sprintf("seed %d consumer held back over midnight", seed), func(t *testing.T) { tieOut(t, seed, true) })
	}
}

func tieOut(t *testing.T, seed uint64, heldBack bool) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 99))
	l := storetest.MustOpenLedger(t)
	clock := time.Date(2026, 11, 1, 0, 0, 0, 0, kuwait)
	l.Now = func() time.Time { return clock }
	type delivery struct {
		in store.Input
		at time.Time // when the stream stored it
	}
	var queue []delivery
	var wantNet = map[string]int64{}
	start := clock
	for i := 0; i < 200; i++ {
		pid := fmt.Sprintf("pay_%d", i)
		currency := "KWD"
		if r.IntN(10) == 0 {
			currency = "USD"
		}
		amount := int64(r.IntN(5000)+1) * 10
		made := start.Add(time.Duration(r.IntN(10*24*60)) * time.Minute)
		late := time.Duration(0)
		if r.IntN(4) == 0 {
			late = time.Duration(r.IntN(3*24*60)) * time.Minute // the webhook came days late
		}
		queue = append(queue, delivery{event("evt_c"+pid, payment.EventCaptured, pid, "act_c"+pid, currency, "ORD", amount, made), made.Add(time.Minute + late)})
		wantNet[currency] += amount
		if r.IntN(3) == 0 {
			refund := amount / 2
			refunded := made.Add(time.Duration(r.IntN(48*60)+1) * time.Minute)
			arrives := refunded.Add(time.Minute)
			if r.IntN(3) == 0 {
				arrives = made.Add(-time.Hour + late) // before its capture's webhook: held, then released
			}
			queue = append(queue, delivery{event("evt_r"+pid, payment.EventRefunded, pid, "act_r"+pid, currency, "ORD", refund, refunded), arrives})
			wantNet[currency] -= refund
		}
	}
	sort.SliceStable(queue, func(i, j int) bool { return queue[i].at.Before(queue[j].at) })
	build := func(date string) *report.Daily {
		d, err := report.Build(ctx, l, date, kuwait, clock)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// stalled: the consumer does not apply from 22:00 to 01:30 (when held back).
	stalled := func(at time.Time) bool {
		mins := at.Hour()*60 + at.Minute()
		return heldBack && (mins >= 22*60 || mins < 90)
	}
	dir := t.TempDir()
	built := map[string]*report.Daily{}
	whenDue := map[string]*report.Daily{} // as a report written when due would have been
	var pending []delivery                // stored by the stream, not applied yet
	var stored, applied uint64            // the stream's last sequence, the ledger's position
	var due []string
	marks := map[string]report.Watermark{}
	waited := 0
	last := queue[len(queue)-1].at
	end := time.Date(last.Year(), last.Month(), last.Day()+3, 0, 16, 0, 0, kuwait) // the last days' reports due too
	for now := start; now.Before(end) || len(pending) > 0 || len(due) > 0; now = now.Add(time.Minute) {
		clock = now
		for len(queue) > 0 && !queue[0].at.After(now) { // the stream stores the message
			pending = append(pending, queue[0])
			queue = queue[1:]
			stored++
		}
		if !stalled(now) { // the consumer applies, each message at the time the stream stored it
			for _, p := range pending {
				clock = p.at
				if _, err := l.Apply(ctx, p.in); err != nil {
					t.Fatal(err)
				}
				applied++
			}
			pending, clock = nil, now
		}
		if now.Hour() == 0 && now.Minute() == 15 && now.After(start) { // 00:15: yesterday's report falls due
			date := now.AddDate(0, 0, -1).Format(time.DateOnly)
			due = append(due, date)
			whenDue[date] = build(date)
		}
		for len(due) > 0 {
			date := due[0]
			h, err := report.CheckHold(date, kuwait, now, marks[date], func() (uint64, error) { return stored, nil },
				func() (uint64, error) { return applied, nil })
			if err != nil {
				t.Fatal(err)
			}
			marks[date] = h.Mark
			if !h.Held() {
				waited++
				break
			}
			built[date] = build(date)
			if _, _, err := report.WriteRevision(dir, built[date]); err != nil {
				t.Fatal(err)
			}
			due = due[1:]
		}
	}
	gotNet := map[string]int64{}
	missed := 0
	for date, first := range built {
		again := build(date)
		if !reflect.DeepEqual(first.Totals, again.Totals) || len(first.Postings) != len(again.Postings) {
			t.Fatalf("%s changed after it was written: %+v -> %+v", date, first.Totals, again.Totals)
		}
		if _, written, err := report.WriteRevision(dir, again); err != nil || written {
			t.Fatalf("%s: a new revision of a report written once the ledger held the day (%v)", date, err)
		}
		for _, tot := range again.Totals {
			gotNet[tot.Currency] += tot.Net
		}
		if !reflect.DeepEqual(whenDue[date].Totals, again.Totals) {
			missed++
		}
	}
	if len(built) < 12 {
		t.Fatalf("%d reports written", len(built))
	}
	if !reflect.DeepEqual(gotNet, wantNet) {
		t.Fatalf("the reports' nets %v, the ledger's %v", gotNet, wantNet)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	switch {
	case heldBack && (waited == 0 || missed == 0):
		t.Fatalf("held back: %d waits, %d reports written when due would have missed money: the story does not hold the consumer back", waited, missed)
	case !heldBack && (waited != 0 || missed != 0):
		t.Fatalf("a consumer that keeps up: %d waits, %d reports would have missed money", waited, missed)
	}
	t.Logf("%d reports; %d minutes waited for the ledger; %d written when due would have missed money", len(built), waited, missed)
}

// TestRevisionsNeverRewrite: a day's report written before the day is over is kept; built again
// with more money, it is written as revision 2 beside it, listing what changed; built again with
// the same money, nothing is written.
func TestRevisionsNeverRewrite(t *testing.T) {
	l := ledgerOfTheDay(t)
	dir := t.TempDir()
	first, err := report.Build(context.Background(), l, "2026-11-25", kuwait, at(25, 13, 0))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := report.WriteFiles(dir, first)
	if err != nil || filepath.Base(paths[0]) != "2026-11-25.json" {
		t.Fatalf("%v %v", paths, err)
	}
	original, _ := os.ReadFile(paths[0])
	// The same money again: nothing new.
	again, _ := report.Build(context.Background(), l, "2026-11-25", kuwait, at(25, 14, 0))
	if p, err := report.WriteFiles(dir, again); err != nil || p[0] != paths[0] {
		t.Fatalf("unchanged: %v %v", p, err)
	}
	// The ledger learns a capture before the day is over.
	if _, err := l.Apply(context.Background(), event("evt_g", payment.EventCaptured, "pay_g", "act_g", "KWD", "ORD-G", 600, at(25, 13, 30))); err != nil {
		t.Fatal(err)
	}
	later, _ := report.Build(context.Background(), l, "2026-11-25", kuwait, at(26, 0, 15))
	p2, err := report.WriteFiles(dir, later)
	if err != nil || filepath.Base(p2[0]) != "2026-11-25.r2.json" || filepath.Base(p2[1]) != "2026-11-25.r2.csv" {
		t.Fatalf("revision: %v %v", p2, err)
	}
	if report.Money(first.Postings) != report.Money(again.Postings) || report.Money(later.Postings) == report.Money(first.Postings) {
		t.Fatal("Money does not tell the same money from other money")
	}
	if now, _ := os.ReadFile(paths[0]); !bytes.Equal(now, original) {
		t.Fatal("revision 1 was rewritten")
	}
	raw, _ := os.ReadFile(p2[0])
	var r2 report.Daily
	if err := json.Unmarshal(raw, &r2); err != nil || r2.Revision != 2 || r2.Changes == nil || r2.Changes.PreviousRevision != 1 ||
		len(r2.Changes.PostingsAdded) != 1 || r2.Changes.PostingsAdded[0].ActionID != "act_g" || len(r2.Changes.PostingsRemoved) != 0 {
		t.Fatalf("revision 2: %v %+v", err, r2.Changes)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 8 {
		t.Fatalf("%d files, want 8 (two revisions of json, csv, xlsx, totals.csv)", len(entries))
	}
	if filepath.Base(p2[3]) != "2026-11-25.r2.totals.csv" {
		t.Fatalf("revision 2's totals: %v", p2)
	}
	if p, _ := report.WriteFiles(dir, later); filepath.Base(p[0]) != "2026-11-25.r2.json" {
		t.Fatalf("the same revision written again: %v", p)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden holds the CSV, the totals and the JSON of the day's report to files a person has read: a change
// of format shows in review (go test ./internal/report -run Golden -update rewrites them).
func TestGolden(t *testing.T) {
	l := ledgerOfTheDay(t)
	d, err := report.Build(context.Background(), l, "2026-11-25", kuwait, at(26, 0, 15))
	if err != nil {
		t.Fatal(err)
	}
	d.Revision = 1
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{{"daily.csv", d.WriteCSV}, {"daily.totals.csv", d.WriteTotalsCSV}, {"daily.json", d.WriteJSON}} {
		var got bytes.Buffer
		if err := f.write(&got); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "golden", f.name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s differs from the golden file:\n%s", f.name, got.String())
		}
	}
}

// TestRange: the report of several days holds the money of its daily reports and one row per
// payment, with its refund kind.
func TestRange(t *testing.T) {
	l := ledgerOfTheDay(t)
	ctx := context.Background()
	r, err := report.BuildRange(ctx, l, "2026-11-24", "2026-11-26", kuwait, at(27, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	sum := map[string]int64{}
	for _, day := range []string{"2026-11-24", "2026-11-25", "2026-11-26"} {
		d, err := report.Build(ctx, l, day, kuwait, at(27, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		for _, tot := range d.Totals {
			sum[tot.Currency] += tot.Net
		}
	}
	got := map[string]int64{}
	for _, tot := range r.Totals {
		got[tot.Currency] = tot.Net
	}
	if !reflect.DeepEqual(got, sum) {
		t.Fatalf("range net %v, the days' %v", got, sum)
	}
	rows := map[string]store.PaymentRow{}
	for _, p := range r.Payments {
		rows[p.ID] = p
	}
	if len(rows) != 6 || rows["pay_b"].RefundKind != "partial" || rows["pay_b"].Refunded != 500 || rows["pay_a"].RefundKind != "" ||
		rows["pay_a"].Settlement != "not yet" || rows["pay_e"].Settlement != "" {
		t.Fatalf("rows %+v", r.Payments)
	}
	var csvOut bytes.Buffer
	if err := r.WriteCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(csvOut.Bytes(), []byte("\ufeff")))).ReadAll()
	if err != nil || len(recs) != 1+6 || !reflect.DeepEqual(recs[0], report.RangeHeader) {
		t.Fatalf("csv: %v %d rows", err, len(recs))
	}
	dir := t.TempDir()
	paths, err := report.WriteRangeFiles(dir, r)
	if err != nil || len(paths) != 4 || filepath.Base(paths[3]) != "range-2026-11-24_2026-11-26.totals.csv" {
		t.Fatalf("%v %v", paths, err)
	}
	x, err := excelize.OpenFile(paths[2])
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if rws, _ := x.GetRows("Payments"); len(rws) != 7 {
		t.Fatalf("workbook payments rows %d", len(rws))
	}
	if _, err := report.BuildRange(ctx, l, "2026-11-26", "2026-11-24", kuwait, at(27, 0, 0)); err == nil {
		t.Fatal("a range ending before it starts was accepted")
	}
}
