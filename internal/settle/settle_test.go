package settle_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/settle"
)

var kuwait = time.FixedZone("Asia/Kuwait", 3*3600)

func TestParseKWD(t *testing.T) {
	tests := []struct {
		give    string
		want    int64
		wantErr bool
	}{
		{"3.500", 3500, false}, {"3.5", 3500, false}, {"3", 3000, false}, {"0.010", 10, false}, {".250", 250, false},
		{"1,234.250", 1234250, false}, {"-2.000", -2000, false}, {"12.345 KWD", 12345, false},
		{"1.2345", 0, true}, {"abc", 0, true}, {"", 0, true}, {"1e3", 0, true}, {"9999999999.000", 0, true},
	}
	for _, tt := range tests {
		got, err := settle.ParseKWD(tt.give)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseKWD(%q) = %d, %v; want %d, err %v", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

// Two banks, two layouts: one in the default column names with amounts in KWD, one with its own
// headers (mapped with --columns), amounts in fils, refunds as negative amounts, dates d/m/y.
func TestParseTwoLayouts(t *testing.T) {
	a := "\ufeffknet_transaction_id,knet_payment_id,bank_reference,reference,amount,date,kind\n" +
		"211,101,B1,ORD-1,3.500,2026-12-01,capture\n" +
		",102,,ORD-2,1.000,2026-12-01,refund\n"
	lines, err := settle.Parse(strings.NewReader(a), settle.DefaultMapping(), kuwait)
	if err != nil || len(lines) != 2 || lines[0].Amount != 3500 || lines[0].Number != 2 || lines[1].Kind != "refund" ||
		lines[0].TransactionID != "211" || !lines[0].Date.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, kuwait)) {
		t.Fatalf("layout A: %+v %v", lines, err)
	}
	m, err := settle.ParseMapping("knet_transaction_id=Trans ID, amount_minor=Amount (fils), date=Post Date,reference=Merchant Ref")
	if err != nil {
		t.Fatal(err)
	}
	b := "Post Date;Trans ID;Merchant Ref;Amount (fils)\n01/12/2026;211;ORD-1;3500\n02/12/2026;212;ORD-3;-750\n"
	_, err = settle.Parse(strings.NewReader(b), m, kuwait)
	if err == nil {
		t.Fatal("a ';' file read as ','")
	}
	b = strings.ReplaceAll(b, ";", ",")
	lines, err = settle.Parse(strings.NewReader(b), m, kuwait)
	if err != nil || len(lines) != 2 || lines[1].Amount != 750 || lines[1].Kind != "refund" || lines[1].Reference != "ORD-3" ||
		!lines[1].Date.Equal(time.Date(2026, 12, 2, 0, 0, 0, 0, kuwait)) {
		t.Fatalf("layout B: %+v %v", lines, err)
	}
	for _, bad := range []string{"reference,date\nORD-1,2026-12-01\n", "amount\n3.500\n", "reference,amount\nORD-1,3.5001\n",
		"reference,amount,date\nORD-1,1.000,yesterday\n", "reference,amount,kind\nORD-1,1.000,chargeback\n"} {
		if _, err := settle.Parse(strings.NewReader(bad), settle.DefaultMapping(), kuwait); !errors.Is(err, settle.ErrStatement) {
			t.Errorf("%q: %v, want ErrStatement", bad, err)
		}
	}
	if _, err := settle.ParseMapping("nonsense=X"); err == nil {
		t.Fatal("an unknown column key was accepted")
	}
}

func TestMatch(t *testing.T) {
	day := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	entries := []settle.Entry{
		{PaymentID: "pay_1", ActionID: "act_c1", Kind: "capture", Amount: 3500, At: day, Reference: "ORD-1", KNETPaymentID: "101", KNETTransactionID: "211", BankReference: "B1"},
		{PaymentID: "pay_1", ActionID: "act_r1", Kind: "refund", Amount: 1000, At: day, Reference: "ORD-1", KNETPaymentID: "101", KNETTransactionID: "211", BankReference: "B1"},
		{PaymentID: "pay_2", ActionID: "act_c2", Kind: "capture", Amount: 2000, At: day, Reference: "ORD-2", KNETPaymentID: "102"},
		{PaymentID: "pay_3", ActionID: "act_c3", Kind: "capture", Amount: 5000, At: day, Reference: "ORD-3"},
		{PaymentID: "pay_4", ActionID: "act_c4", Kind: "capture", Amount: 7000, At: day, Reference: "ORD-4", KNETTransactionID: "214"},
		{PaymentID: "pay_5", ActionID: "act_c5", Kind: "capture", Amount: 1000, At: day, Reference: "ORD-5", KNETTransactionID: "215"},
		// Two equal partial refunds of one payment: two lines take one each.
		{PaymentID: "pay_6", ActionID: "act_r6a", Kind: "refund", Amount: 500, At: day, KNETTransactionID: "216"},
		{PaymentID: "pay_6", ActionID: "act_r6b", Kind: "refund", Amount: 500, At: day, KNETTransactionID: "216"},
	}
	lines := []settle.Line{
		{Number: 2, TransactionID: "211", Amount: 3500, Kind: "capture"},                            // by transaction id
		{Number: 3, TransactionID: "211", Amount: 1000, Kind: "refund"},                             // the refund of the same payment
		{Number: 4, PaymentID: "102", Amount: 2000, Kind: "capture"},                                // by KNET payment id
		{Number: 5, Reference: "ORD-3", Amount: 5000, Date: day, Kind: "capture"},                   // by reference + amount + date
		{Number: 6, TransactionID: "214", Amount: 7100, Kind: "capture"},                            // amount differs
		{Number: 7, TransactionID: "999", Amount: 100, Kind: "capture"},                             // not in the ledger
		{Number: 8, TransactionID: "211", Amount: 3500, Kind: "capture"},                            // the same line twice
		{Number: 9, TransactionID: "216", Amount: 500, Kind: "refund"},                              // one of two equal refunds
		{Number: 10, TransactionID: "216", Amount: 500, Kind: "refund"},                             // the other
		{Number: 11, Reference: "ORD-3", Amount: 5000, Date: day.AddDate(0, 0, 3), Kind: "capture"}, // another day: no match
	}
	res := settle.Match(lines, entries, kuwait)
	if res.Matched != 6 {
		t.Errorf("matched %d, want 6: %+v", res.Matched, res.Matches)
	}
	if len(res.AmountMismatch) != 1 || res.AmountMismatch[0].ActionID != "act_c4" || *res.AmountMismatch[0].LedgerAmount != 7000 ||
		*res.AmountMismatch[0].StatementAmount != 7100 || res.AmountMismatch[0].Line != 6 {
		t.Errorf("amount mismatch %+v", res.AmountMismatch)
	}
	var stmtLines []int
	for _, it := range res.StatementOnly {
		stmtLines = append(stmtLines, it.Line)
	}
	if len(stmtLines) != 3 || stmtLines[0] != 7 || stmtLines[1] != 8 || stmtLines[2] != 11 {
		t.Errorf("statement only lines %v: %+v", stmtLines, res.StatementOnly)
	}
	if len(res.LedgerOnly) != 1 || res.LedgerOnly[0].ActionID != "act_c5" {
		t.Errorf("ledger only %+v", res.LedgerOnly)
	}
	// Ambiguity is reported, never guessed: a line whose key fits two untaken entries.
	amb := settle.Match([]settle.Line{{Number: 2, TransactionID: "216", Amount: 999, Kind: "refund"}}, entries, kuwait)
	if amb.Matched != 0 || len(amb.StatementOnly) != 1 || !strings.Contains(amb.StatementOnly[0].Reason, "not guessed") {
		t.Errorf("ambiguous: %+v", amb)
	}
}
