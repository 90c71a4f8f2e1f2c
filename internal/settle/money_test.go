package settle_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"knetrecon/internal/payment"
	"knetrecon/internal/settle"
	"knetrecon/internal/statement"
	"knetrecon/internal/store"
)

// TestReadFeeAndNet: the bank's commission and net, in the three ways a bank lays them out.
// Matching is on the gross; a line whose amount less fee is not its net is listed; the totals
// are signed (a refund is negative).
func TestReadFeeAndNet(t *testing.T) {
	for _, tc := range []struct {
		name, csv string
		cols      map[string]string
		gross     []int64
		nets      []int64
		mismatch  []int
	}{
		{name: "amount, fee and net", csv: "reference,Gross,Commission,Net\nA,5.000,0.100,4.900\nB,-2.000,0.000,-2.000\nC,3.000,0.050,2.900\n",
			cols: map[string]string{"amount": "Gross", "fee": "Commission", "net": "Net"}, gross: []int64{5000, 2000, 3000},
			nets: []int64{4900, -2000, 2900}, mismatch: []int{4}},
		{name: "net and fee only", csv: "reference,Net Amount,Fee\nA,4.900,0.100\nB,-2.000,0\n",
			cols: map[string]string{"net": "Net Amount", "fee": "Fee"}, gross: []int64{5000, 2000}, nets: []int64{4900, -2000}},
		{name: "gross only", csv: "reference,amount\nA,5.000\n", gross: []int64{5000}, nets: []int64{5000}},
		{name: "positive amounts and a kind column", csv: "reference,amount,fee,net,kind\nA,5.000,0.100,4.900,Sale\nB,2.000,0,2.000,Refund\n",
			gross: []int64{5000, 2000}, nets: []int64{4900, -2000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := settle.Read([]byte(tc.csv), statement.Layout{Columns: tc.cols}, kuwait)
			if err != nil {
				t.Fatal(err)
			}
			var gross, net, fee int64
			for i, l := range st.Lines {
				if l.Amount != tc.gross[i] || l.Net != tc.nets[i] {
					t.Errorf("line %d: gross %d net %d, want %d and %d", l.Number, l.Amount, l.Net, tc.gross[i], tc.nets[i])
				}
				gross, net, fee = gross+l.Signed(), net+l.Net, fee+l.Fee
			}
			if got := st.Totals(); got != (settle.Totals{Gross: gross, Fee: fee, Net: net}) || got.Gross-got.Fee != got.Net && len(tc.mismatch) == 0 {
				t.Errorf("totals %+v", got)
			}
			var lines []int
			for _, m := range st.NetMismatch {
				lines = append(lines, m.Line)
			}
			if len(lines) != len(tc.mismatch) || len(lines) > 0 && lines[0] != tc.mismatch[0] {
				t.Errorf("net mismatches on lines %v, want %v", lines, tc.mismatch)
			}
		})
	}
	if _, err := settle.Read([]byte("reference,net\nA,4.900\n"), statement.Layout{}, kuwait); err == nil || !strings.Contains(err.Error(), "fee") {
		t.Errorf("a net without fee or amount: %v, want an error naming fee", err)
	}
}

// TestCommissionIsNoDifference: a statement of net and fee (what the bank pays) matches every
// capture on the gross; it opens nothing, and the ledger keeps each posting's fee and net.
func TestCommissionIsNoDifference(t *testing.T) {
	l := mustOpenLedger(t)
	day := time.Date(2026, 12, 1, 10, 0, 0, 0, kuwait)
	mustCapture(t, l, capture{pay: "pay_1", amount: 5000, at: day, ref: "ORD-1", knet: &store.KNETIDs{TransactionID: "201"}},
		capture{pay: "pay_2", amount: 12250, at: day.Add(time.Hour), ref: "ORD-2", knet: &store.KNETIDs{TransactionID: "202"}})
	csv := "knet_transaction_id,Net Amount,Commission,date\n201,4.900,0.100,2026-12-01\n202,12.150,0.100,2026-12-01\n"
	rep := applyWith(t, l, "knet-1201.csv", csv, map[string]string{"net": "Net Amount", "fee": "Commission"}, day.AddDate(0, 0, 5))
	if rep.Matched != 2 || len(rep.AmountMismatch)+len(rep.LedgerOnly)+len(rep.StatementOnly) != 0 {
		t.Fatalf("report %+v", rep.Result)
	}
	if rep.Totals != (settle.Totals{Gross: 17250, Fee: 200, Net: 17050}) {
		t.Errorf("totals %+v", rep.Totals)
	}
	if n := openCount(t, l, ""); n != 0 {
		t.Errorf("%d discrepancies open, want none: commission is never a difference", n)
	}
	d, err := l.Payment(context.Background(), "pay_2")
	if err != nil {
		t.Fatal(err)
	}
	sb := d.Postings[0].Settlement
	if sb == nil || sb.Fee == nil || *sb.Fee != 100 || sb.Net == nil || *sb.Net != 12150 || sb.Gross != 12250 || !sb.Paid {
		t.Errorf("pay_2's posting as settled: %+v", sb)
	}
}

// TestCorrectedStatementSupersedes: the bank's first statement has another amount for pay_1
// (amount_mismatch, the payment not settled); its corrected copy settles it, and the
// discrepancy resolves itself naming the line; importing the copy again changes nothing.
func TestCorrectedStatementSupersedes(t *testing.T) {
	l := mustOpenLedger(t)
	ctx := context.Background()
	day := time.Date(2026, 12, 1, 10, 0, 0, 0, kuwait)
	mustCapture(t, l, capture{pay: "pay_1", amount: 5000, at: day, ref: "ORD-1", knet: &store.KNETIDs{TransactionID: "201"}})
	now := day.AddDate(0, 0, 5)
	first := applyWith(t, l, "knet-1201.csv", "knet_transaction_id,amount,date\n201,5.010,2026-12-01\n", nil, now)
	if len(first.AmountMismatch) != 1 || openCount(t, l, payment.KindAmountMismatch) != 1 {
		t.Fatalf("first statement: %+v", first.Result)
	}
	rows, err := l.PaymentRows(ctx, day.AddDate(0, 0, -1), day.AddDate(0, 0, 1))
	if err != nil || len(rows) != 1 || rows[0].Settlement != "not yet" {
		t.Fatalf("after a line of another amount the payment says %+v (%v), want not yet", rows, err)
	}
	fixed := "knet_transaction_id,amount,date\n201,5.000,2026-12-01\n\n"
	second := applyWith(t, l, "knet-1201-corrected.csv", fixed, nil, now.Add(time.Hour))
	if second.Matched != 1 || len(second.AmountMismatch) != 0 {
		t.Fatalf("corrected statement: %+v", second.Result)
	}
	if n := openCount(t, l, payment.KindAmountMismatch); n != 0 {
		t.Errorf("%d amount_mismatch open after the correction", n)
	}
	all, err := l.Discrepancies(ctx, store.DiscrepancyFilter{All: true})
	if err != nil || len(all) != 1 || all[0].Resolution != "settled by knet-1201-corrected.csv line 2" {
		t.Errorf("the mismatch resolved as %+v (%v)", all, err)
	}
	if rows, _ = l.PaymentRows(ctx, day.AddDate(0, 0, -1), day.AddDate(0, 0, 1)); rows[0].Settlement != "settled" {
		t.Errorf("after the correction the payment says %q", rows[0].Settlement)
	}
	before, _ := l.Digest(ctx)
	again := applyWith(t, l, "knet-1201-corrected.csv", fixed, nil, now.Add(2*time.Hour))
	after, _ := l.Digest(ctx)
	if !again.Again || before.SHA256 != after.SHA256 {
		t.Errorf("re-import: again=%v, digest changed %v", again.Again, before.SHA256 != after.SHA256)
	}
}

// TestDepositsThirdLeg: two days of statements with commission; the account statement has day
// one's net, day two's short, and a credit nobody expects; day three's credit is not due yet.
// A later account statement with day two's money resolves what the first opened.
func TestDepositsThirdLeg(t *testing.T) {
	l := mustOpenLedger(t)
	d1 := time.Date(2026, 12, 1, 10, 0, 0, 0, kuwait)
	mustCapture(t, l, capture{pay: "pay_1", amount: 5000, at: d1, knet: &store.KNETIDs{TransactionID: "201"}},
		capture{pay: "pay_2", amount: 3000, at: d1.Add(time.Hour), knet: &store.KNETIDs{TransactionID: "202"}},
		capture{pay: "pay_3", amount: 7000, at: d1.AddDate(0, 0, 1), knet: &store.KNETIDs{TransactionID: "203"}},
		capture{pay: "pay_4", amount: 1000, at: d1.AddDate(0, 0, 4), knet: &store.KNETIDs{TransactionID: "204"}})
	cols := map[string]string{"fee": "fee", "net": "net"}
	now := d1.AddDate(0, 0, 6)
	applyWith(t, l, "s1.csv", "knet_transaction_id,amount,fee,net,date\n201,5.000,0.100,4.900,2026-12-01\n202,3.000,0.100,2.900,2026-12-01\n", cols, now)
	applyWith(t, l, "s2.csv", "knet_transaction_id,amount,fee,net,date\n203,7.000,0.100,6.900,2026-12-02\n", cols, now)
	applyWith(t, l, "s5.csv", "knet_transaction_id,amount,fee,net,date\n204,1.000,0.100,0.900,2026-12-05\n", cols, now)

	acct := "Account statement,,,\nAccount 0123456789,,,\nValue Date,Description,Debit,Credit\n" +
		"2026-12-02,KNET SETTLEMENT 1201,,7.800\n" + // day one: 4.900 + 2.900
		"2026-12-03,KNET SETTLEMENT 1202,,6.800\n" + // day two: 6.900 expected, 0.100 short
		"2026-12-03,SALARY REVERSAL,,1.234\n" + // nobody's
		"2026-12-04,BANK CHARGES,0.500,\n" + // a debit: not a deposit
		"2026-12-06,CARD FEES,0.200,\n" +
		",Closing balance,,15.834\n"
	layout := statement.Layout{Columns: map[string]string{"date": "Value Date", "reference": "Description", "credit": "Credit", "debit": "Debit"}}
	rep := depositsWith(t, l, "acct-1.csv", acct, layout, now)
	if len(rep.Matched) != 1 || rep.Matched[0].PostingDate != "2026-12-01" || *rep.Matched[0].Received != 7800 {
		t.Errorf("matched %+v", rep.Matched)
	}
	if len(rep.AmountMismatch) != 1 || rep.AmountMismatch[0].PostingDate != "2026-12-02" || *rep.AmountMismatch[0].Expected != 6900 {
		t.Errorf("amount_mismatch %+v", rep.AmountMismatch)
	}
	if len(rep.Unexpected) != 1 || *rep.Unexpected[0].Received != 1234 || rep.Unexpected[0].Line != 6 {
		t.Errorf("unexpected %+v", rep.Unexpected)
	}
	if len(rep.Waiting) != 1 || rep.Waiting[0].PostingDate != "2026-12-05" {
		t.Errorf("waiting %+v", rep.Waiting)
	}
	if !rep.Differs() || openCount(t, l, payment.KindDepositAmountMismatch) != 1 {
		t.Errorf("differs %v, deposit_amount_mismatch open %d", rep.Differs(), openCount(t, l, payment.KindDepositAmountMismatch))
	}
	// The next account statement: day two's money in full (the bank made good), day five's
	// missing past its three days.
	acct2 := "Value Date,Description,Debit,Credit\n2026-12-04,KNET SETTLEMENT 1202,,6.900\n2026-12-09,OTHER,,0.001\n"
	rep2 := depositsWith(t, l, "acct-2.csv", acct2, layout, now.AddDate(0, 0, 4))
	if len(rep2.Matched) != 1 || rep2.Matched[0].PostingDate != "2026-12-02" {
		t.Errorf("second: matched %+v", rep2.Matched)
	}
	if len(rep2.Missing) != 1 || rep2.Missing[0].PostingDate != "2026-12-05" || openCount(t, l, payment.KindDepositMissing) != 1 {
		t.Errorf("second: missing %+v", rep2.Missing)
	}
	if n := openCount(t, l, payment.KindDepositAmountMismatch); n != 0 {
		t.Errorf("deposit_amount_mismatch still open after the money arrived: %d", n)
	}
	// The same file again changes nothing.
	before, _ := l.Digest(context.Background())
	if again := depositsWith(t, l, "acct-2.csv", acct2, layout, now.AddDate(0, 0, 5)); !again.Again {
		t.Error("the same account statement applied twice")
	}
	if after, _ := l.Digest(context.Background()); after.SHA256 != before.SHA256 {
		t.Error("the ledger changed on the second import")
	}
}

// TestUnseenBankLayoutXLSX is issue 19's "done when": a bank's layout no test was written
// for, as xlsx with title rows, Excel dates and numbers, commission, net and a grand-total row,
// read with a --columns mapping. Commission opens nothing; the deposit of its net is matched.
func TestUnseenBankLayoutXLSX(t *testing.T) {
	l := mustOpenLedger(t)
	d1 := time.Date(2026, 12, 3, 9, 0, 0, 0, kuwait)
	mustCapture(t, l, capture{pay: "pay_a", amount: 15750, at: d1, knet: &store.KNETIDs{PaymentID: "100200300"}},
		capture{pay: "pay_b", amount: 2000, at: d1.Add(2 * time.Hour), knet: &store.KNETIDs{PaymentID: "100200301"}})
	f := excelize.NewFile()
	sh := "Merchant Settlement"
	_ = f.SetSheetName("Sheet1", sh)
	dateStyle, _ := f.NewStyle(&excelize.Style{NumFmt: 14})
	rows := [][]any{
		{"Gulf Acquiring Bank K.S.C."}, {"KNET Merchant Settlement Report"}, {"Merchant: ACME KW", nil, "Period: 03/12/2026"}, {},
		{"Txn Date", "KNET Pay ID", "Card", "Txn Amount (KWD)", "Merchant Commission", "Net Settled"},
		{excelDate(d1), "100200300", "4xxx", 15.75, 0.158, 15.592},
		{excelDate(d1), "100200301", "4xxx", 2, 0.02, 1.98},
		{"Grand Total", nil, nil, 17.75, 0.178, 17.572},
	}
	for i, r := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow(sh, cell, &r); err != nil {
			t.Fatal(err)
		}
	}
	_ = f.SetCellStyle(sh, "A6", "A7", dateStyle)
	buf, err := f.WriteToBuffer()
	if err != nil {
		t.Fatal(err)
	}
	cols, err := statement.ParseColumns("date=Txn Date,knet_payment_id=KNET Pay ID,amount=Txn Amount (KWD),fee=Merchant Commission,net=Net Settled")
	if err != nil {
		t.Fatal(err)
	}
	rep := applyWith(t, l, "gab-20261203.xlsx", buf.String(), cols, d1.AddDate(0, 0, 5))
	if rep.Matched != 2 || len(rep.AmountMismatch)+len(rep.StatementOnly)+len(rep.LedgerOnly)+len(rep.NetMismatch) != 0 {
		t.Fatalf("report %+v, net mismatches %+v", rep.Result, rep.NetMismatch)
	}
	if rep.Totals != (settle.Totals{Gross: 17750, Fee: 178, Net: 17572}) || len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0].Reason, "total") {
		t.Errorf("totals %+v, skipped %+v", rep.Totals, rep.Skipped)
	}
	if n := openCount(t, l, ""); n != 0 {
		t.Errorf("%d discrepancies open: commission opened something", n)
	}
	acct := "Date;Narrative;Amount\n05/12/2026;KNET STLMT 03DEC;17,572\n"
	dep := depositsWith(t, l, "acct.csv", acct, statement.Layout{Columns: map[string]string{"reference": "Narrative"}, Decimal: ","}, d1.AddDate(0, 0, 5))
	if len(dep.Matched) != 1 || dep.Differs() {
		t.Errorf("deposits %+v", dep)
	}
}

// excelDate is t as an Excel serial date (days since 1899-12-30).
func excelDate(t time.Time) float64 {
	y, m, d := t.Date()
	return float64(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Sub(time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)).Hours() / 24)
}

func applyWith(tb testing.TB, l *store.Ledger, file, statementText string, cols map[string]string, now time.Time) *settle.Report {
	tb.Helper()
	var rep *settle.Report
	err := l.Update(context.Background(), func(tx *store.Tx) error {
		var err error
		rep, err = settle.Apply(context.Background(), tx, []byte(statementText), settle.Options{File: file, Layout: statement.Layout{Columns: cols},
			Location: kuwait, NotSettledAfter: 24 * time.Hour, Now: func() time.Time { return now }})
		return err
	})
	if err != nil {
		tb.Fatalf("settle %s: %v", file, err)
	}
	return rep
}

func depositsWith(tb testing.TB, l *store.Ledger, file, text string, layout statement.Layout, now time.Time) *settle.DepositsReport {
	tb.Helper()
	var rep *settle.DepositsReport
	err := l.Update(context.Background(), func(tx *store.Tx) error {
		var err error
		rep, err = settle.ApplyDeposits(context.Background(), tx, []byte(text), settle.DepositOptions{File: file, Layout: layout, Location: kuwait})
		return err
	})
	if err != nil {
		tb.Fatalf("deposits %s: %v", file, err)
	}
	return rep
}

// openCount counts the open discrepancies of kind (every kind when empty).
func openCount(tb testing.TB, l *store.Ledger, kind payment.Kind) int {
	tb.Helper()
	ds, err := l.Discrepancies(context.Background(), store.DiscrepancyFilter{Kind: kind})
	if err != nil {
		tb.Fatal(err)
	}
	return len(ds)
}

// TestDepositsPerBatch: when the bank pays one credit per batch (terminal), the account statement
// with a batch column is matched batch by batch; a batch whose credit is missing is named.
func TestDepositsPerBatch(t *testing.T) {
	l := mustOpenLedger(t)
	d1 := time.Date(2026, 12, 1, 10, 0, 0, 0, kuwait)
	mustCapture(t, l, capture{pay: "pay_1", amount: 5000, at: d1, knet: &store.KNETIDs{TransactionID: "201"}},
		capture{pay: "pay_2", amount: 3000, at: d1.Add(time.Hour), knet: &store.KNETIDs{TransactionID: "202"}})
	now := d1.AddDate(0, 0, 6)
	applyWith(t, l, "s1.csv", "knet_transaction_id,amount,fee,date,Terminal\n201,5.000,0.100,2026-12-01,T1\n202,3.000,0.100,2026-12-01,T2\n",
		map[string]string{"batch": "Terminal"}, now)
	acct := "date,amount,reference,batch\n2026-12-02,4.900,STLMT T1,T1\n2026-12-06,0.001,OTHER,T9\n"
	rep := depositsWith(t, l, "acct.csv", acct, statement.Layout{}, now)
	if len(rep.Matched) != 1 || rep.Matched[0].Batch != "T1" || len(rep.Missing) != 1 || rep.Missing[0].Batch != "T2" ||
		*rep.Missing[0].Expected != 2900 || len(rep.Unexpected) != 1 {
		t.Fatalf("deposits per batch: %+v", rep)
	}
	ds, err := l.Discrepancies(context.Background(), store.DiscrepancyFilter{Kind: payment.KindDepositMissing})
	if err != nil || len(ds) != 1 || ds[0].Subject != "deposit:2026-12-01:T2" {
		t.Fatalf("deposit_missing %+v %v", ds, err)
	}
}
