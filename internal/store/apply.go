package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"knetrecon/internal/payment"
)

// ErrInvalidInput wraps every Input that cannot be applied as it is (a capture without an action
// id, a bad currency, a non-positive amount). Such input is dead-lettered, never retried.
var ErrInvalidInput = errors.New("invalid ledger input")

// Origin says where the ledger learned a fact.
type Origin string

// Origins.
const (
	// OriginWebhook is a webhook delivered through the stream.
	OriginWebhook Origin = "webhook"
	// OriginSettlement marks discrepancies found by matching the bank's statement (never an input).
	OriginSettlement Origin = "settlement"
	// OriginAPI is an answer of Checkout.com's API, fetched by the sweep.
	OriginAPI Origin = "api"
)

// Input is one fact about a payment, whatever its source: a webhook event decoded by the
// reconciler, or a GET /payments answer (or one of its actions) turned into an event by the
// sweep. The same Apply takes both, so their rules can never drift apart.
type Input struct {
	// EventID identifies the input for de-duplication: the evt_… id of a webhook; for the API a
	// deterministic id the sweep derives (e.g. "api:act_…" for an action, "api:pay_…:<status>"
	// for a snapshot), so that asking twice changes nothing.
	EventID string
	// Type is the Checkout.com event type (payment_captured), or payment.EventSnapshot.
	Type   string
	Origin Origin
	// PaymentID is the pay_… id; empty for events that are not about a payment (kept, ignored).
	PaymentID string
	// ActionID keys money movements: required for captures and refunds.
	ActionID string
	// Amount is in minor units; required (> 0) for captures and refunds, 0 when absent.
	Amount    int64
	Currency  string
	Reference string
	// Customer is the customer id, Method the source type (knet, card): descriptive, first wins.
	Customer string
	Method   string
	// Status is the status Checkout.com reported (API snapshots); empty for webhooks.
	Status payment.Status
	// OccurredAt is the event's own time (created_on); RequestedAt the payment's requested_on
	// when the API told us.
	OccurredAt  time.Time
	RequestedAt time.Time
	// ReceivedAt is when the receiver (or the sweep) got it.
	ReceivedAt time.Time
	// Body is the exact bytes received (webhook body, API answer): stored and hashed.
	Body []byte
	// BodyHash, when set, is BodyHashOf(Body), computed ahead (off the writer's path); Apply
	// computes it when empty.
	BodyHash string
	// StreamSeq is the JetStream sequence of a webhook, 0 otherwise.
	StreamSeq uint64
	// KNET, when set, are KNET's ids of the payment (from the payment's source): kept beside it.
	KNET *KNETIDs
}

// Validate checks what Apply needs; its errors wrap ErrInvalidInput.
func (in *Input) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: event %s: %s", ErrInvalidInput, in.EventID, fmt.Sprintf(format, args...))
	}
	if in.EventID == "" {
		return bad("missing event id")
	}
	if in.Type == "" {
		return bad("missing type")
	}
	if in.Origin != OriginWebhook && in.Origin != OriginAPI {
		return bad("origin %q is neither webhook nor api", in.Origin)
	}
	if in.Amount < 0 {
		return bad("negative amount %d", in.Amount)
	}
	if in.Amount > payment.MaxMinor {
		return bad("amount %d is over Checkout.com's 9 digits", in.Amount)
	}
	if in.KNET != nil {
		if err := in.KNET.validate(); err != nil {
			return bad("KNET ids: %v", err)
		}
	}
	// Ids and types are keys: no control characters. The reference is the merchant's free text,
	// kept exactly as Checkout.com sent it (a TAB or any character JSON allows escaped): only
	// bounded, since refusing it would dead-letter an authentic, signed payment.
	for _, f := range []struct {
		name, v string
		max     int
		text    bool
	}{
		{"event id", in.EventID, MaxIDLen, false}, {"type", in.Type, MaxTypeLen, false},
		{"payment id", in.PaymentID, MaxIDLen, false}, {"action id", in.ActionID, MaxIDLen, false},
		{"reference", in.Reference, MaxTextLen, true}, {"customer", in.Customer, MaxIDLen, false},
		{"method", in.Method, MaxTypeLen, false},
	} {
		if len(f.v) > f.max {
			return bad("%s of %d bytes, over %d", f.name, len(f.v), f.max)
		}
		if !f.text && strings.ContainsFunc(f.v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return bad("%s with control characters", f.name)
		}
	}
	if in.Currency != "" {
		if _, err := payment.Exponent(in.Currency); err != nil {
			return bad("%v", err)
		}
	}
	if in.PaymentID == "" {
		return nil
	}
	if payment.MovesMoney(in.Type) {
		if in.ActionID == "" {
			return bad("%s without action_id: a money movement needs its key", in.Type)
		}
		if in.Amount <= 0 {
			return bad("%s without a positive amount", in.Type)
		}
		if in.Currency == "" {
			return bad("%s without currency", in.Type)
		}
	}
	return nil
}

// Bounds of the text an input writes into the ledger's columns.
const (
	// MaxIDLen bounds ids (event, payment, action, customer): Checkout.com's are about 30 bytes.
	MaxIDLen = 128
	// MaxTypeLen bounds an event type or a payment method.
	MaxTypeLen = 64
	// MaxTextLen bounds free text such as the merchant's reference.
	MaxTextLen = 512
)

// Outcome says how an input was applied; it is stored in events.outcome.
type Outcome string

// Outcomes.
const (
	// OutcomeApplied: the input moved money or changed the payment's status.
	OutcomeApplied Outcome = "applied"
	// OutcomeNoChange: a known fact that changed nothing (a late payment_pending): history only.
	OutcomeNoChange Outcome = "no_change"
	// OutcomeHeld: a refund kept until a capture covers it.
	OutcomeHeld Outcome = "held"
	// OutcomeAlreadyPosted: the action id was already in the journal (learned twice).
	OutcomeAlreadyPosted Outcome = "already_posted"
	// OutcomeRecorded: an event type the rules do not know, kept in the history.
	OutcomeRecorded Outcome = "recorded"
	// OutcomeRejected: kept in the history but not applied (currency mismatch): see discrepancies.
	OutcomeRejected Outcome = "rejected"
	// OutcomeIgnored: not about a payment; kept.
	OutcomeIgnored Outcome = "ignored"
	// OutcomeDuplicate: the same event id and body were applied before; nothing written.
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeConflict: the same event id came with a different body: a discrepancy, not applied.
	OutcomeConflict Outcome = "conflict"
)

// Result is what Apply did with one input.
type Result struct {
	EventID   string
	PaymentID string
	Outcome   Outcome
	// From and To are the payment's status before and after.
	From, To payment.Status
	// Discrepancies lists the kinds newly recorded.
	Discrepancies []payment.Kind
}

// BodyHashOf is the body hash the ledger stores and de-duplicates by: hex SHA-256.
func BodyHashOf(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Apply applies one input in its own transaction. See Tx.Apply.
func (l *Ledger) Apply(ctx context.Context, in Input) (Result, error) {
	var res Result
	err := l.Update(ctx, func(tx *Tx) error {
		var err error
		res, err = tx.Apply(ctx, in)
		return err
	})
	return res, err
}

// BatchResult is one input's fate in ApplyBatch: a Result, or the error that kept it out.
type BatchResult struct {
	Result
	Err error
}

// ApplyBatch applies inputs in one transaction, each in its own savepoint: an input that fails is
// rolled back alone and reported in its BatchResult. The returned error is for the batch as a
// whole (a transient failure: nothing was committed, retry it all).
func (l *Ledger) ApplyBatch(ctx context.Context, ins []Input) ([]BatchResult, error) {
	out := make([]BatchResult, len(ins))
	err := l.Update(ctx, func(tx *Tx) error {
		if err := tx.Prefetch(ctx, ins); err != nil {
			return err
		}
		for i := range ins {
			var res Result
			err := tx.Savepoint(ctx, func() error {
				var err error
				res, err = tx.Apply(ctx, ins[i])
				return err
			})
			if err != nil && IsTransient(err) {
				return err
			}
			out[i] = BatchResult{Result: res, Err: err}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// paymentRow is a payments row as Apply reads and writes it.
type paymentRow struct {
	ID, Status, ProviderStatus            string
	Amount                                int64
	Currency, Reference, Customer, Method string
	Seen                                  payment.Seen
	Captured, Refunded, Held              int64
	RequestedAt, FirstSeenAt, LastEvent   time.Time
	LastCheckedAt, NextCheckAt            time.Time
}

func (p *paymentRow) facts() payment.Facts {
	return payment.Facts{Seen: p.Seen, Amount: p.Amount, Captured: p.Captured, Refunded: p.Refunded, Held: p.Held}
}

// The statements Apply runs, prepared once on the writer connection.
var statements = map[string]string{
	"eventHash": `SELECT body_hash FROM events WHERE id = ?`,
	// A copy counts when it is another message (Checkout.com sent it again), never when the same
	// stream message is delivered again (a redelivery, a replay): that is this replica's own
	// history, not the stream's, and every replica must count alike.
	"eventDup":      `UPDATE events SET duplicates = duplicates + 1 WHERE id = ?1 AND (?2 = 0 OR stream_seq IS NULL OR stream_seq != ?2)`,
	"payment":       `SELECT ` + paymentRowColumns + ` FROM payments WHERE id = ?`,
	"upsertPayment": `INSERT INTO payments ` + paymentInsertColumns + ` VALUES ` + paymentValues + paymentUpsert,
	"insertEvent":   `INSERT INTO events ` + eventColumns + ` VALUES ` + eventValues,
	"posting":       `SELECT payment_id, kind, amount, state FROM postings WHERE action_id = ?`,
	"insertPosting": `INSERT INTO postings ` + postingColumns + ` VALUES ` + postingValues,
	"heldRefunds": `SELECT action_id, amount, currency FROM postings
		WHERE payment_id = ? AND state = 'held' ORDER BY occurred_at, action_id`,
	"postHeld": `UPDATE postings SET state = 'posted', posted_at = ? WHERE action_id = ?`,
	"journal":  `INSERT INTO journal ` + journalColumns + ` VALUES ` + journalValues,
	// One savepoint name serves every level: SQLite releases or rolls back the innermost of that
	// name. Prepared once, they cost a step each instead of a parse (see Tx.Savepoint).
	"savepoint":  `SAVEPOINT sp`,
	"release":    `RELEASE sp`,
	"rollbackTo": `ROLLBACK TO sp`,
	"discrepancy": `INSERT INTO discrepancies (payment_id, kind, subject, details, event_id, origin, detected_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (payment_id, kind, subject) DO NOTHING`,
	"webhookArrived": `UPDATE discrepancies SET resolved_at = ?, resolution = ?
		WHERE payment_id = ? AND kind = 'webhook_missing' AND subject = ? AND resolved_at IS NULL`,
}

func (l *Ledger) prepare(ctx context.Context) error {
	l.stmts = make(map[string]*sqlx.Stmt, len(statements))
	for k, q := range statements {
		s, err := l.w.PreparexContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %s: %w", k, err)
		}
		l.stmts[k] = s
	}
	return nil
}

// Journal accounts.
const (
	// AccountCheckoutBalance is money Checkout.com holds for the merchant.
	AccountCheckoutBalance = "checkout_balance"
	// AccountCustomerPayments is captured customer money (credit side of a capture).
	AccountCustomerPayments = "customer_payments"
	// AccountCustomerRefunds is money given back (debit side of a refund).
	AccountCustomerRefunds = "customer_refunds"
)

// Apply applies one input inside tx: de-duplicate by event id and body hash; load or create the
// payment; learn the fact; post money by action id; derive the status; write the payment, the
// event and any discrepancy. An error leaves tx to be rolled back (or the savepoint).
//
// Once started, Apply runs to its end whatever ctx says (the busy timeout bounds its waits): the
// statements then run without a watcher goroutine each, and a batch in hand is finished on
// shutdown rather than torn.
func (t *Tx) Apply(ctx context.Context, in Input) (Result, error) {
	ctx = context.WithoutCancel(ctx)
	res := Result{EventID: in.EventID, PaymentID: in.PaymentID}
	if err := in.Validate(); err != nil {
		return res, err
	}
	hash := in.BodyHash
	if hash == "" {
		hash = BodyHashOf(in.Body)
	}

	switch prev, err := t.eventHash(ctx, in.EventID); {
	case err == nil && prev == hash:
		res.Outcome = OutcomeDuplicate
		// The first copy may still be among the rows gathered for the end of the batch.
		if err := t.flushRows(ctx); err != nil {
			return res, fmt.Errorf("apply event %s: %w", in.EventID, err)
		}
		if _, err := t.stmt("eventDup").ExecContext(ctx, in.EventID, int64(in.StreamSeq)); err != nil {
			return res, fmt.Errorf("apply event %s: %w", in.EventID, err)
		}
		return res, nil
	case err == nil:
		res.Outcome = OutcomeConflict
		added, err := t.discrepancy(ctx, in, payment.KindConflictingDuplicate, in.EventID+"@"+hash[:16], map[string]any{
			"event_id": in.EventID, "stored_body_hash": prev, "new_body_hash": hash, "new_body": string(in.Body),
		})
		if added {
			res.Discrepancies = append(res.Discrepancies, payment.KindConflictingDuplicate)
		}
		return res, err
	case !errors.Is(err, sql.ErrNoRows):
		return res, fmt.Errorf("apply event %s: %w", in.EventID, err)
	}

	if in.PaymentID == "" {
		res.Outcome = OutcomeIgnored
		return res, t.insertEvent(ctx, in, hash, res)
	}

	p, err := t.loadPayment(ctx, in)
	if err != nil {
		return res, fmt.Errorf("apply event %s: %w", in.EventID, err)
	}
	before := p.facts()
	created := p.Status == ""
	// From is the stored status: empty for a payment this input creates.
	res.From = payment.Status(p.Status)
	var conflicts []payment.Conflict
	add := func(kind payment.Kind, subject string, details map[string]any) error {
		added, err := t.discrepancy(ctx, in, kind, subject, details)
		if added {
			res.Discrepancies = append(res.Discrepancies, kind)
		}
		return err
	}

	if err := t.boundDates(&in, add); err != nil {
		return res, err
	}
	outcome, err := t.learn(ctx, in, p, add)
	if err != nil {
		return res, fmt.Errorf("apply event %s: %w", in.EventID, err)
	}

	after := p.facts()
	change := payment.Compare(before, after)
	conflicts = append(conflicts, change.Conflicts...)
	res.To = change.To
	for _, c := range conflicts {
		subject := ""
		if c.Kind == payment.KindDisallowedTransition {
			subject = string(change.From) + "->" + string(change.To)
		}
		if err := add(c.Kind, subject, map[string]any{
			"from": string(change.From), "to": string(change.To), "detail": c.Detail,
			"event_type": in.Type, "captured": after.Captured, "amount": after.Amount,
		}); err != nil {
			return res, err
		}
	}
	if after.Held > 0 && after.Settled() {
		if err := add(payment.KindOverRefund, "", map[string]any{
			"captured": after.Captured, "refunded": after.Refunded, "held_refunds": after.Held,
		}); err != nil {
			return res, err
		}
	}
	if after.Amount > 0 && after.Captured > after.Amount {
		if err := add(payment.KindAmountMismatch, "over_capture", map[string]any{
			"amount": after.Amount, "captured": after.Captured,
		}); err != nil {
			return res, err
		}
	}
	if in.Status != "" {
		p.ProviderStatus = string(in.Status)
		if !in.Status.Known() {
			if err := add(payment.KindUnknownStatus, string(in.Status), map[string]any{"status": string(in.Status)}); err != nil {
				return res, err
			}
		}
	}
	if outcome == "" {
		switch {
		case !payment.KnownEvent(in.Type):
			outcome = OutcomeRecorded
		case created || change.Changed():
			outcome = OutcomeApplied
		default:
			outcome = OutcomeNoChange
		}
	}
	res.Outcome = outcome
	p.Status = string(change.To)
	if err := t.savePayment(ctx, p, in); err != nil {
		return res, fmt.Errorf("apply event %s: %w", in.EventID, err)
	}
	if in.KNET != nil && !in.KNET.Empty() {
		if err := t.saveKNET(ctx, in.PaymentID, in.KNET); err != nil {
			return res, err
		}
	}
	if err := t.insertEvent(ctx, in, hash, res); err != nil {
		return res, err
	}
	return res, nil
}

// boundDates times an input dated further ahead of its receipt than the schedule's MaxSkew (a
// clock wrong at the sender, a date typed by hand) by its receipt instead, and flags it
// clock_skew: it is applied and counted on its receipt day, and never schedules a check or a
// verification years ahead (nor past what a time can hold).
func (t *Tx) boundDates(in *Input, add func(payment.Kind, string, map[string]any) error) error {
	skew := t.schedule.MaxSkew
	if skew <= 0 {
		return nil
	}
	recv := in.ReceivedAt
	if recv.IsZero() {
		recv = t.now
	}
	limit := recv.Add(skew)
	for _, d := range []struct {
		name string
		at   *time.Time
	}{{"occurred_at", &in.OccurredAt}, {"requested_at", &in.RequestedAt}} {
		if !d.at.After(limit) {
			continue
		}
		if err := add(payment.KindClockSkew, in.EventID+":"+d.name, map[string]any{
			"event_id": in.EventID, "field": d.name, "dated": d.at.UTC().Format(time.RFC3339Nano), "received_at": recv.UTC().Format(time.RFC3339Nano),
			"max_skew": skew.String(), "detail": "dated further ahead of its receipt than the skew allowed: timed by its receipt",
		}); err != nil {
			return err
		}
		*d.at = recv
	}
	return nil
}

// learn adds the input's fact to p and posts its money. It returns the outcome when the fact
// itself decides it (money, rejection) or "" to let the status change decide.
func (t *Tx) learn(ctx context.Context, in Input, p *paymentRow, add func(payment.Kind, string, map[string]any) error) (Outcome, error) {
	if in.Currency != "" && p.Currency != "" && in.Currency != p.Currency {
		return OutcomeRejected, add(payment.KindCurrencyMismatch, in.EventID, map[string]any{
			"payment_currency": p.Currency, "event_currency": in.Currency, "event_type": in.Type,
		})
	}
	if p.Currency == "" {
		p.Currency = in.Currency
	}
	fill(&p.Reference, in.Reference)
	fill(&p.Customer, in.Customer)
	fill(&p.Method, in.Method)
	if !in.RequestedAt.IsZero() {
		p.RequestedAt = in.RequestedAt
	} else if !in.OccurredAt.IsZero() && (p.RequestedAt.IsZero() || in.OccurredAt.Before(p.RequestedAt)) {
		p.RequestedAt = in.OccurredAt
	}
	// The sweep's status snapshot is an observation, timed when it was made: it does not move
	// the latest event, from which a final payment's verification is counted.
	if in.Type != payment.EventSnapshot && in.OccurredAt.After(p.LastEvent) {
		p.LastEvent = in.OccurredAt
	}

	eff := payment.EffectOf(in.Type)
	if in.Type == payment.EventSnapshot {
		eff = payment.EffectOfStatus(in.Status)
	}
	p.Seen |= payment.FactOf(eff)
	if payment.StatesAmount(in.Type) && in.Amount > 0 {
		if p.Amount > 0 && in.Amount != p.Amount {
			if err := add(payment.KindAmountMismatch, "stated:"+in.EventID, map[string]any{
				"ledger_amount": p.Amount, "event_amount": in.Amount, "event_type": in.Type, "origin": string(in.Origin),
			}); err != nil {
				return "", err
			}
		}
		if in.Amount > p.Amount {
			p.Amount = in.Amount
		}
	}
	if eff != payment.EffectCapture && eff != payment.EffectRefund {
		return "", nil
	}

	switch posted, err := t.posting(ctx, in.ActionID); {
	case err == nil:
		if posted.Amount != in.Amount || posted.PaymentID != in.PaymentID {
			if err := add(payment.KindAmountMismatch, in.ActionID, map[string]any{
				"action_id": in.ActionID, "posted_amount": posted.Amount, "event_amount": in.Amount,
				"posted_payment": posted.PaymentID, "event_type": in.Type, "origin": string(in.Origin),
			}); err != nil {
				return "", err
			}
		}
		if in.Origin == OriginWebhook {
			// Money the sweep learned first, its webhook come after all: late, not lost.
			if _, err := t.stmt("webhookArrived").ExecContext(ctx, fmtTime(t.now),
				"the webhook arrived after all: "+in.EventID, in.PaymentID, in.ActionID); err != nil {
				return "", fmt.Errorf("resolve webhook_missing of %s: %w", in.ActionID, err)
			}
		}
		return OutcomeAlreadyPosted, nil
	case !errors.Is(err, sql.ErrNoRows):
		return "", err
	}

	if eff == payment.EffectRefund {
		if !p.facts().RefundFits(in.Amount) {
			p.Held += in.Amount
			return OutcomeHeld, t.insertPosting(ctx, in, "refund", "held")
		}
		p.Refunded += in.Amount
		if err := t.insertPosting(ctx, in, "refund", "posted"); err != nil {
			return "", err
		}
		return OutcomeApplied, t.journal(ctx, in.ActionID, "refund", in.Amount, in.Currency)
	}
	p.Captured += in.Amount
	if err := t.insertPosting(ctx, in, "capture", "posted"); err != nil {
		return "", err
	}
	if err := t.journal(ctx, in.ActionID, "capture", in.Amount, in.Currency); err != nil {
		return "", err
	}
	if p.Held > 0 {
		if err := t.releaseHeld(ctx, p); err != nil {
			return "", err
		}
	}
	return OutcomeApplied, nil
}

// releaseHeld posts the held refunds of p that its captures now cover, oldest first.
func (t *Tx) releaseHeld(ctx context.Context, p *paymentRow) error {
	type held struct {
		ActionID string `db:"action_id"`
		Amount   int64  `db:"amount"`
		Currency string `db:"currency"`
	}
	var hs []held
	if err := t.flushRows(ctx); err != nil { // held refunds may be among the gathered rows
		return err
	}
	if err := t.stmt("heldRefunds").SelectContext(ctx, &hs, p.ID); err != nil {
		return err
	}
	for _, h := range hs {
		if !p.facts().RefundFits(h.Amount) {
			continue
		}
		p.Refunded += h.Amount
		p.Held -= h.Amount
		if _, err := t.stmt("postHeld").ExecContext(ctx, fmtTime(t.now), h.ActionID); err != nil {
			return err
		}
		t.rememberPosting(h.ActionID, postingRow{PaymentID: p.ID, Kind: "refund", Amount: h.Amount, State: "posted"})
		if err := t.journal(ctx, h.ActionID, "refund", h.Amount, h.Currency); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) insertPosting(ctx context.Context, in Input, kind, state string) error {
	var postedAt any
	if state == "posted" {
		postedAt = fmtTime(t.now)
	}
	args := []any{in.ActionID, in.PaymentID, kind, in.Amount, in.Currency,
		state, in.EventID, string(in.Origin), nullTime(in.OccurredAt), fmtTime(t.now), postedAt}
	if t.deferRows() {
		t.pending.postings = append(t.pending.postings, args)
	} else if _, err := t.stmt("insertPosting").ExecContext(ctx, args...); err != nil {
		return err
	}
	t.rememberPosting(in.ActionID, postingRow{PaymentID: in.PaymentID, Kind: kind, Amount: in.Amount, State: state})
	return nil
}

// journal writes the two balanced lines of a posting.
func (t *Tx) journal(ctx context.Context, actionID, kind string, amount int64, currency string) error {
	debit, credit := AccountCheckoutBalance, AccountCustomerPayments
	if kind == "refund" {
		debit, credit = AccountCustomerRefunds, AccountCheckoutBalance
	}
	args := []any{actionID, debit, amount, currency, actionID, credit, amount, currency}
	if t.deferRows() {
		t.pending.journals = append(t.pending.journals, args)
		return nil
	}
	_, err := t.stmt("journal").ExecContext(ctx, args...)
	return err
}

// paymentRowColumns are the payments columns scanPaymentRow reads, in its order.
const paymentRowColumns = `id, status, provider_status, amount, currency, reference, customer, method, seen,
	captured, refunded, held, requested_at, first_seen_at, last_event_at, last_checked_at, next_check_at`

func scanPaymentRow(s scanner) (*paymentRow, error) {
	var p paymentRow
	var seen string
	var req, first, last, checked, next sql.NullString
	err := s.Scan(&p.ID, &p.Status, &p.ProviderStatus, &p.Amount, &p.Currency, &p.Reference, &p.Customer,
		&p.Method, &seen, &p.Captured, &p.Refunded, &p.Held, &req, &first, &last, &checked, &next)
	if err != nil {
		return nil, err
	}
	p.Seen = payment.ParseSeen(seen)
	p.RequestedAt, p.FirstSeenAt, p.LastEvent = parseTime(req), parseTime(first), parseTime(last)
	p.LastCheckedAt, p.NextCheckAt = parseTime(checked), parseTime(next)
	return &p, nil
}

func (t *Tx) loadPayment(ctx context.Context, in Input) (*paymentRow, error) {
	p, cached := t.cachedPayment(in.PaymentID)
	var err error
	if !cached {
		p, err = scanPaymentRow(t.stmt("payment").QueryRowContext(ctx, in.PaymentID))
		if errors.Is(err, sql.ErrNoRows) {
			p, err = nil, nil
		}
	}
	if err != nil {
		return nil, err
	}
	if p == nil {
		first := in.ReceivedAt
		if first.IsZero() {
			first = t.now
		}
		return &paymentRow{ID: in.PaymentID, FirstSeenAt: first, NextCheckAt: first.Add(t.schedule.FirstCheckAfter)}, nil
	}
	return p, nil
}

func (t *Tx) savePayment(ctx context.Context, p *paymentRow, in Input) error {
	final := 0
	if payment.Status(p.Status).Final() {
		final = 1
	}
	args := []any{p.ID, p.Status, p.ProviderStatus, p.Amount, p.Currency,
		p.Reference, p.Customer, p.Method, p.Seen.String(), p.Captured, p.Refunded, p.Held, final,
		nullTime(p.RequestedAt), fmtTime(p.FirstSeenAt), nullTime(p.LastEvent), nullTime(p.LastCheckedAt),
		fmtTime(p.NextCheckAt), t.verifyAt(p, final == 1), fmtTime(t.now)}
	if t.deferRows() {
		t.pending.payment(p.ID, args)
	} else if _, err := t.stmt("upsertPayment").ExecContext(ctx, args...); err != nil {
		return err
	}
	t.rememberPayment(p)
	return nil
}

// verifyAt is a payment's verify_at as an event leaves it: a final payment is verified
// the schedule's VerifyAfter after its latest event (every event starts the count again); any other, never.
func (t *Tx) verifyAt(p *paymentRow, final bool) any {
	if !final || t.schedule.VerifyAfter <= 0 {
		return nil
	}
	at := p.LastEvent
	if at.IsZero() {
		at = p.FirstSeenAt
	}
	return fmtTime(at.Add(t.schedule.VerifyAfter))
}

func (t *Tx) insertEvent(ctx context.Context, in Input, hash string, res Result) error {
	var pid, seq any
	if in.PaymentID != "" {
		pid = in.PaymentID
	}
	if in.StreamSeq > 0 {
		seq = int64(in.StreamSeq)
	}
	received := in.ReceivedAt
	if received.IsZero() {
		received = t.now
	}
	body := in.Body
	if body == nil {
		body = []byte{}
	}
	args := []any{in.EventID, pid, in.Type, string(in.Origin), in.ActionID,
		in.Amount, in.Currency, nullTime(in.OccurredAt), fmtTime(received), fmtTime(t.now), string(res.Outcome),
		string(res.From), string(res.To), seq, hash, body}
	if t.deferRows() {
		t.pending.events = append(t.pending.events, args)
		t.rememberEvent(in.EventID, hash)
		return nil
	}
	if _, err := t.stmt("insertEvent").ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("apply event %s: store event: %w", in.EventID, err)
	}
	t.rememberEvent(in.EventID, hash)
	return nil
}

// discrepancy records one discrepancy unless the same (payment, kind, subject) is recorded
// already; it reports whether a row was added.
func (t *Tx) discrepancy(ctx context.Context, in Input, kind payment.Kind, subject string, details map[string]any) (bool, error) {
	b, err := json.Marshal(details)
	if err != nil {
		return false, fmt.Errorf("discrepancy %s: %w", kind, err)
	}
	r, err := t.stmt("discrepancy").ExecContext(ctx, in.PaymentID, string(kind), subject, string(b),
		in.EventID, string(in.Origin), fmtTime(t.now))
	if err != nil {
		return false, fmt.Errorf("record discrepancy %s: %w", kind, err)
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}

func fill(dst *string, v string) {
	if *dst == "" && strings.TrimSpace(v) != "" {
		*dst = v
	}
}
