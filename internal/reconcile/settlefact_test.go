package reconcile

import (
	"encoding/json"
	"strings"
	"testing"

	"knetrecon/internal/statement"
)

// TestSettleFactLayout: a settle fact carries the bank's layout; a fact made before layouts (no
// layout fields) decodes and reads with the defaults, and a fact with the default layout is
// written as before, byte for byte.
func TestSettleFactLayout(t *testing.T) {
	old := `{"file":"knet.csv","statement":"YQ==","columns":{"amount":"Amount","reference":"reference"},"tz":"Asia/Kuwait","not_settled_after":259200000000000}`
	var f SettleFact
	if err := json.Unmarshal([]byte(old), &f); err != nil {
		t.Fatal(err)
	}
	if l := f.Layout(); l.Columns["amount"] != "Amount" || l.Sheet != "" || l.DateFormat != "" || l.Unit != "" || l.Sign != "" || l.Check() != nil {
		t.Fatalf("an old fact's layout: %+v", l)
	}
	b, err := json.Marshal(f)
	if err != nil || string(b) != old {
		t.Fatalf("an old fact written again: %s %v", b, err)
	}
	l := statement.Layout{Columns: map[string]string{"amount": "Amount"}, Sheet: "Settlement", DateFormat: "dd/mm/yyyy", Unit: "minor",
		Sign: "inverted", Currency: "KWD", Decimal: ",", Separator: ";", Encoding: "windows-1256"}
	b, err = json.Marshal(SettleFactOf("knet.xlsx", []byte("a"), l))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"sheet":"Settlement"`, `"date_format":"dd/mm/yyyy"`, `"unit":"minor"`, `"sign":"inverted"`, `"separator":";"`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("%s lacks %s", b, w)
		}
	}
	var back SettleFact
	if err := json.Unmarshal(b, &back); err != nil || back.Layout().Sheet != l.Sheet || back.Layout().Encoding != l.Encoding ||
		back.Layout().Decimal != l.Decimal || back.Layout().Columns["amount"] != "Amount" {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

// TestSettleFactGzip: a statement larger than GzipOver travels gzipped, so that 100,000 lines fit
// a message, and reads back byte for byte; a small one travels as it is.
func TestSettleFactGzip(t *testing.T) {
	var b strings.Builder
	b.WriteString("knet_transaction_id,amount,date\n")
	for i := 0; b.Len() <= 8<<20; i++ { // more than a whole message (8 MiB)
		b.WriteString(strings.Repeat("1", 3) + string(rune('0'+i%10)) + "20000" + string(rune('0'+i/10%10)) + ",12.345,2026-12-01\n")
	}
	raw := []byte(b.String())
	f := SettleFactOf("big.csv", raw, statement.Layout{})
	if f.Statement != nil || len(f.StatementGzip) == 0 {
		t.Fatal("a large statement is not gzipped")
	}
	msg, err := json.Marshal(Fact{Kind: FactSettle, Settle: f})
	if err != nil || len(msg) > 8<<20 {
		t.Fatalf("a fact of %d bytes for a statement of %d (%v)", len(msg), len(raw), err)
	}
	var back Fact
	if err := json.Unmarshal(msg, &back); err != nil {
		t.Fatal(err)
	}
	got, err := back.Settle.Bytes()
	if err != nil || string(got) != string(raw) {
		t.Fatalf("read back %d bytes of %d (%v)", len(got), len(raw), err)
	}
	if small := SettleFactOf("s.csv", []byte("a"), statement.Layout{}); string(small.Statement) != "a" || small.StatementGzip != nil {
		t.Fatalf("a small statement: %+v", small)
	}
}
