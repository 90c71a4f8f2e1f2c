package settle_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/settle"
	"knetrecon/internal/statement"
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
// headers (mapped with --columns), amounts in fils, refunds as negative amounts, dates d/m/y,
// separated by semicolons.
func TestReadTwoLayouts(t *testing.T) {
	a := "\ufeffknet_transaction_id,knet_payment_id,bank_reference,reference,amount,date,kind\n" +
		"211,101,B1,ORD-1,3.500,2026-12-01,capture\n" +
		",102,,ORD-2,1.000,2026-12-01,refund\n"
	st, err := settle.Read([]byte(a), statement.Layout{Columns: settle.DefaultMapping()}, kuwait)
	if err != nil {
		t.Fatal(err)
	}
	lines := st.Lines
	if len(lines) != 2 || lines[0].Amount != 3500 || lines[0].Number != 2 || lines[1].Kind != "refund" ||
		lines[0].TransactionID != "211" || !lines[0].Date.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, kuwait)) || len(st.Skipped) != 0 {
		t.Fatalf("layout A: %+v", st)
	}
	m, err := settle.ParseMapping("knet_transaction_id=Trans ID, amount_minor=Amount (fils), date=Post Date,reference=Merchant Ref")
	if err != nil {
		t.Fatal(err)
	}
	b := "Post Date;Trans ID;Merchant Ref;Amount (fils)\n01/12/2026;211;ORD-1;3500\n02/12/2026;212;ORD-3;-750\n"
	for _, sep := range []string{";", ","} {
		st, err = settle.Read([]byte(strings.ReplaceAll(b, ";", sep)), statement.Layout{Columns: m}, kuwait)
		if err != nil {
			t.Fatalf("%q: %v", sep, err)
		}
		lines = st.Lines
		if len(lines) != 2 || lines[1].Amount != 750 || lines[1].Kind != "refund" || lines[1].Reference != "ORD-3" ||
			!lines[1].Date.Equal(time.Date(2026, 12, 2, 0, 0, 0, 0, kuwait)) {
			t.Fatalf("layout B %q: %+v", sep, lines)
		}
	}
	// No amount column, no key column: the file is not read, and the error names the headers.
	for _, bad := range []string{"reference,date\nORD-1,2026-12-01\n", "amount\n3.500\n"} {
		if _, err := settle.Read([]byte(bad), statement.Layout{Columns: settle.DefaultMapping()}, kuwait); !errors.Is(err, settle.ErrStatement) ||
			!strings.Contains(err.Error(), "CSV") || !strings.Contains(err.Error(), "its headers") {
			t.Errorf("%q: %v, want ErrStatement naming the format and the headers", bad, err)
		}
	}
	// A line that cannot be read is listed, and the others are read.
	for _, tt := range []struct{ give, reason string }{
		{"reference,amount\nORD-1,3.5001\nORD-2,1.000\n", "KWD has 3 decimals"},
		{"reference,amount,date\nORD-1,1.000,yesterday\nORD-2,1.000,2026-12-01\n", "not a date"},
		{"reference,amount,kind\nORD-1,1.000,chargeback\nORD-2,1.000,capture\n", "neither capture nor refund"},
	} {
		st, err := settle.Read([]byte(tt.give), statement.Layout{Columns: settle.DefaultMapping()}, kuwait)
		if err != nil || len(st.Lines) != 1 || st.Lines[0].Reference != "ORD-2" || len(st.Skipped) != 1 || st.Skipped[0].Line != 2 ||
			!st.Skipped[0].Unreadable || !strings.Contains(st.Skipped[0].Reason, tt.reason) {
			t.Errorf("%q: %+v %v, want line 2 skipped (%s)", tt.give, st, err, tt.reason)
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
	dec1 := settle.Period{From: time.Date(2026, 12, 1, 0, 0, 0, 0, kuwait), To: time.Date(2026, 12, 2, 0, 0, 0, 0, kuwait), Location: kuwait}
	res := settle.Match(lines, entries, dec1)
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
	amb := settle.Match([]settle.Line{{Number: 2, TransactionID: "216", Amount: 999, Kind: "refund"}}, entries, dec1)
	if amb.Matched != 0 || len(amb.StatementOnly) != 1 || !strings.Contains(amb.StatementOnly[0].Reason, "not guessed") {
		t.Errorf("ambiguous: %+v", amb)
	}
}

// TestMatchIgnoresLineOrder: every order of a statement's lines gives the same result, line for
// line: strong keys first over the whole statement, lines competing for one entry decided by their
// contents, ambiguity reported whatever other lines took.
func TestMatchIgnoresLineOrder(t *testing.T) {
	day := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	entries := []settle.Entry{
		{PaymentID: "pay_1", ActionID: "act_c1", Kind: "capture", Amount: 5000, At: day, Reference: "ORD-1", KNETTransactionID: "201"},
		{PaymentID: "pay_2", ActionID: "act_c2", Kind: "capture", Amount: 5000, At: day, Reference: "ORD-1"},
		{PaymentID: "pay_3", ActionID: "act_c3", Kind: "capture", Amount: 3000, At: day, KNETTransactionID: "203"},
		{PaymentID: "pay_3", ActionID: "act_r3a", Kind: "refund", Amount: 500, At: day.Add(time.Hour), KNETTransactionID: "203"},
		{PaymentID: "pay_3", ActionID: "act_r3b", Kind: "refund", Amount: 700, At: day.Add(2 * time.Hour), KNETTransactionID: "203"},
		{PaymentID: "pay_4", ActionID: "act_r4a", Kind: "refund", Amount: 250, At: day, KNETTransactionID: "204"},
		{PaymentID: "pay_4", ActionID: "act_r4b", Kind: "refund", Amount: 250, At: day.Add(time.Hour), KNETTransactionID: "204"},
		// 23:59:59 in Kuwait the day before: the bank posts it on the statement's day.
		{PaymentID: "pay_5", ActionID: "act_c5", Kind: "capture", Amount: 1500, At: day.Add(-12*time.Hour - time.Second), KNETPaymentID: "105"},
	}
	lines := []settle.Line{
		{TransactionID: "201", Reference: "ORD-1", Amount: 5000, Date: day, Kind: "capture"}, // pay_1
		{Reference: "ORD-1", Amount: 5000, Date: day, Kind: "capture"},                       // pay_2, the one left
		{TransactionID: "203", Amount: 3010, Kind: "capture"},                                // pay_3, another amount
		{TransactionID: "203", Amount: 3000, Kind: "capture"},                                // pay_3 again: the exact one takes it
		{TransactionID: "203", Amount: 500, Kind: "refund"},                                  // act_r3a
		{TransactionID: "203", Amount: 800, Kind: "refund"},                                  // fits both refunds: reported
		{TransactionID: "204", Amount: 250, Kind: "refund"},                                  // one of two equal refunds
		{TransactionID: "204", Amount: 250, Kind: "refund"},                                  // the other
		{TransactionID: "204", Amount: 250, Kind: "refund"},                                  // a third: already matched
		{PaymentID: "105", Amount: 1500, Date: day, Kind: "capture"},                         // pay_5, posted the next day
	}
	p := settle.Period{From: time.Date(2026, 12, 1, 0, 0, 0, 0, kuwait), To: time.Date(2026, 12, 2, 0, 0, 0, 0, kuwait), Location: kuwait}
	render := func(lines []settle.Line, res settle.Result) string {
		byNumber := map[int]settle.Line{}
		for _, l := range lines {
			byNumber[l.Number] = l
		}
		var out []string
		for name, items := range map[string][]settle.Item{"match": res.Matches, "ledger_only": res.LedgerOnly, "statement_only": res.StatementOnly,
			"amount_mismatch": res.AmountMismatch} {
			for _, it := range items {
				l := byNumber[it.Line]
				l.Number = 0
				out = append(out, fmt.Sprintf("%s %s %s by=%s reason=%q line=%+v", name, it.PaymentID, it.ActionID, it.By, it.Reason, l))
			}
		}
		sort.Strings(out)
		return fmt.Sprintf("matched %d\n%s", res.Matched, strings.Join(out, "\n"))
	}
	rng := rand.New(rand.NewPCG(17, 10))
	var want string
	for round := range 200 {
		shuffled := append([]settle.Line{}, lines...)
		if round > 0 {
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		}
		for i := range shuffled {
			shuffled[i].Number = i + 2
		}
		got := render(shuffled, settle.Match(shuffled, entries, p))
		if round == 0 {
			want = got
			res := settle.Match(shuffled, entries, p)
			if res.Matched != 7 || len(res.AmountMismatch) != 0 || len(res.StatementOnly) != 3 || len(res.LedgerOnly) != 1 || res.LedgerOnly[0].ActionID != "act_r3b" {
				t.Fatalf("in the file's order:\n%s", got)
			}
			continue
		}
		if got != want {
			t.Fatalf("round %d: another order, another result:\n%s\n---\n%s", round, got, want)
		}
	}
}

// TestMatchPostDate: KNET's post_date moves the day a capture is expected on a statement to one
// of the MaxPostingLagDays days after its own (over a new year too), never earlier, never further;
// a capture expected on another day is not missing from this one.
func TestMatchPostDate(t *testing.T) {
	late := time.Date(2026, 12, 31, 23, 59, 59, 0, kuwait)
	day := func(y int, m time.Month, d int) settle.Period {
		from := time.Date(y, m, d, 0, 0, 0, 0, kuwait)
		return settle.Period{From: from, To: from.AddDate(0, 0, 1), Location: kuwait}
	}
	tests := []struct {
		name     string
		postDate string
		give     settle.Period
		want     bool // ledger_only on the statement of give
	}{
		{"no post date, own day", "", day(2026, 12, 31), true},
		{"no post date, next day", "", day(2027, 1, 1), false},
		{"next day, over the new year", "0101", day(2027, 1, 1), true},
		{"next day, not on its own day's", "0101", day(2026, 12, 31), false},
		{"the same day", "1231", day(2026, 12, 31), true},
		{"earlier (a post date in UTC): its own day", "1230", day(2026, 12, 31), true},
		{"too far: its own day", "0110", day(2026, 12, 31), true},
		{"not a date: its own day", "1399", day(2026, 12, 31), true},
	}
	for _, tt := range tests {
		entries := []settle.Entry{{PaymentID: "pay_1", ActionID: "act_1", Kind: "capture", Amount: 1000, At: late, KNETTransactionID: "201", PostDate: tt.postDate}}
		res := settle.Match(nil, entries, tt.give)
		if got := len(res.LedgerOnly) == 1; got != tt.want {
			t.Errorf("%s: ledger_only %+v, want it %t", tt.name, res.LedgerOnly, tt.want)
		}
		// Whatever the post date, the bank may post it on its day or the days after, by its keys.
		lines := []settle.Line{{Number: 2, TransactionID: "201", Amount: 1000, Date: tt.give.From, Kind: "capture"}}
		if res := settle.Match(lines, entries, tt.give); res.Matched != 1 || len(res.LedgerOnly) != 0 {
			t.Errorf("%s: the line of %s: %+v", tt.name, tt.give.From.Format(time.DateOnly), res)
		}
	}
}
