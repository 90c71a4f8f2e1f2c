package settle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/statement"
	"knetrecon/internal/store"
)

// Column keys of the merchant's account statement (the deposits' third leg). The date and the
// amount are needed; a credit column (with a debit column beside it) may stand for the amount.
const (
	DepColDate      = "date"
	DepColAmount    = "amount"
	DepColCredit    = "credit"
	DepColDebit     = "debit"
	DepColReference = "reference"
	// DepColBatch is the bank's batch or terminal: with it, each posting day expects one credit
	// per batch of the settlement statements.
	DepColBatch = "batch"
)

// DepositKeys lists the account statement's column keys, in documentation order.
var DepositKeys = []string{DepColDate, DepColAmount, DepColCredit, DepColDebit, DepColReference, DepColBatch}

// DefaultDepositDays is how many days after a posting day its credit may arrive (--days).
const DefaultDepositDays = 3

var depositSchema = statement.Schema{
	Columns: []statement.Column{
		{Key: DepColDate, Kind: statement.Date}, {Key: DepColAmount, Kind: statement.Money},
		{Key: DepColCredit, Kind: statement.Money}, {Key: DepColDebit, Kind: statement.Money},
		{Key: DepColReference, ID: true}, {Key: DepColBatch},
	},
	Need: [][]string{{DepColAmount, DepColCredit, DepColDebit}, {DepColDate}},
}

// Credit is one credit on the merchant's account statement.
type Credit struct {
	Line      int
	Date      time.Time
	Amount    int64
	Reference string
	Batch     string
}

// Account is a merchant's account statement as read: its credits, and the rows that are not
// credits (debits, blank, total and footer rows, rows that could not be read).
type Account struct {
	Format   string
	Credits  []Credit
	Skipped  []statement.Skip
	From, To time.Time // the days it covers, [From, To)
	ByBatch  bool
}

// ReadAccount reads a merchant's account statement (CSV or xlsx) laid out as l says: the same
// reader as the settlement statement's, with its own keys (DepositKeys).
func ReadAccount(raw []byte, l statement.Layout, loc *time.Location) (*Account, error) {
	cols := map[string]string{}
	for k, h := range l.Columns {
		if !contains(DepositKeys, k) {
			return nil, fmt.Errorf("unknown column key %q (keys: %s)", k, strings.Join(DepositKeys, ", "))
		}
		if !strings.EqualFold(strings.TrimSpace(h), k) {
			cols[k] = h
		}
	}
	l.Columns = cols
	t, err := statement.Read(raw, l, depositSchema, loc)
	if err != nil {
		return nil, err
	}
	if !t.Has(DepColAmount) && !t.Has(DepColCredit) {
		return nil, fmt.Errorf("%w: %s: no %q or %q column (headers found: %s)", statement.ErrFormat, t.Format, DepColAmount, DepColCredit,
			strings.Join(t.Header, ", "))
	}
	a := &Account{Format: t.Format, Skipped: t.Skipped, ByBatch: t.Has(DepColBatch)}
	for _, r := range t.Rows {
		d, ok := r.Date(DepColDate)
		if !ok {
			a.Skipped = append(a.Skipped, statement.Skip{Line: r.Line, Reason: "no date", Unreadable: true})
			continue
		}
		y, m, dd := d.In(loc).Date()
		day := time.Date(y, m, dd, 0, 0, 0, 0, loc)
		if a.From.IsZero() || day.Before(a.From) {
			a.From = day
		}
		if end := day.AddDate(0, 0, 1); end.After(a.To) {
			a.To = end
		}
		amount, ok := r.Amount(DepColAmount)
		if !ok {
			amount, ok = r.Amount(DepColCredit)
			if amount < 0 {
				amount = -amount // a credit column shows credits, whatever their sign
			}
		}
		if !ok || amount <= 0 {
			a.Skipped = append(a.Skipped, statement.Skip{Line: r.Line, Reason: "a debit, not a deposit"})
			continue
		}
		a.Credits = append(a.Credits, Credit{Line: r.Line, Date: d, Amount: amount, Reference: r.Text(DepColReference), Batch: r.Text(DepColBatch)})
	}
	sort.SliceStable(a.Skipped, func(i, j int) bool { return a.Skipped[i].Line < a.Skipped[j].Line })
	if a.From.IsZero() {
		return nil, fmt.Errorf("%w: %s: no dated row below the header", statement.ErrFormat, t.Format)
	}
	return a, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Deposit is one expected deposit of a posting day's net, and the credit that met it.
type Deposit struct {
	PostingDate string `json:"posting_date"`
	Batch       string `json:"batch,omitempty"`
	// Expected is the posting day's net on the settlement statements; Received the credit's
	// amount (absent when none arrived). Minor units.
	Expected *int64 `json:"expected,omitempty"`
	Received *int64 `json:"received,omitempty"`
	// Date, Line and Reference are the credit's, when there is one.
	Date      string `json:"date,omitempty"`
	Line      int    `json:"line,omitempty"`
	Reference string `json:"reference,omitempty"`
	// Note says more: "seen on an earlier account statement", "due by 2026-12-07".
	Note string `json:"note,omitempty"`
}

// DepositsReport is an account statement matched against the deposits the settlement
// statements promise.
type DepositsReport struct {
	File   string `json:"file"`
	Format string `json:"format"`
	From   string `json:"from"`
	To     string `json:"to"` // the last day it covers
	Days   int    `json:"days"`
	// Matched: credits of a posting day's net; Missing: no credit after Days; AmountMismatch:
	// a credit of another amount; Unexpected: credits of no posting day; Waiting: posting days
	// whose Days are not over by the statement's last day.
	Matched        []Deposit        `json:"matched"`
	Missing        []Deposit        `json:"missing"`
	Unexpected     []Deposit        `json:"unexpected"`
	AmountMismatch []Deposit        `json:"amount_mismatch"`
	Waiting        []Deposit        `json:"waiting"`
	Skipped        []statement.Skip `json:"skipped"`
	// Again reports an account statement recorded before: nothing written again.
	Again bool `json:"again,omitempty"`
}

// Differs reports whether the account and the statements disagree, or a row could not be read.
func (r *DepositsReport) Differs() bool {
	if len(r.Missing)+len(r.Unexpected)+len(r.AmountMismatch) > 0 {
		return true
	}
	for _, s := range r.Skipped {
		if s.Unreadable {
			return true
		}
	}
	return false
}

// DepositOptions say how to read and match an account statement.
type DepositOptions struct {
	File     string
	Layout   statement.Layout
	Location *time.Location
	// Days is how many days after its posting day a credit may arrive (DefaultDepositDays when 0).
	Days int
}

// CheckDeposits reads an account statement as ApplyDeposits will and returns the error a bad
// one gets.
func CheckDeposits(raw []byte, o DepositOptions) error {
	_, err := ReadAccount(raw, o.Layout, o.loc())
	return err
}

func (o DepositOptions) loc() *time.Location {
	if o.Location == nil {
		return time.UTC
	}
	return o.Location
}

// ApplyDeposits reads the merchant's account statement raw and matches its credits against
// the nets the recorded settlement statements promise, one per posting day (or per batch of a
// day when the account statement has a batch column), within Days after the posting day: a
// credit of the day's net matches; a lone credit of another amount in the window is an
// amount_mismatch; no credit once the window is over is missing; a credit of no posting day is
// unexpected. Missing and short deposits open deposit_missing and deposit_amount_mismatch, and
// a later account statement that shows the money resolves them. Applying the same account
// statement again changes nothing.
func ApplyDeposits(ctx context.Context, tx *store.Tx, raw []byte, o DepositOptions) (*DepositsReport, error) {
	loc := o.loc()
	days := o.Days
	if days <= 0 {
		days = DefaultDepositDays
	}
	acct, err := ReadAccount(raw, o.Layout, loc)
	if err != nil {
		return nil, err
	}
	last := acct.To.AddDate(0, 0, -1)
	rep := &DepositsReport{File: o.File, Format: acct.Format, From: acct.From.Format(time.DateOnly), To: last.Format(time.DateOnly), Days: days,
		Matched: []Deposit{}, Missing: []Deposit{}, Unexpected: []Deposit{}, AmountMismatch: []Deposit{}, Waiting: []Deposit{},
		Skipped: acct.Skipped}
	if rep.Skipped == nil {
		rep.Skipped = []statement.Skip{}
	}
	sum := sha256.Sum256(raw)
	sha := hex.EncodeToString(sum[:])
	// The posting days whose window [day, day+days] meets the statement's days.
	exp, err := tx.ExpectedDeposits(ctx, acct.From.AddDate(0, 0, -days).Format(time.DateOnly), last.Format(time.DateOnly), acct.ByBatch)
	if err != nil {
		return nil, err
	}
	used := make([]bool, len(acct.Credits))
	dayOf := func(c Credit) string { return c.Date.In(loc).Format(time.DateOnly) }
	within := func(e store.ExpectedDeposit, c Credit) bool {
		d := dayOf(c)
		end, _ := time.ParseInLocation(time.DateOnly, e.PostingDate, loc)
		return d >= e.PostingDate && d <= end.AddDate(0, 0, days).Format(time.DateOnly) && (!acct.ByBatch || c.Batch == e.Batch)
	}
	credit := func(e store.ExpectedDeposit, c Credit) Deposit {
		want, got := e.Net, c.Amount
		return Deposit{PostingDate: e.PostingDate, Batch: e.Batch, Expected: &want, Received: &got, Date: dayOf(c), Line: c.Line, Reference: c.Reference}
	}
	// A credit an earlier account statement recorded is that posting day's, seen again.
	var open []store.ExpectedDeposit
	for _, e := range exp {
		if e.Net <= 0 {
			continue // refunds beyond the captures: the bank debits the merchant, no deposit
		}
		if e.Paid == nil {
			open = append(open, e)
			continue
		}
		for i, c := range acct.Credits {
			if !used[i] && c.Amount == e.Paid.Amount && dayOf(c) == e.Paid.Date.In(loc).Format(time.DateOnly) && c.Reference == e.Paid.Reference {
				used[i] = true
				d := credit(e, c)
				d.Note = "seen on an earlier account statement (" + e.Paid.File + ")"
				rep.Matched = append(rep.Matched, d)
				break
			}
		}
	}
	// Exact amounts first, the earliest credit of each; then a lone credit left in a day's window
	// is that day's, of another amount.
	var paid []store.DepositCredit
	var left []store.ExpectedDeposit
	for _, e := range open {
		i := pick(acct.Credits, used, func(c Credit) bool { return within(e, c) && c.Amount == e.Net })
		if i < 0 {
			left = append(left, e)
			continue
		}
		used[i] = true
		c := acct.Credits[i]
		rep.Matched = append(rep.Matched, credit(e, c))
		paid = append(paid, store.DepositCredit{PostingDate: e.PostingDate, Batch: e.Batch, Line: c.Line, Date: c.Date, Amount: c.Amount, Reference: c.Reference})
	}
	for _, e := range left {
		var cands []int
		for i, c := range acct.Credits {
			if !used[i] && within(e, c) {
				cands = append(cands, i)
			}
		}
		end, _ := time.ParseInLocation(time.DateOnly, e.PostingDate, loc)
		due := end.AddDate(0, 0, days)
		if len(cands) > 1 {
			cands = closest(acct.Credits, cands, e.Net)
		}
		switch {
		case len(cands) == 1:
			used[cands[0]] = true
			rep.AmountMismatch = append(rep.AmountMismatch, credit(e, acct.Credits[cands[0]]))
		case due.Before(acct.To):
			want := e.Net
			rep.Missing = append(rep.Missing, Deposit{PostingDate: e.PostingDate, Batch: e.Batch, Expected: &want,
				Note: fmt.Sprintf("no credit of %s by %s", money(e.Net), due.Format(time.DateOnly))})
		default:
			want := e.Net
			rep.Waiting = append(rep.Waiting, Deposit{PostingDate: e.PostingDate, Batch: e.Batch, Expected: &want,
				Note: "due by " + due.Format(time.DateOnly)})
		}
	}
	for i, c := range acct.Credits {
		if !used[i] {
			got := c.Amount
			rep.Unexpected = append(rep.Unexpected, Deposit{Received: &got, Date: dayOf(c), Line: c.Line, Reference: c.Reference, Batch: c.Batch})
		}
	}
	result, _ := json.Marshal(rep)
	again, err := tx.RecordDeposits(ctx, store.DepositRun{SHA256: sha, File: o.File, From: acct.From, To: acct.To, Result: result}, paid)
	if err != nil || again {
		rep.Again = again
		return rep, err
	}
	subject := func(d Deposit) string {
		if d.Batch != "" {
			return "deposit:" + d.PostingDate + ":" + d.Batch
		}
		return "deposit:" + d.PostingDate
	}
	for _, d := range rep.Matched {
		by := fmt.Sprintf("deposited: %s line %d", o.File, d.Line)
		for _, k := range []payment.Kind{payment.KindDepositMissing, payment.KindDepositAmountMismatch} {
			if _, err := tx.ResolveOpenSubject(ctx, "", k, subject(d), by); err != nil {
				return nil, err
			}
		}
	}
	for _, d := range rep.Missing {
		if _, err := tx.AddOrReopenDiscrepancy(ctx, "", payment.KindDepositMissing, subject(d), store.OriginSettlement, map[string]any{
			"posting_date": d.PostingDate, "batch": d.Batch, "expected": *d.Expected, "statement": o.File,
			"detail": d.Note}); err != nil {
			return nil, err
		}
	}
	for _, d := range rep.AmountMismatch {
		if _, err := tx.AddOrReopenDiscrepancy(ctx, "", payment.KindDepositAmountMismatch, subject(d), store.OriginSettlement, map[string]any{
			"posting_date": d.PostingDate, "batch": d.Batch, "expected": *d.Expected, "received": *d.Received, "date": d.Date,
			"line": d.Line, "reference": d.Reference, "statement": o.File}); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// pick returns the first unused credit (the file is in date order, or nearly: the earliest
// date wins, then the line) that ok accepts, or -1.
func pick(cs []Credit, used []bool, ok func(Credit) bool) int {
	best := -1
	for i, c := range cs {
		if used[i] || !ok(c) {
			continue
		}
		if best < 0 || c.Date.Before(cs[best].Date) {
			best = i
		}
	}
	return best
}

// closest narrows several credits in a day's window to the one nearest the expected amount; two
// as near are left for a person (both stay unexpected, the day missing).
func closest(cs []Credit, idx []int, want int64) []int {
	var best []int
	var dist int64 = -1
	for _, i := range idx {
		d := abs(cs[i].Amount - want)
		switch {
		case dist < 0 || d < dist:
			best, dist = []int{i}, d
		case d == dist:
			best = append(best, i)
		}
	}
	return best
}

func money(minor int64) string {
	s, err := payment.Format(minor, "KWD")
	if err != nil {
		return fmt.Sprint(minor)
	}
	return s + " KWD"
}
