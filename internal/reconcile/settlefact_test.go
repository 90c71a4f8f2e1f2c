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
