package desk_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/settle"
	"knetrecon/internal/statement"
	"knetrecon/internal/store"
)

// TestPostingShowsTheBanksCommission: a payment's posting paid by the bank's statement shows the
// line that paid it, its gross, the commission and the net paid.
func TestPostingShowsTheBanksCommission(t *testing.T) {
	p := newPage(t)
	ctx := context.Background()
	apply := func(file, csv string) {
		t.Helper()
		err := p.ledger.Update(ctx, func(tx *store.Tx) error {
			_, err := settle.Apply(ctx, tx, []byte(csv), settle.Options{File: file, Layout: statement.Layout{}, Location: kuwait,
				NotSettledAfter: 72 * time.Hour, Now: func() time.Time { return time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC) }})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	apply("knet-1201.csv", "reference,amount,fee,net,date\nORD-pay_1,2.500,0.050,2.450,2026-12-01\n")
	if _, body, _ := p.get(t, "/payments/pay_1"); !strings.Contains(body, "settled: knet-1201.csv line 2<br>gross 2.500, the bank's commission 0.050, net paid 2.450") {
		t.Fatalf("pay_1's posting:\n%s", body)
	}
}
