package settle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/statement"
	"knetrecon/internal/store"
)

// Options say how to read and match a statement.
type Options struct {
	// File names the statement in the run's record.
	File string
	// Mapping maps the column keys to the bank's headers; when set, it is the layout's columns.
	Mapping Mapping
	// Layout says how to read the file: its columns (unless Mapping is set), the sheet of a
	// workbook, the date format, the amounts' unit, sign and currency.
	Layout statement.Layout
	// Location is the time zone of the statement's days (the report time zone).
	Location *time.Location
	// Date, when set (YYYY-MM-DD), is the day the statement covers; otherwise the days its lines
	// name.
	Date string
	// NotSettledAfter: a ledger capture or refund older than this that the statement does not
	// show opens not_settled.
	NotSettledAfter time.Duration
	// Now is the clock for NotSettledAfter.
	Now func() time.Time
}

// Report is a settlement run: what was matched, and whether this statement was recorded before.
type Report struct {
	Result
	// From and To are the days the statement covers, [From, To).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Again reports a statement already recorded: nothing was written twice.
	Again bool `json:"again,omitempty"`
	// NotSettled counts the not_settled discrepancies opened by this run.
	NotSettled int `json:"not_settled_opened"`
	// Format names the file's format as read (CSV with its encoding and separator, or xlsx and
	// its sheet).
	Format string `json:"format,omitempty"`
	// Skipped are the rows below the header that are not lines: blank, total and footer rows,
	// and rows that could not be read (Unreadable), each with its line and why.
	Skipped []statement.Skip `json:"skipped"`
	// Totals are the statement's gross, the bank's commission and the net it pays, signed.
	Totals Totals `json:"totals"`
	// NetMismatch lists the lines whose amount less fee is not their net.
	NetMismatch []NetMismatch `json:"net_mismatch"`
}

// read reads the statement as o says.
func (o Options) read(raw []byte) (*Statement, error) {
	l := o.Layout
	if o.Mapping != nil {
		l.Columns = o.Mapping
	}
	return Read(raw, l, o.Location)
}

// Check reads a statement as Apply will, and returns the error a bad one gets: a command says
// so before it publishes anything.
func Check(raw []byte, o Options) error {
	st, err := o.read(raw)
	if err != nil {
		return err
	}
	_, _, err = period(st.Lines, o)
	return err
}

// Apply reads the statement raw, matches it (see Match) against the ledger's captures and
// refunds of its days and of the MaxPostingLagDays before, and records the run in tx: which line
// paid which posting, a not_settled for each posting expected on its days, older than
// NotSettledAfter, that no line paid, an amount_mismatch for each line matched with another
// amount. A posting an earlier statement of other days paid is not missing from this one.
// Applying the same statement again changes nothing. It runs where the reconcilers' facts are
// applied, so every replica of the ledger records the same run.
func Apply(ctx context.Context, tx *store.Tx, raw []byte, o Options) (*Report, error) {
	st, err := o.read(raw)
	if err != nil {
		return nil, err
	}
	lines := st.Lines
	from, to, err := period(lines, o)
	if err != nil {
		return nil, err
	}
	// The bank posts a capture on its day or up to MaxPostingLagDays later: the postings of the
	// days before the statement's may be on it too.
	rows, err := tx.SettlementEntries(ctx, from.AddDate(0, 0, -MaxPostingLagDays), to)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	sha := hex.EncodeToString(sum[:])
	entries := make([]Entry, len(rows))
	for i, e := range rows {
		entries[i] = Entry{PaymentID: e.PaymentID, ActionID: e.ActionID, Kind: e.Kind, Amount: e.Amount, At: e.At, Reference: e.Reference,
			KNETPaymentID: e.KNETPaymentID, KNETTransactionID: e.KNETTransactionID, BankReference: e.BankReference, PostDate: e.PostDate,
			PaidBefore: paidBefore(e.Paid, sha, from, to)}
	}
	rep := &Report{Result: Match(lines, entries, Period{From: from, To: to, Location: o.Location}), From: from, To: to,
		Format: st.Format, Skipped: st.Skipped, Totals: st.Totals(), NetMismatch: st.NetMismatch}
	if rep.Skipped == nil {
		rep.Skipped = []statement.Skip{}
	}
	if rep.NetMismatch == nil {
		rep.NetMismatch = []NetMismatch{}
	}
	result, _ := json.Marshal(rep.Result)
	run := store.SettlementRun{SHA256: sha, File: o.File, From: from, To: to, Lines: len(lines),
		Matched: rep.Matched, LedgerOnly: len(rep.LedgerOnly), StatementOnly: len(rep.StatementOnly), Mismatch: len(rep.AmountMismatch),
		Result: result}
	// Every line met a posting or not; each is kept with its day, so that the deposits it
	// promises can be matched against the merchant's account.
	matches := make([]store.SettlementMatch, 0, len(rep.Matches))
	matchOf := map[int]string{}
	for _, m := range rep.Matches {
		matches = append(matches, store.SettlementMatch{PaymentID: m.PaymentID, ActionID: m.ActionID, Line: m.Line, StatementAmount: *m.StatementAmount,
			Fee: m.Fee, Net: m.Net, OK: *m.LedgerAmount == *m.StatementAmount})
		matchOf[m.Line] = m.ActionID
	}
	stLines := make([]store.StatementLine, len(lines))
	for i, l := range lines {
		day := from
		if !l.Date.IsZero() {
			day = l.Date
		}
		stLines[i] = store.StatementLine{Line: l.Number, PostingDate: day.In(o.Location).Format(time.DateOnly), Batch: l.Batch, Kind: l.Kind,
			Gross: l.Signed(), Net: l.Net, Fee: l.fee(), ActionID: matchOf[l.Number]}
	}
	now := tx.Now()
	if o.Now != nil {
		now = o.Now()
	}
	at := map[string]time.Time{}
	for _, e := range entries {
		at[e.ActionID] = e.At
	}
	_, again, err := tx.RecordSettlement(ctx, run, matches, stLines...)
	if err != nil || again {
		rep.Again = again
		return rep, err
	}
	// A line of the posting's amount pays it: what an earlier statement left open about it (not
	// on the statement, another amount) is settled by this line.
	open, err := tx.OpenSubjects(ctx, payment.KindNotSettled, payment.KindAmountMismatch)
	if err != nil {
		return nil, err
	}
	for _, m := range matches {
		if !m.OK {
			continue
		}
		by := fmt.Sprintf("settled by %s line %d", o.File, m.Line)
		for _, d := range []struct {
			kind    payment.Kind
			subject string
		}{{payment.KindNotSettled, m.ActionID}, {payment.KindAmountMismatch, "settlement:" + m.ActionID}} {
			if !open[store.SubjectKey(m.PaymentID, d.kind, d.subject)] {
				continue
			}
			if _, err := tx.ResolveOpenSubject(ctx, m.PaymentID, d.kind, d.subject, by); err != nil {
				return nil, err
			}
		}
	}
	for _, it := range rep.LedgerOnly {
		if now.Sub(at[it.ActionID]) < o.NotSettledAfter {
			continue
		}
		added, err := tx.AddDiscrepancy(ctx, it.PaymentID, payment.KindNotSettled, it.ActionID, store.OriginSettlement, map[string]any{
			"action_id": it.ActionID, "kind": it.Kind, "ledger_amount": *it.LedgerAmount, "statement": o.File,
			"detail": "not on the acquiring bank's statement of its day"})
		if err != nil {
			return nil, err
		}
		if added {
			rep.NotSettled++
		}
	}
	for _, it := range rep.AmountMismatch {
		if _, err := tx.AddDiscrepancy(ctx, it.PaymentID, payment.KindAmountMismatch, "settlement:"+it.ActionID, store.OriginSettlement,
			map[string]any{"action_id": it.ActionID, "ledger_amount": *it.LedgerAmount, "statement_amount": *it.StatementAmount,
				"line": it.Line, "statement": o.File}); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// paidBefore names the line that paid a posting when it is another statement's, of other days
// than [from, to): the bank posted that money already, on another day. A statement of the same
// days (this one applied again, or the bank's corrected copy) meets its postings afresh, and so
// does any statement when the earlier line had another amount (a correction).
func paidBefore(p *store.SettlementPaid, sha string, from, to time.Time) string {
	if p == nil || !p.OK || p.SHA256 == sha || p.From.Before(to) && from.Before(p.To) {
		return ""
	}
	file := p.File
	if file == "" {
		file = p.SHA256[:min(12, len(p.SHA256))]
	}
	return fmt.Sprintf("statement %s line %d", file, p.Line)
}

// period is the days the statement covers: Date, or the days its lines name.
func period(lines []Line, o Options) (from, to time.Time, err error) {
	if o.Date != "" {
		d, err := time.ParseInLocation(time.DateOnly, o.Date, o.Location)
		if err != nil {
			return from, to, fmt.Errorf("--date %q: want YYYY-MM-DD", o.Date)
		}
		return d, d.AddDate(0, 0, 1), nil
	}
	for _, l := range lines {
		if l.Date.IsZero() {
			continue
		}
		y, m, d := l.Date.In(o.Location).Date()
		day := time.Date(y, m, d, 0, 0, 0, 0, o.Location)
		if from.IsZero() || day.Before(from) {
			from = day
		}
		if end := day.AddDate(0, 0, 1); end.After(to) {
			to = end
		}
	}
	if from.IsZero() {
		return from, to, errors.New("the statement's lines carry no date: give the day it covers with --date YYYY-MM-DD")
	}
	return from, to, nil
}
