package settle_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/settle"
	"knetrecon/internal/store"
)

// mustOpenLedger opens a ledger in the test's temp dir, closed when the test ends.
func mustOpenLedger(tb testing.TB) *store.Ledger {
	tb.Helper()
	l, err := store.Open(context.Background(), filepath.Join(tb.TempDir(), "ledger.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	return l
}

// capture is one KNET capture the ledger is given.
type capture struct {
	pay    string
	amount int64
	at     time.Time
	ref    string
	knet   *store.KNETIDs
}

// mustCapture applies a payment_captured webhook for each capture.
func mustCapture(tb testing.TB, l *store.Ledger, cs ...capture) {
	tb.Helper()
	for _, c := range cs {
		in := store.Input{EventID: "evt_" + c.pay, Type: payment.EventCaptured, Origin: store.OriginWebhook, PaymentID: c.pay,
			ActionID: "act_" + c.pay, Amount: c.amount, Currency: "KWD", Reference: c.ref, Method: "knet",
			OccurredAt: c.at, ReceivedAt: c.at.Add(time.Second), Body: []byte(`{"id":"evt_` + c.pay + `"}`), KNET: c.knet}
		if _, err := l.Apply(context.Background(), in); err != nil {
			tb.Fatalf("capture %s: %v", c.pay, err)
		}
	}
}

// mustSettle applies statement to l as `reconciler settle` does, on the clock now, with
// not_settled after a day.
func mustSettle(tb testing.TB, l *store.Ledger, file, statement string, now time.Time) *settle.Report {
	tb.Helper()
	var rep *settle.Report
	err := l.Update(context.Background(), func(tx *store.Tx) error {
		var err error
		rep, err = settle.Apply(context.Background(), tx, []byte(statement), settle.Options{File: file, Mapping: settle.DefaultMapping(),
			Location: kuwait, NotSettledAfter: 24 * time.Hour, Now: func() time.Time { return now }})
		return err
	})
	if err != nil {
		tb.Fatalf("settle %s: %v", file, err)
	}
	return rep
}

// openNotSettled returns the payments with an open not_settled discrepancy, sorted.
func openNotSettled(tb testing.TB, l *store.Ledger) []string {
	tb.Helper()
	ds, err := l.Discrepancies(context.Background(), store.DiscrepancyFilter{Kind: payment.KindNotSettled})
	if err != nil {
		tb.Fatal(err)
	}
	out := []string{}
	for _, d := range ds {
		out = append(out, d.PaymentID)
	}
	sort.Strings(out)
	return out
}

// canon renders a report so that two statements holding the same lines in another order compare
// equal: each item names its line by the line's text, not by its number in the file.
func canon(rep *settle.Report, statement string) string {
	text := strings.Split(strings.TrimSpace(statement), "\n")
	items := func(name string, its []settle.Item) []string {
		out := []string{}
		for _, it := range its {
			line := ""
			if it.Line > 0 {
				line = text[it.Line-1]
			}
			amount := func(p *int64) string {
				if p == nil {
					return "-"
				}
				return fmt.Sprint(*p)
			}
			out = append(out, fmt.Sprintf("%s %s %s %s ledger=%s statement=%s line=%q by=%s reason=%q", name, it.PaymentID, it.ActionID,
				it.Kind, amount(it.LedgerAmount), amount(it.StatementAmount), line, it.By, it.Reason))
		}
		sort.Strings(out)
		return out
	}
	var b strings.Builder
	fmt.Fprintf(&b, "matched %d, not_settled %d, from %s to %s\n", rep.Matched, rep.NotSettled, rep.From, rep.To)
	for _, s := range [][]string{items("match", rep.Matches), items("ledger_only", rep.LedgerOnly),
		items("statement_only", rep.StatementOnly), items("amount_mismatch", rep.AmountMismatch)} {
		b.WriteString(strings.Join(s, "\n") + "\n")
	}
	return b.String()
}

// TestApplyIgnoresLineOrder: the same statement with its lines in another order gives the same
// report. Two payments share the merchant's reference ORD-1 and amount; the bank names the first
// by its KNET transaction id, the second by the reference only. Whatever the order, the strong
// key takes the first, and the reference line the one left.
func TestApplyIgnoresLineOrder(t *testing.T) {
	day := time.Date(2026, 12, 1, 10, 0, 0, 0, kuwait)
	captures := []capture{
		{pay: "pay_1", amount: 5000, at: day, ref: "ORD-1", knet: &store.KNETIDs{TransactionID: "201", PaymentID: "101", BankReference: "B201"}},
		{pay: "pay_2", amount: 5000, at: day.Add(time.Hour), ref: "ORD-1"}, // its KNET ids not learned yet
		{pay: "pay_3", amount: 2500, at: day.Add(2 * time.Hour), ref: "ORD-3", knet: &store.KNETIDs{TransactionID: "203", BankReference: "B203"}},
		{pay: "pay_4", amount: 1000, at: day.Add(3 * time.Hour), ref: "ORD-4", knet: &store.KNETIDs{TransactionID: "204"}},
	}
	header := "knet_transaction_id,knet_payment_id,bank_reference,reference,amount,date,kind"
	lines := []string{
		"201,,,ORD-1,5.000,2026-12-01,capture",  // pay_1 by its transaction id
		",,,ORD-1,5.000,2026-12-01,capture",     // pay_2 by reference + amount + date
		",,B203,ORD-3,2.510,2026-12-01,capture", // pay_3 by bank reference, another amount
		"999,,,ORD-9,1.000,2026-12-01,capture",  // nobody's
	}
	reversed := make([]string, len(lines))
	for i, l := range lines {
		reversed[len(lines)-1-i] = l
	}
	now := day.AddDate(0, 0, 10)
	var got []string
	for _, order := range [][]string{lines, reversed} {
		l := mustOpenLedger(t)
		mustCapture(t, l, captures...)
		statement := header + "\n" + strings.Join(order, "\n") + "\n"
		rep := mustSettle(t, l, "knet-2026-12-01.csv", statement, now)
		if rep.Matched != 2 || len(rep.AmountMismatch) != 1 || len(rep.StatementOnly) != 1 || len(rep.LedgerOnly) != 1 ||
			rep.LedgerOnly[0].PaymentID != "pay_4" || rep.AmountMismatch[0].PaymentID != "pay_3" {
			t.Errorf("lines %q:\n%s", order, canon(rep, statement))
		}
		got = append(got, canon(rep, statement))
	}
	if got[0] != got[1] {
		t.Errorf("the order of the lines changed the report:\n%s\n---\n%s", got[0], got[1])
	}
}

// TestApplyNextDayPosting: a capture at 23:59:59 in Kuwait that the bank posts the next day is
// matched on the next day's statement by each of KNET's keys, and the statement of its own day
// does not call it missing once a statement paid it, or when KNET's post_date names the next day.
func TestApplyNextDayPosting(t *testing.T) {
	late := time.Date(2026, 12, 1, 23, 59, 59, 0, kuwait)
	ids := store.KNETIDs{TransactionID: "2750", PaymentID: "1750", BankReference: "B750"}
	keys := []struct {
		name, column, value string
	}{
		{"transaction id", settle.ColTransactionID, ids.TransactionID},
		{"payment id", settle.ColPaymentID, ids.PaymentID},
		{"bank reference", settle.ColBankReference, ids.BankReference},
	}
	ownDay := "knet_transaction_id,amount,date\n2001,1.000,2026-12-01\n"
	now := late.AddDate(0, 0, 10)
	for _, k := range keys {
		nextDay := "knet_transaction_id,knet_payment_id,bank_reference,amount,date\n2002,,,2.000,2026-12-02\n"
		switch k.column {
		case settle.ColTransactionID:
			nextDay += k.value + ",,,3.500,2026-12-02\n"
		case settle.ColPaymentID:
			nextDay += "," + k.value + ",,3.500,2026-12-02\n"
		case settle.ColBankReference:
			nextDay += ",," + k.value + ",3.500,2026-12-02\n"
		}
		tests := []struct {
			name     string
			postDate string
			// nextFirst applies the next day's statement before the own day's.
			nextFirst bool
			// wantOwnDayMissing: the own day's statement lists the late capture as ledger_only.
			wantOwnDayMissing bool
		}{
			{name: "next day's statement first", nextFirst: true},
			{name: "own day's statement first", wantOwnDayMissing: true},
			{name: "own day's statement first, KNET post date the next day", postDate: "1202"},
			{name: "next day's statement first, KNET post date the next day", postDate: "1202", nextFirst: true},
		}
		for _, tt := range tests {
			t.Run(k.name+"/"+tt.name, func(t *testing.T) {
				l := mustOpenLedger(t)
				knet := ids
				knet.PostDate = tt.postDate
				mustCapture(t, l,
					capture{pay: "pay_early", amount: 1000, at: time.Date(2026, 12, 1, 10, 0, 0, 0, kuwait), ref: "ORD-E", knet: &store.KNETIDs{TransactionID: "2001"}},
					capture{pay: "pay_late", amount: 3500, at: late, ref: "ORD-L", knet: &knet},
					capture{pay: "pay_next", amount: 2000, at: time.Date(2026, 12, 2, 9, 0, 0, 0, kuwait), ref: "ORD-N", knet: &store.KNETIDs{TransactionID: "2002"}},
				)
				checkNext := func() {
					t.Helper()
					rep := mustSettle(t, l, "knet-2026-12-02.csv", nextDay, now)
					if rep.Matched != 2 || len(rep.StatementOnly) != 0 || len(rep.LedgerOnly) != 0 || len(rep.AmountMismatch) != 0 {
						t.Fatalf("next day's statement:\n%s", canon(rep, nextDay))
					}
					for _, m := range rep.Matches {
						if m.PaymentID == "pay_late" && m.By != k.column {
							t.Errorf("pay_late matched by %q, want %q", m.By, k.column)
						}
					}
				}
				checkOwn := func() {
					t.Helper()
					rep := mustSettle(t, l, "knet-2026-12-01.csv", ownDay, now)
					missing := len(rep.LedgerOnly) == 1 && rep.LedgerOnly[0].PaymentID == "pay_late"
					if rep.Matched != 1 || len(rep.StatementOnly) != 0 || missing != tt.wantOwnDayMissing ||
						len(rep.LedgerOnly) > 1 || (!missing && len(rep.LedgerOnly) != 0) {
						t.Fatalf("own day's statement (ledger_only of pay_late wanted: %t):\n%s", tt.wantOwnDayMissing, canon(rep, ownDay))
					}
					if ns := openNotSettled(t, l); tt.wantOwnDayMissing != reflect.DeepEqual(ns, []string{"pay_late"}) || (!tt.wantOwnDayMissing && len(ns) != 0) {
						t.Fatalf("after the own day's statement, not_settled open for %v", ns)
					}
				}
				if tt.nextFirst {
					checkNext()
					checkOwn()
				} else {
					checkOwn()
					checkNext()
				}
				if ns := openNotSettled(t, l); len(ns) != 0 {
					t.Errorf("not_settled still open for %v: the next day's statement paid it", ns)
				}
			})
		}
	}
}

// TestApplyStrongKeyBounds: a strong key reaches back a few days, no further, and a line it
// fits to two ledger entries is reported, never guessed.
func TestApplyStrongKeyBounds(t *testing.T) {
	now := time.Date(2026, 12, 20, 0, 0, 0, 0, kuwait)
	t.Run("two payments with one transaction id, a day apart", func(t *testing.T) {
		l := mustOpenLedger(t)
		mustCapture(t, l,
			capture{pay: "pay_a", amount: 1000, at: time.Date(2026, 11, 30, 23, 0, 0, 0, kuwait), knet: &store.KNETIDs{TransactionID: "777"}},
			capture{pay: "pay_b", amount: 1000, at: time.Date(2026, 12, 1, 12, 0, 0, 0, kuwait), knet: &store.KNETIDs{TransactionID: "777"}})
		statement := "knet_transaction_id,amount,date\n777,1.000,2026-12-01\n"
		rep := mustSettle(t, l, "knet-2026-12-01.csv", statement, now)
		if rep.Matched != 0 || len(rep.StatementOnly) != 1 || !strings.Contains(rep.StatementOnly[0].Reason, "not guessed") ||
			len(rep.LedgerOnly) != 1 || rep.LedgerOnly[0].PaymentID != "pay_b" {
			t.Errorf("a line fitting two payments:\n%s", canon(rep, statement))
		}
	})
	t.Run("two payments with one bank reference, one day", func(t *testing.T) {
		l := mustOpenLedger(t)
		day := time.Date(2026, 12, 1, 12, 0, 0, 0, kuwait)
		mustCapture(t, l,
			capture{pay: "pay_a", amount: 1000, at: day, knet: &store.KNETIDs{BankReference: "B9"}},
			capture{pay: "pay_b", amount: 1000, at: day.Add(time.Minute), knet: &store.KNETIDs{BankReference: "B9"}})
		statement := "bank_reference,amount,date\nB9,1.000,2026-12-01\n"
		rep := mustSettle(t, l, "knet-2026-12-01.csv", statement, now)
		if rep.Matched != 0 || len(rep.StatementOnly) != 1 || !strings.Contains(rep.StatementOnly[0].Reason, "not guessed") || len(rep.LedgerOnly) != 2 {
			t.Errorf("a line fitting two payments:\n%s", canon(rep, statement))
		}
	})
	t.Run("posted too long after", func(t *testing.T) {
		l := mustOpenLedger(t)
		mustCapture(t, l, capture{pay: "pay_old", amount: 1000, at: time.Date(2026, 11, 26, 12, 0, 0, 0, kuwait), knet: &store.KNETIDs{TransactionID: "555"}})
		statement := "knet_transaction_id,amount,date\n555,1.000,2026-12-01\n"
		rep := mustSettle(t, l, "knet-2026-12-01.csv", statement, now)
		if rep.Matched != 0 || len(rep.StatementOnly) != 1 || len(rep.LedgerOnly) != 0 {
			t.Errorf("a capture five days before the line:\n%s", canon(rep, statement))
		}
	})
	t.Run("paid twice, on two days", func(t *testing.T) {
		l := mustOpenLedger(t)
		mustCapture(t, l, capture{pay: "pay_x", amount: 1000, at: time.Date(2026, 12, 1, 12, 0, 0, 0, kuwait), knet: &store.KNETIDs{TransactionID: "888"}})
		first := "knet_transaction_id,amount,date\n888,1.000,2026-12-01\n"
		if rep := mustSettle(t, l, "knet-2026-12-01.csv", first, now); rep.Matched != 1 {
			t.Fatalf("own day:\n%s", canon(rep, first))
		}
		second := "knet_transaction_id,amount,date\n888,1.000,2026-12-02\n"
		rep := mustSettle(t, l, "knet-2026-12-02.csv", second, now)
		if rep.Matched != 0 || len(rep.StatementOnly) != 1 || !strings.Contains(rep.StatementOnly[0].Reason, "knet-2026-12-01.csv") {
			t.Errorf("the bank's second line for one capture:\n%s", canon(rep, second))
		}
	})
}
