package settle_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/settle"
	"knetrecon/internal/statement"
	"knetrecon/internal/store"
)

// TestApplyBankStatement: the sample bank's statement, as its CSV (a byte-order mark before quoted
// fields, title rows above the header, a blank row and a Total row below the table) and as its
// xlsx (sheet Settlement, Excel dates, numbers), is read with the bank's layout and matches the
// ledger line for line; the blank and total rows are listed as skipped, never as differences.
func TestApplyBankStatement(t *testing.T) {
	layout, err := statement.ParseLayout([]byte("sheet = Settlement\ndate_format = dd/mm/yyyy\n\n[columns]\n" +
		"date = Transaction Date\namount = Amount\nreference = Track ID\nbank_reference = Reference No\nauth_code = Auth Code\n"))
	if err != nil {
		t.Fatal(err)
	}
	mapping, err := settle.DefaultMapping().With(layout.Columns)
	if err != nil {
		t.Fatal(err)
	}
	amounts := []int64{89_890, 23_988, 20_204, 118_677, 149_453, 37_453, 21_216, 62_955, 10_000, 85_866, 157_462, 30_540}
	day := time.Date(2026, 12, 3, 10, 0, 0, 0, kuwait)
	for _, file := range []string{"knet-statement-example.csv", "knet-statement-example.xlsx"} {
		t.Run(file, func(t *testing.T) {
			raw, err := os.ReadFile("../statement/testdata/" + file)
			if err != nil {
				t.Fatal(err)
			}
			l := mustOpenLedger(t)
			for i, a := range amounts {
				at := day.Add(time.Duration(i) * time.Minute)
				if i == 8 {
					at = day.AddDate(0, 0, -3) // ORD-0009 was captured days before: the statement shows its refund
				}
				mustCapture(t, l, capture{pay: fmt.Sprintf("pay_%d", i+1), amount: a, at: at, ref: fmt.Sprintf("ORD-%04d", i+1)})
			}
			refundAt := day.Add(time.Hour)
			if _, err := l.Apply(context.Background(), store.Input{EventID: "evt_refund_9", Type: payment.EventRefunded, Origin: store.OriginWebhook,
				PaymentID: "pay_9", ActionID: "act_refund_9", Amount: 2_716, Currency: "KWD", Reference: "ORD-0009", Method: "knet",
				OccurredAt: refundAt, ReceivedAt: refundAt, Body: []byte(`{"id":"evt_refund_9"}`)}); err != nil {
				t.Fatal(err)
			}
			var rep *settle.Report
			err = l.Update(context.Background(), func(tx *store.Tx) error {
				var err error
				rep, err = settle.Apply(context.Background(), tx, raw, settle.Options{File: file, Mapping: mapping, Layout: layout,
					Location: kuwait, NotSettledAfter: 24 * time.Hour, Now: func() time.Time { return day.AddDate(0, 0, 7) }})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Matched != 12 || len(rep.LedgerOnly)+len(rep.StatementOnly)+len(rep.AmountMismatch)+rep.NotSettled != 0 {
				t.Fatalf("%+v", rep)
			}
			want := fmt.Sprint([]statement.Skip{{Line: 17, Reason: "blank row"}, {Line: 18, Reason: `a total row ("Total")`}})
			if fmt.Sprint(rep.Skipped) != want || rep.Format == "" {
				t.Fatalf("skipped %+v (%s), want %s", rep.Skipped, rep.Format, want)
			}
		})
	}
}

// TestApplyTitleAndTotalRows: the statements of issue 19 that failed whole: title rows above the
// header, a total row below the table (its label in the key column or in the date column), a
// byte-order mark before a quoted header. Each matches its line; the rows that are not lines are
// listed, never matched, never a difference.
func TestApplyTitleAndTotalRows(t *testing.T) {
	day := time.Date(2026, 12, 3, 10, 0, 0, 0, kuwait)
	tests := []struct {
		name, give string
		skipped    string
	}{
		{"title rows", "Example Bank - KNET settlement\nMerchant 100200300\n\nreference,amount,date\nORD-1,89.890,2026-12-03\n", "[]"},
		{"total in the key column", "reference,amount,date\nORD-1,89.890,2026-12-03\n\nTotal,89.890,\n",
			`[{3 blank row false} {4 a total row ("Total") false}]`},
		{"total in the date column", "date,reference,amount\n03/12/2026,ORD-1,89.890\nTotal,,89.890\n", `[{3 a total row ("Total") false}]`},
		{"byte-order mark before a quoted header", "\ufeff\"reference\",\"amount\",\"date\"\r\n\"ORD-1\",\"89.890\",\"2026-12-03\"\r\n", "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustOpenLedger(t)
			mustCapture(t, l, capture{pay: "pay_1", amount: 89_890, at: day, ref: "ORD-1"})
			rep := mustSettle(t, l, "knet.csv", tt.give, day.AddDate(0, 0, 7))
			if rep.Matched != 1 || len(rep.LedgerOnly)+len(rep.StatementOnly)+len(rep.AmountMismatch) != 0 || fmt.Sprint(rep.Skipped) != tt.skipped {
				t.Fatalf("%+v, skipped %v, want %s", rep.Result, rep.Skipped, tt.skipped)
			}
		})
	}
}
