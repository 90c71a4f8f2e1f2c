package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/store"
)

// TestForgedBusMessages: a local process without the embedded server's token cannot even
// connect; one that has it (an insider, a leaked token) publishes a 999.990 KWD capture on
// checkout.events.payment_captured, without a signature and with a wrong one. The reconciler
// dead-letters both as forged and never applies them; signed webhooks around them are applied.
func TestForgedBusMessages(t *testing.T) {
	s := newStack(t, stackOpts{})
	if nc, err := nats.Connect(s.natsURL, nats.MaxReconnects(0), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client without the token connected to the embedded NATS")
	}
	l := startLoad(t, s.recvURL, 50)
	time.Sleep(time.Second)
	js, err := jetstream.New(s.natsConn(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, sig := range []string{"", strings.Repeat("ab", 32)} {
		id := fmt.Sprintf("evt_forged_%d", i)
		body := fmt.Sprintf(`{"id":%q,"type":"payment_captured","created_on":"2026-12-01T10:00:00Z","data":{"id":"pay_forged_%d",`+
			`"action_id":"act_forged_%d","amount":999990,"currency":"KWD","source":{"type":"knet"}}}`, id, i, i)
		msg := &nats.Msg{Subject: "checkout.events.payment_captured", Data: []byte(body), Header: nats.Header{}}
		msg.Header.Set("Nats-Msg-Id", id)
		if sig != "" {
			msg.Header.Set("Cko-Signature", sig)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	l.stopLoad()
	waitFor(t, 30*time.Second, "two forged dead letters", func() bool { return deadLetters(t, s.ledger, "forged") == 2 })
	db, err := sql.Open("sqlite3", store.DSN(s.ledger, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var forged int
	if err := db.QueryRow(`SELECT COUNT(*) FROM payments WHERE id LIKE 'pay_forged_%'`).Scan(&forged); err != nil || forged != 0 {
		t.Fatalf("forged payments in the ledger: %d %v", forged, err)
	}
	tl := settle(t, s.ledger, l, 30*time.Second)
	tl.deadLetters -= 2 // the forged ones, counted above
	assertNothingLost(t, "2 forged bus messages among signed webhooks", tl)
	if got := metric(t, s.adminURL+"/metrics", `knetrecon_reconciler_dead_letters_total{cause="forged"}`); got != 2 {
		t.Fatalf("forged counter %v", got)
	}
}

// deadLetters counts the dead letters whose reason mentions word.
func deadLetters(t *testing.T, path, word string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", store.DSN(path, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM dead_letters WHERE reason LIKE ?`, "%"+word+"%").Scan(&n); err != nil {
		return -1
	}
	return n
}
