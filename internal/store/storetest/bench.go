package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// VerifyAfter is the first verification step benchmarks give their ledgers, as the reconciler's
// default does (KNETRECON_VERIFY_AFTER), so a captured payment's verify_at is written too.
const VerifyAfter = 31 * time.Hour

// KNETInputs returns n webhook inputs for n/2 KNET payments, each a payment_pending and, 1,000
// events later, its payment_captured (as at a busy hour, where other payments' events come
// between the two), with bodies of a realistic size (~700 bytes), as benchmarks feed them.
func KNETInputs(n int) []store.Input {
	const lag = 1000
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	input := func(i int, typ string) store.Input {
		pid := fmt.Sprintf("pay_bench%09d", i)
		id := fmt.Sprintf("evt_%s_%s", typ[8:], pid)
		in := store.Input{EventID: id, Type: typ, Origin: store.OriginWebhook, PaymentID: pid, Amount: 12340,
			Currency: "KWD", Reference: "ORD-" + pid[8:], Method: "knet", OccurredAt: t0.Add(time.Duration(i) * time.Millisecond),
			ReceivedAt: t0.Add(time.Duration(i)*time.Millisecond + time.Second)}
		if typ == payment.EventCaptured {
			in.ActionID = "act_" + pid
			in.OccurredAt = in.OccurredAt.Add(lag * time.Millisecond)
			in.ReceivedAt = in.ReceivedAt.Add(lag * time.Millisecond)
		}
		in.Body = []byte(WebhookBody(in))
		return in
	}
	payments := (n + 1) / 2
	out := make([]store.Input, 0, n)
	for i, captured := 0, 0; len(out) < n; i++ {
		if i < payments {
			out = append(out, input(i, payment.EventPending))
		}
		if (i >= lag || i >= payments) && captured < payments && len(out) < n {
			out = append(out, input(captured, payment.EventCaptured))
			captured++
		}
	}
	return out
}

// WebhookBody renders in as a Checkout.com webhook body.
func WebhookBody(in store.Input) string {
	act := ""
	if in.ActionID != "" {
		act = fmt.Sprintf(`"action_id":%q,`, in.ActionID)
	}
	return fmt.Sprintf(`{"id":%q,"type":%q,"version":"1.0.1","created_on":%q,"data":{%s"id":%q,"amount":%d,`+
		`"currency":%q,"reference":%q,"processed_on":%q,"response_code":"10000","response_summary":"Approved",`+
		`"balances":{"total_authorized":%d,"total_voided":0,"available_to_void":0,"total_captured":%d,"available_to_capture":0,"total_refunded":0,"available_to_refund":%d},`+
		`"metadata":{"order":"%s","channel":"web"},"source":{"type":"knet","language":"en","knet_payment_id":"100201914315601265","bank_reference":"914310000349","auth_code":"B00775"},`+
		`"customer":{"id":"cus_kx75h5tcegyednxeyvtn6vy3sq"}},"_links":{"self":{"href":"https://api.checkout.com/events/%s"}}}`,
		in.EventID, in.Type, in.OccurredAt.Format(time.RFC3339Nano), act, in.PaymentID, in.Amount, in.Currency, in.Reference,
		in.OccurredAt.Format(time.RFC3339Nano), in.Amount, in.Amount, in.Amount, in.Reference, in.EventID)
}

// PlainUpsert writes the rows Apply would write for ins (payment upsert, event row with its body,
// posting and two journal lines for each capture) in transactions of batch, with statements
// prepared once and no reads and no rules: the ceiling Apply's throughput is measured against.
func PlainUpsert(tb testing.TB, path string, ins []store.Input, batch int) {
	tb.Helper()
	db, err := sqlx.Open("sqlite3", store.DSN(path, false))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	const ts = "2026-03-01T10:00:00.000000000Z"
	prep := func(q string) *sqlx.Stmt {
		s, err := db.PreparexContext(ctx, q)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	upsert := prep(`INSERT INTO payments (id, status, amount, currency, reference, method, seen,
		captured, final, requested_at, first_seen_at, last_event_at, next_check_at, verify_at, updated_at)
		VALUES (?, 'Pending', ?, ?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?, NULL, ?)
		ON CONFLICT (id) DO UPDATE SET status = 'Captured', captured = excluded.captured, final = 1,
		last_event_at = excluded.last_event_at, verify_at = excluded.last_event_at, updated_at = excluded.updated_at`)
	event := prep(`INSERT INTO events (id, payment_id, type, origin, action_id, amount, currency,
		occurred_at, received_at, applied_at, outcome, status_before, status_after, body_hash, body)
		VALUES (?, ?, ?, 'webhook', ?, ?, ?, ?, ?, ?, 'applied', '', 'Pending', ?, ?)`)
	posting := prep(`INSERT INTO postings (action_id, payment_id, kind, amount, currency, state,
		event_id, origin, occurred_at, created_at, posted_at) VALUES (?, ?, 'capture', ?, ?, 'posted', ?, 'webhook', ?, ?, ?)`)
	journal := prep(`INSERT INTO journal (action_id, account, debit, credit, currency) VALUES (?, ?, ?, 0, ?), (?, ?, 0, ?, ?)`)
	for start := 0; start < len(ins); start += batch {
		end := min(start+batch, len(ins))
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			tb.Fatal(err)
		}
		exec := func(s *sqlx.Stmt, args ...any) {
			if _, err := tx.Stmtx(s).ExecContext(ctx, args...); err != nil {
				tb.Fatal(err)
			}
		}
		for _, in := range ins[start:end] {
			sum := sha256.Sum256(in.Body)
			captured := int64(0)
			if in.ActionID != "" {
				captured = in.Amount
			}
			exec(upsert, in.PaymentID, in.Amount, in.Currency, in.Reference, in.Method, captured, ts, ts, ts, ts, ts)
			exec(event, in.EventID, in.PaymentID, in.Type, in.ActionID, in.Amount, in.Currency, ts, ts, ts,
				hex.EncodeToString(sum[:]), in.Body)
			if in.ActionID == "" {
				continue
			}
			exec(posting, in.ActionID, in.PaymentID, in.Amount, in.Currency, in.EventID, ts, ts, ts)
			exec(journal, in.ActionID, store.AccountCheckoutBalance, in.Amount, in.Currency,
				in.ActionID, store.AccountCustomerPayments, in.Amount, in.Currency)
		}
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}
