package reconcile

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/payment"
	"knetrecon/internal/settle"
	"knetrecon/internal/statement"
	"knetrecon/internal/store"
)

// Fact kinds: what the sweep learns from Checkout.com and what operators decide. Each travels the
// stream as a signed message and reaches every ledger through the consumer, in stream order, so
// that every replica holds the same ledger. Nothing writes to a ledger except the consumer.
const (
	// FactCheck is one check of a payment: what the API answered (the payment, its actions, or
	// 404), what the sweep did (a void asked for) and when it asks next.
	FactCheck = "check"
	// FactSchedule moves a payment's first check (met before it was due).
	FactSchedule = "schedule"
	// FactKNET is the answer to "what are this captured payment's KNET ids".
	FactKNET = "knet"
	// FactStuck marks payments stuck, and resolves the stuck mark of payments now final.
	FactStuck = "stuck"
	// FactAlerted records that an alert was announced.
	FactAlerted = "alerted"
	// FactResolve is an operator resolving a discrepancy.
	FactResolve = "resolve"
	// FactDiscard is an operator setting a dead letter aside.
	FactDiscard = "discard"
	// FactReplay is an operator applying a dead letter again.
	FactReplay = "replay"
	// FactSettle is an operator's import of the acquiring bank's statement: every ledger matches
	// it against its postings and records the run alike.
	FactSettle = "settle"
	// FactDeposits is an operator's import of the merchant's account statement: every ledger
	// matches its credits against the nets the settled statements promise.
	FactDeposits = "deposits"
	// FactSettings sets the ledger's schedule (store.Schedule) from its point of the stream on:
	// the settings that shape what applying writes travel in the stream, so replicas configured
	// differently still write the same rows. The sweep's holder publishes its own when they differ.
	FactSettings = "settings"
)

// Fact is one fact on the stream. Its ID is the message's Nats-Msg-Id: derived from its content,
// so a fact published twice (a retry, or two reconcilers during a change of leader) is stored once.
type Fact struct {
	Kind string    `json:"kind"`
	ID   string    `json:"id"`
	At   time.Time `json:"at"`
	// By is the reconciler that published it (its consumer name).
	By string `json:"by,omitempty"`
	// Operator is who asked, for an operator's fact (and a check an operator asked for).
	Operator *OperatorNote `json:"operator,omitempty"`

	Check    *CheckFact            `json:"check,omitempty"`
	Schedule *ScheduleFact         `json:"schedule,omitempty"`
	KNET     *KNETFact             `json:"knet,omitempty"`
	Stuck    *StuckFact            `json:"stuck,omitempty"`
	Alerted  *AlertedFact          `json:"alerted,omitempty"`
	Resolve  *store.DiscrepancyKey `json:"resolve,omitempty"`
	// DeadLetterSeq names the dead letter of a discard or a replay by its stream sequence.
	DeadLetterSeq uint64      `json:"dead_letter_seq,omitempty"`
	Settle        *SettleFact `json:"settle,omitempty"`
	// Deposits is an account statement to match (its Days say how late a credit may be).
	Deposits *SettleFact `json:"deposits,omitempty"`
	// Settings is the ledger's schedule a settings fact sets.
	Settings *store.Schedule `json:"settings,omitempty"`
	// Lease is the sweep's lease the fact was made under (sweep facts only): a fact whose term is
	// older than the lease of record at its point of the stream is refused (stale_lease).
	Lease *LeaseTerm `json:"lease,omitempty"`
}

// LeaseTerm names a holder's term of the sweep's lease.
type LeaseTerm struct {
	Holder string `json:"holder"`
	// Epoch is when the lease bucket was made (a bucket made again restarts its revisions).
	Epoch int64  `json:"epoch,omitempty"`
	Term  uint64 `json:"term"`
}

// SweepLeaseName is the lease of record sweep facts are fenced by.
const SweepLeaseName = "sweep"

// fenced reports whether facts of kind are the sweep's, made only by the lease's holder.
func fenced(kind string) bool {
	switch kind {
	case FactCheck, FactSchedule, FactKNET, FactStuck, FactAlerted, FactSettings:
		return true
	}
	return false
}

// SettleFact is a bank statement to match, with how to read it.
type SettleFact struct {
	// File names the statement; Statement is its exact bytes, or StatementGzip them gzipped (a
	// statement of more than GzipOver bytes: 100,000 lines fit a message so).
	File          string `json:"file"`
	Statement     []byte `json:"statement,omitempty"`
	StatementGzip []byte `json:"statement_gzip,omitempty"`
	// Columns map the column keys to the bank's headers.
	Columns map[string]string `json:"columns"`
	// TZ is the time zone of the statement's days; Date, when set, the day it covers.
	TZ   string `json:"tz"`
	Date string `json:"date,omitempty"`
	// NotSettledAfter: a capture or refund older than this that the statement lacks opens not_settled.
	NotSettledAfter time.Duration `json:"not_settled_after"`
	// The rest of the bank's layout (statement.Layout), so that every ledger reads the file alike;
	// each is left out when it is the default, as in every fact older than layouts: the sheet of a
	// workbook, the date format, the amounts' unit, sign, currency and decimal separator, a CSV's
	// separator and encoding.
	Sheet      string `json:"sheet,omitempty"`
	DateFormat string `json:"date_format,omitempty"`
	Unit       string `json:"unit,omitempty"`
	Sign       string `json:"sign,omitempty"`
	Currency   string `json:"currency,omitempty"`
	Decimal    string `json:"decimal,omitempty"`
	Separator  string `json:"separator,omitempty"`
	Encoding   string `json:"encoding,omitempty"`
	// Days is, for an account statement, how many days after its posting day a credit may arrive.
	Days int `json:"days,omitempty"`
}

// Layout is how the fact's statement is read.
func (s *SettleFact) Layout() statement.Layout {
	return statement.Layout{Columns: s.Columns, Sheet: s.Sheet, DateFormat: s.DateFormat, Unit: s.Unit, Sign: s.Sign,
		Currency: s.Currency, Decimal: s.Decimal, Separator: s.Separator, Encoding: s.Encoding}
}

// GzipOver is the size above which a statement travels gzipped in its fact.
const GzipOver = 256 << 10

// maxStatementBytes bounds a gzipped statement's size once read (a fact is signed, so this only
// guards memory against a mistake).
const maxStatementBytes = 1 << 30

// SettleFactOf is the fact of statement raw, named file, read with layout l.
func SettleFactOf(file string, raw []byte, l statement.Layout) *SettleFact {
	f := &SettleFact{File: file, Columns: l.Columns, Sheet: l.Sheet, DateFormat: l.DateFormat, Unit: l.Unit,
		Sign: l.Sign, Currency: l.Currency, Decimal: l.Decimal, Separator: l.Separator, Encoding: l.Encoding}
	if len(raw) <= GzipOver {
		f.Statement = raw
		return f
	}
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	_, _ = zw.Write(raw) // into memory: cannot fail
	_ = zw.Close()
	f.StatementGzip = b.Bytes()
	return f
}

// Bytes returns the statement's exact bytes.
func (s *SettleFact) Bytes() ([]byte, error) {
	if s.StatementGzip == nil {
		return s.Statement, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(s.StatementGzip))
	if err != nil {
		return nil, fmt.Errorf("statement %s: %w", s.File, err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxStatementBytes+1))
	if err == nil && len(raw) > maxStatementBytes {
		err = fmt.Errorf("larger than %d bytes", maxStatementBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("statement %s: %w", s.File, err)
	}
	return raw, nil
}

// OperatorNote is who did an operator's action and what they wrote.
type OperatorNote struct {
	Who  string `json:"who"`
	Note string `json:"note,omitempty"`
}

// CheckFact is what one check of a payment learned and decided.
type CheckFact struct {
	PaymentID      string            `json:"payment_id"`
	LedgerStatus   payment.Status    `json:"ledger_status"`
	Age            string            `json:"age"`
	Outcome        string            `json:"outcome"`
	ProviderStatus string            `json:"provider_status,omitempty"`
	Payment        *checkout.Payment `json:"payment,omitempty"`
	Actions        []checkout.Action `json:"actions,omitempty"`
	NotFound       bool              `json:"not_found,omitempty"`
	StuckReason    string            `json:"stuck_reason,omitempty"`
	NextCheckAt    time.Time         `json:"next_check_at"`
	Verify         bool              `json:"verify,omitempty"`
	VerifiedFrom   time.Time         `json:"verified_from"`
	KeepSchedule   bool              `json:"keep_schedule,omitempty"`
	Action         string            `json:"action,omitempty"`
	LatencyMS      int64             `json:"latency_ms"`
	Error          string            `json:"error,omitempty"`
}

// ScheduleFact sets a payment's next check.
type ScheduleFact struct {
	PaymentID   string    `json:"payment_id"`
	NextCheckAt time.Time `json:"next_check_at"`
}

// KNETFact is the API's answer about a captured payment's KNET ids (NotFound: it has none to give).
type KNETFact struct {
	PaymentID string            `json:"payment_id"`
	Payment   *checkout.Payment `json:"payment,omitempty"`
	NotFound  bool              `json:"not_found,omitempty"`
}

// StuckFact lists payments newly stuck and payments no longer stuck.
type StuckFact struct {
	New      []StuckMark `json:"new,omitempty"`
	Resolved []string    `json:"resolved,omitempty"`
}

// StuckMark is one payment newly stuck, and why.
type StuckMark struct {
	PaymentID      string `json:"payment_id"`
	Reason         string `json:"reason"`
	LedgerStatus   string `json:"ledger_status"`
	ProviderStatus string `json:"provider_status,omitempty"`
}

// AlertedFact is an alert announced: a discrepancy's opening, or its resolution.
type AlertedFact struct {
	store.DiscrepancyKey
	Resolved bool `json:"resolved,omitempty"`
	// Both: the opening and the resolution were announced at once.
	Both bool `json:"both,omitempty"`
}

// FactResult is what applying a fact did in the ledger that applied it.
type FactResult struct {
	// Outcome is a check's outcome as applied (recovered when the API taught the ledger money).
	Outcome       string   `json:"outcome,omitempty"`
	Applied       []string `json:"applied,omitempty"`
	Discrepancies []string `json:"discrepancies,omitempty"`
	// Refused says why an operator's fact changed nothing (not found, already handled).
	Refused string `json:"refused,omitempty"`
	// Result is an operator's action's result, as the audit trail keeps it.
	Result string `json:"result,omitempty"`
	// Duplicate: the stream already held this fact (published before); the result is that of
	// its one application.
	Duplicate bool `json:"duplicate,omitempty"`
	// Waiting: published and stored, not applied here within the wait (the consumer is behind).
	Waiting bool `json:"waiting,omitempty"`
	// Seq is the fact's stream sequence.
	Seq uint64 `json:"seq,omitempty"`
	// Settle is a settlement run's report, as settle.Report in JSON.
	Settle json.RawMessage `json:"settle,omitempty"`
	// Deposits is a deposits run's report, as settle.DepositsReport in JSON.
	Deposits json.RawMessage `json:"deposits,omitempty"`

	// again: this ledger had applied the fact already; nothing was written.
	again bool
}

// applyFact writes fact f in tx. Refusals an operator must hear (a discrepancy already resolved)
// are results, not errors: the fact is done either way, in every ledger alike. Only an error the
// ledger raises is returned.
func (p *Processor) applyFact(ctx context.Context, tx *store.Tx, f *Fact, seq uint64) (FactResult, error) {
	var res FactResult
	if f.Lease != nil && fenced(f.Kind) {
		// Before anything is written: a stale holder's fact changes nothing, in every ledger.
		if err := tx.FenceLease(ctx, SweepLeaseName, f.Lease.Holder, f.Lease.Epoch, f.Lease.Term); err != nil {
			return res, err
		}
	}
	if first, err := tx.FactOnce(ctx, f.ID, f.Kind, seq); err != nil || !first {
		// Delivered again (after a crash between commit and ack, a replay, a one-shot command's
		// catch-up beside a running consumer): applied already, its result stored then.
		return FactResult{again: true}, err
	}
	switch f.Kind {
	case FactCheck:
		if f.Check == nil {
			return res, errors.New("check fact without its check")
		}
		return applyCheck(ctx, tx, f)
	case FactSchedule:
		if f.Schedule == nil {
			return res, errors.New("schedule fact without its schedule")
		}
		return res, tx.Reschedule(ctx, f.Schedule.PaymentID, f.Schedule.NextCheckAt)
	case FactKNET:
		k := f.KNET
		if k == nil {
			return res, errors.New("knet fact without its answer")
		}
		ids := store.KNETIDs{}
		if !k.NotFound && k.Payment != nil {
			ins := apiInputs(k.PaymentID, k.Payment, nil, f.At)
			snap := ins[len(ins)-1]
			if _, err := tx.Apply(ctx, snap); err != nil {
				return res, err
			}
			if snap.KNET != nil {
				ids = *snap.KNET
			}
		}
		return res, tx.SaveKNET(ctx, k.PaymentID, ids)
	case FactStuck:
		if f.Stuck == nil {
			return res, errors.New("stuck fact without its list")
		}
		for _, m := range f.Stuck.New {
			if err := markStuck(ctx, tx, m.PaymentID, map[string]any{
				"reason": m.Reason, "ledger_status": m.LedgerStatus, "provider_status": m.ProviderStatus}); err != nil {
				return res, err
			}
		}
		for _, id := range f.Stuck.Resolved {
			if _, err := tx.ResolveOpen(ctx, id, KindStuck, "payment became final"); err != nil {
				return res, err
			}
		}
		return res, nil
	case FactSettings:
		if f.Settings == nil {
			return res, errors.New("settings fact without its settings")
		}
		return res, tx.SetSchedule(ctx, *f.Settings, f.By)
	case FactAlerted:
		a := f.Alerted
		if a == nil {
			return res, errors.New("alerted fact without its alert")
		}
		id, err := tx.DiscrepancyID(ctx, a.DiscrepancyKey)
		if errors.Is(err, store.ErrNotFound) {
			res.Refused = err.Error()
			return res, nil
		}
		if err != nil {
			return res, err
		}
		al := store.Alert{Discrepancy: store.Discrepancy{ID: id}, Resolved: a.Resolved}
		if a.Both {
			t := f.At
			al.ResolvedAt = &t
		}
		return res, tx.MarkAlerted(ctx, al)
	case FactResolve:
		if f.Resolve == nil || f.Operator == nil {
			return res, errors.New("resolve fact without its discrepancy or operator")
		}
		id, err := tx.DiscrepancyID(ctx, *f.Resolve)
		if err == nil {
			err = tx.ResolveDiscrepancy(ctx, id, f.Operator.Who, "by hand ("+f.Operator.Who+"): "+f.Operator.Note)
		}
		subject := fmt.Sprintf("discrepancy:%d", id)
		if id == 0 {
			subject = "discrepancy:" + f.Resolve.PaymentID + "/" + string(f.Resolve.Kind)
		}
		return operatorDone(ctx, tx, f, "resolve", subject, "resolved", err)
	case FactDiscard:
		if f.Operator == nil {
			return res, errors.New("discard fact without its operator")
		}
		id, err := tx.DeadLetterID(ctx, f.DeadLetterSeq)
		if err == nil {
			err = tx.DiscardDeadLetter(ctx, id, f.Operator.Who, f.Operator.Note)
		}
		return operatorDone(ctx, tx, f, "discard", fmt.Sprintf("dead_letter:%d", id), "discarded", err)
	case FactReplay:
		if f.Operator == nil {
			return res, errors.New("replay fact without its operator")
		}
		id, err := tx.DeadLetterID(ctx, f.DeadLetterSeq)
		result := ""
		if err == nil {
			var r store.Result
			r, err = p.replayIn(ctx, tx, id)
			result = describe(r)
		}
		return operatorDone(ctx, tx, f, "replay", fmt.Sprintf("dead_letter:%d", id), result, err)
	case FactSettle:
		st := f.Settle
		if st == nil || f.Operator == nil {
			return res, errors.New("settle fact without its statement or operator")
		}
		var rep *settle.Report
		// In a savepoint: a statement refused halfway leaves nothing behind.
		err := tx.Savepoint(ctx, func() error {
			var err error
			rep, err = applySettle(ctx, tx, f)
			return err
		})
		if store.IsTransient(err) {
			return res, err
		}
		result := ""
		if err == nil {
			res.Settle, _ = json.Marshal(rep)
			result = fmt.Sprintf("%d matched, %d in the ledger only, %d on the statement only, %d with another amount",
				rep.Matched, len(rep.LedgerOnly), len(rep.StatementOnly), len(rep.AmountMismatch))
			if rep.Again {
				result = "recorded before: nothing written again"
			}
		}
		done, derr := operatorDone(ctx, tx, f, "settle", "statement:"+st.File, result, err)
		done.Settle = res.Settle
		return done, derr
	case FactDeposits:
		st := f.Deposits
		if st == nil || f.Operator == nil {
			return res, errors.New("deposits fact without its statement or operator")
		}
		var rep *settle.DepositsReport
		err := tx.Savepoint(ctx, func() error {
			loc, err := time.LoadLocation(st.TZ)
			if err != nil {
				return fmt.Errorf("deposits: time zone %q: %w", st.TZ, err)
			}
			raw, err := st.Bytes()
			if err != nil {
				return err
			}
			rep, err = settle.ApplyDeposits(ctx, tx, raw, settle.DepositOptions{File: st.File, Layout: st.Layout(), Location: loc, Days: st.Days})
			return err
		})
		if store.IsTransient(err) {
			return res, err
		}
		result := ""
		if err == nil {
			res.Deposits, _ = json.Marshal(rep)
			result = fmt.Sprintf("%d matched, %d missing, %d with another amount, %d unexpected, %d waiting",
				len(rep.Matched), len(rep.Missing), len(rep.AmountMismatch), len(rep.Unexpected), len(rep.Waiting))
			if rep.Again {
				result = "recorded before: nothing written again"
			}
		}
		done, derr := operatorDone(ctx, tx, f, "deposits", "account_statement:"+st.File, result, err)
		done.Deposits = res.Deposits
		return done, derr
	}
	return res, fmt.Errorf("fact kind %q unknown to this reconciler (newer than it?)", f.Kind)
}

// applySettle matches a statement in tx, on the fact's clock.
func applySettle(ctx context.Context, tx *store.Tx, f *Fact) (*settle.Report, error) {
	st := f.Settle
	loc, err := time.LoadLocation(st.TZ)
	if err != nil {
		return nil, fmt.Errorf("settle: time zone %q: %w", st.TZ, err)
	}
	at := f.At
	raw, err := st.Bytes()
	if err != nil {
		return nil, err
	}
	return settle.Apply(ctx, tx, raw, settle.Options{File: st.File, Layout: st.Layout(), Location: loc,
		Date: st.Date, NotSettledAfter: st.NotSettledAfter, Now: func() time.Time { return at }})
}

// describe says what a replayed dead letter did, for the operator.
func describe(r store.Result) string {
	out := string(r.Outcome)
	if r.PaymentID != "" {
		out += " on " + r.PaymentID
	}
	if r.From != r.To {
		out += fmt.Sprintf(" (%s → %s)", r.From, r.To)
	}
	return out
}

// operatorDone keeps an operator's action in the audit trail with its result; a refusal (not
// found, already handled) is the result, not a failure of the batch.
func operatorDone(ctx context.Context, tx *store.Tx, f *Fact, action, subject, result string, err error) (FactResult, error) {
	var res FactResult
	if err != nil {
		if store.IsTransient(err) {
			return res, err
		}
		res.Refused = err.Error()
		result = "failed: " + err.Error()
	}
	res.Result = result
	return res, tx.RecordAction(ctx, store.Action{At: f.At, Who: f.Operator.Who, Action: action, Subject: subject, Note: f.Operator.Note, Result: result})
}

// applyCheck writes one check: the API's facts through Apply (money no webhook brought is a
// recovered lost webhook), the provider's view compared with the ledger's, the stuck mark, and
// the check itself with the payment's next check.
func applyCheck(ctx context.Context, tx *store.Tx, f *Fact) (FactResult, error) {
	c := f.Check
	res := FactResult{Outcome: c.Outcome}
	var inputs []store.Input
	if c.Payment != nil {
		inputs = apiInputs(c.PaymentID, c.Payment, c.Actions, f.At)
	}
	for _, in := range inputs {
		r, err := tx.Apply(ctx, in)
		if err != nil {
			return res, err
		}
		if r.Outcome == store.OutcomeDuplicate {
			continue
		}
		res.Applied = append(res.Applied, fmt.Sprintf("%s %s: %s", in.Type, in.EventID, r.Outcome))
		for _, k := range r.Discrepancies {
			res.Discrepancies = append(res.Discrepancies, string(k))
		}
		if payment.MovesMoney(in.Type) && (r.Outcome == store.OutcomeApplied || r.Outcome == store.OutcomeHeld) {
			// Money no webhook told us about: a lost webhook, recovered.
			res.Outcome = CheckRecovered
			added, err := tx.AddDiscrepancy(ctx, c.PaymentID, payment.KindWebhookMissing, in.ActionID, store.OriginAPI, map[string]any{
				"action_id": in.ActionID, "type": in.Type, "amount": in.Amount, "currency": in.Currency,
				"provider_status": c.Payment.Status, "detail": "learned from GET /payments/{id}/actions; no webhook had brought it"})
			if err != nil {
				return res, err
			}
			if added {
				res.Discrepancies = append(res.Discrepancies, string(payment.KindWebhookMissing))
			}
		}
	}
	if c.NotFound {
		if _, err := tx.AddOrReopenDiscrepancy(ctx, c.PaymentID, payment.KindUnknownAtProvider, "", store.OriginAPI, map[string]any{
			"ledger_status": string(c.LedgerStatus), "checked_at": f.At, "detail": "GET /payments answered 404"}); err != nil {
			return res, err
		}
	}
	if pay := c.Payment; pay != nil {
		// Compare after learning: what the ledger holds now against what the API says, both
		// ways. A difference is a discrepancy with both sides' figures, never an overwrite.
		v := store.ProviderView{Status: payment.Status(pay.Status), Currency: pay.Currency, AskedAt: f.At}
		if pay.Balances != nil {
			v.Balances, v.Captured, v.Refunded = true, pay.Balances.TotalCaptured, pay.Balances.TotalRefunded
		}
		kinds, err := tx.CompareWithProvider(ctx, c.PaymentID, v)
		if err != nil {
			return res, err
		}
		for _, k := range kinds {
			res.Discrepancies = append(res.Discrepancies, string(k))
		}
	}
	if c.StuckReason != "" {
		if err := markStuck(ctx, tx, c.PaymentID, map[string]any{
			"reason": c.StuckReason, "ledger_status": string(c.LedgerStatus), "age": c.Age}); err != nil {
			return res, err
		}
	}
	details, _ := json.Marshal(map[string]any{"applied": res.Applied, "discrepancies": res.Discrepancies})
	if err := tx.RecordSweepCheck(ctx, store.SweepCheck{
		Check: store.Check{PaymentID: c.PaymentID, CheckedAt: f.At, ProviderStatus: c.ProviderStatus, Outcome: res.Outcome,
			Details: string(details), NextCheckAt: c.NextCheckAt, Verify: c.Verify, VerifiedFrom: c.VerifiedFrom,
			KeepSchedule: c.KeepSchedule},
		Action: c.Action, Latency: time.Duration(c.LatencyMS) * time.Millisecond, Error: c.Error,
	}); err != nil {
		return res, err
	}
	if f.Operator != nil {
		result := res.Outcome
		if c.ProviderStatus != "" {
			result += " (Checkout.com says " + c.ProviderStatus + ")"
		}
		if c.Error != "" {
			result = "failed: " + c.Outcome + ": " + c.Error
		}
		if err := tx.RecordAction(ctx, store.Action{At: f.At, Who: f.Operator.Who, Action: "check", Subject: "payment:" + c.PaymentID,
			Note: f.Operator.Note, Result: result}); err != nil {
			return res, err
		}
		res.Result = result
	}
	return res, nil
}

// markStuck opens the stuck mark of a payment, or reopens it when it was resolved while the
// payment stayed open. A payment final by this point of the stream is not stuck, whatever the
// sweep saw when it looked: its mark stays as it is.
func markStuck(ctx context.Context, tx *store.Tx, paymentID string, details map[string]any) error {
	final, err := tx.PaymentFinal(ctx, paymentID)
	if err != nil || final {
		return err
	}
	_, err = tx.AddOrReopenDiscrepancy(ctx, paymentID, KindStuck, "", store.OriginAPI, details)
	return err
}

// ErrNoFactKeys means a fact arrived and this reconciler has no key to verify it with.
var ErrNoFactKeys = errors.New("no KNETRECON_FACT_KEYS to verify a reconciler's fact")

// decodeFact verifies a fact's signature under the reconcilers' keys and decodes it.
func decodeFact(keys *checkout.KeyRing, body []byte, signature string) (*Fact, error) {
	if keys == nil {
		return nil, ErrNoFactKeys
	}
	if _, err := keys.Verify(body, signature); err != nil {
		return nil, fmt.Errorf("fact not signed by a reconciler's key (KNETRECON_FACT_KEYS): %w", err)
	}
	var f Fact
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, fmt.Errorf("%w: fact: %w", ErrUndecodable, err)
	}
	if f.Kind == "" || f.ID == "" || f.At.IsZero() {
		return nil, fmt.Errorf("%w: fact without its kind, id or time", ErrUndecodable)
	}
	return &f, nil
}

// FactBus publishes facts and reads back what applying them did in this reconciler's ledger: the
// sweep and the operators' actions read their own writes. Every other reconciler applies the same
// facts from the stream.
//
// There is one way to wait for a fact's result, whoever applies it (this process's consumer, a
// `reconciler run` beside a one-shot command, or the command's own catch-up): publish, wait until
// the ledger's stream position passes the fact's sequence, then read the result the ledger
// stored with it (facts_applied.result).
type FactBus struct {
	pub    *events.Publisher
	ledger *store.Ledger
	proc   *Processor
	keys   atomic.Pointer[checkout.KeyRing]
	// By names this reconciler in the facts it publishes (its consumer name).
	By string
	// Wait bounds how long Commit waits for the fact to be applied here.
	Wait time.Duration
	// Poll is how often the ledger's position is read while waiting for another process to apply
	// a fact (this process's own consumer wakes the wait at once).
	Poll time.Duration
	// Fence, when set, returns the sweep's lease term this process holds (zero: none); the
	// sweep's facts carry it (see Fact.Lease).
	Fence func() LeaseTerm
	// CatchUp, when set, applies the stream to this ledger up to its end (a one-shot command with
	// the webhook keys); Commit calls it after publishing. A `reconciler run` on the same ledger
	// may apply the fact first: the result is read from the ledger either way.
	CatchUp func(ctx context.Context, upTo uint64) error
}

// NewFactBus returns a bus publishing on js and signing with keys. proc is this process's
// consumer, whose commits wake a wait at once; nil for a one-shot command.
func NewFactBus(js jetstream.JetStream, ledger *store.Ledger, proc *Processor, keys *checkout.KeyRing, by string) *FactBus {
	b := &FactBus{pub: events.NewPublisher(js), ledger: ledger, proc: proc, By: by, Wait: 30 * time.Second, Poll: 20 * time.Millisecond}
	b.keys.Store(keys)
	return b
}

// SetKeys puts ring in use to sign the next facts (at start, and when the keys are reloaded).
func (b *FactBus) SetKeys(ring *checkout.KeyRing) { b.keys.Store(ring) }

// ErrFactDeadLettered means this ledger set a published fact aside (forged under its keys, or
// undecodable) instead of applying it.
var ErrFactDeadLettered = errors.New("fact dead-lettered by this ledger")

// Commit publishes f, signed, and returns what applying it did in this ledger. A fact the stream
// held already (published before: Duplicate) returns the result of its first application. A fact
// not applied within Wait is a result (Waiting), not an error: it is stored and every ledger
// applies it. An error means it is not stored, or this ledger dead-lettered it.
func (b *FactBus) Commit(ctx context.Context, f Fact) (FactResult, error) {
	if f.By == "" {
		f.By = b.By
	}
	if b.Fence != nil && f.Lease == nil && fenced(f.Kind) {
		if term := b.Fence(); term.Term > 0 {
			f.Lease = &term
		}
	}
	body, err := json.Marshal(f)
	if err != nil {
		return FactResult{}, fmt.Errorf("fact %s: %w", f.ID, err)
	}
	keys := b.keys.Load()
	if keys == nil {
		return FactResult{}, ErrNoFactKeys
	}
	sig, key := keys.Sign(body)
	st, err := b.pub.PublishMsg(ctx, events.FactMessage(f.Kind, f.ID, body, sig, key))
	if err != nil {
		return FactResult{}, err
	}
	waiting := FactResult{Waiting: true, Duplicate: st.Duplicate, Seq: st.Seq}
	var caughtUp error
	if b.CatchUp != nil {
		// A failure here (the ledger busy with a running reconciler's batch) is not the end: that
		// reconciler applies the fact, and the wait below sees it.
		caughtUp = b.CatchUp(ctx, st.Seq)
	}
	wait := time.NewTimer(b.Wait)
	defer wait.Stop()
	tick := time.NewTicker(max(b.Poll, time.Millisecond))
	defer tick.Stop()
	for {
		var woken <-chan struct{}
		if b.proc != nil {
			woken = b.proc.advanced()
		}
		pos, err := b.ledger.Position(ctx)
		if err == nil && pos >= st.Seq {
			return b.result(ctx, f.ID, st)
		}
		if b.proc != nil && b.proc.Failing() {
			// The ledger refuses writes: the fact is stored and waits in the stream with the rest.
			return waiting, nil
		}
		select {
		case <-woken:
		case <-tick.C:
		case <-wait.C:
			if caughtUp != nil {
				return waiting, fmt.Errorf("fact %s stored (seq %d), not applied here: %w", f.ID, st.Seq, caughtUp)
			}
			return waiting, nil
		case <-ctx.Done():
			return waiting, nil
		}
	}
}

// result reads what applying fact id did, once the ledger's position has passed it.
func (b *FactBus) result(ctx context.Context, id string, st events.Stored) (FactResult, error) {
	res := FactResult{Seq: st.Seq, Duplicate: st.Duplicate}
	raw, ok, err := b.ledger.FactResult(ctx, id)
	if err != nil {
		return FactResult{Waiting: true, Seq: st.Seq}, err
	}
	if !ok {
		reason := "not recorded"
		if d, err := b.ledger.DeadLetterAt(ctx, st.Seq); err == nil {
			reason = fmt.Sprintf("dead letter %d: %s", d.ID, d.Reason)
		}
		return res, fmt.Errorf("%w (stream seq %d, %s): check that every reconciler has the same KNETRECON_FACT_KEYS", ErrFactDeadLettered, st.Seq, reason)
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &res); err != nil {
			return res, fmt.Errorf("fact %s: stored result: %w", id, err)
		}
		res.Seq, res.Duplicate, res.Waiting = st.Seq, st.Duplicate, false
	}
	return res, nil
}

// advance wakes every wait for this ledger's position (after a batch is committed).
func (p *Processor) advance() {
	p.advMu.Lock()
	if p.advCh != nil {
		close(p.advCh)
		p.advCh = nil
	}
	p.advMu.Unlock()
}

// advanced returns a channel closed at the next commit of a batch.
func (p *Processor) advanced() <-chan struct{} {
	p.advMu.Lock()
	defer p.advMu.Unlock()
	if p.advCh == nil {
		p.advCh = make(chan struct{})
	}
	return p.advCh
}

// factID builds a fact's id from its kind and parts.
func factID(kind string, parts ...string) string {
	return kind + ":" + strings.Join(parts, ":")
}

// stamp is a time in a fact id: the same instant always gives the same text.
func stamp(t time.Time) string { return t.UTC().Format("20060102T150405.000000000Z") }
