// Package settle matches the acquiring bank's KNET settlement statement against the ledger. KNET
// on Checkout.com is a gateway model: the merchant's KNET acquiring bank settles the money, so
// the line that proves a capture was paid is on the bank's statement, keyed by KNET's own ids.
// Reading the bank's file (CSV or xlsx, its header, layout and encoding) is package statement's;
// what its rows mean and matching them are pure (this package); recording a run is the store's.
package settle

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"knetrecon/internal/statement"
)

// Column keys of a statement (the names --columns maps to the bank's headers).
const (
	ColTransactionID = "knet_transaction_id"
	ColPaymentID     = "knet_payment_id"
	ColBankReference = "bank_reference"
	ColAuthCode      = "auth_code"
	ColReference     = "reference"
	ColAmount        = "amount"       // major units with up to 3 decimals: 3.500
	ColAmountMinor   = "amount_minor" // fils
	ColDate          = "date"
	ColKind          = "kind" // capture or refund; capture when absent
	// ColFee is the bank's commission on the line (major units, like amount); never a difference.
	ColFee = "fee"
	// ColNet is what the bank pays the merchant for the line: amount less fee (negative for a
	// refund). With fee and no amount, the gross is net + fee.
	ColNet = "net"
	// ColBatch is the bank's batch or terminal: the merchant's account gets one credit per batch
	// of a day when its statement says so.
	ColBatch = "batch"
)

// Keys lists every column key, in documentation order.
var Keys = []string{ColTransactionID, ColPaymentID, ColBankReference, ColAuthCode, ColReference, ColAmount, ColAmountMinor, ColDate, ColKind,
	ColFee, ColNet, ColBatch}

// schema is what a statement's rows are read as: an amount, and a key to find the posting by.
var schema = statement.Schema{
	Columns: []statement.Column{
		{Key: ColTransactionID, ID: true}, {Key: ColPaymentID, ID: true}, {Key: ColBankReference, ID: true},
		{Key: ColAuthCode}, {Key: ColReference, ID: true},
		{Key: ColAmount, Kind: statement.Money}, {Key: ColAmountMinor, Kind: statement.MoneyMinor},
		{Key: ColDate, Kind: statement.Date}, {Key: ColKind},
		{Key: ColFee, Kind: statement.Money}, {Key: ColNet, Kind: statement.Money}, {Key: ColBatch},
	},
	Need: [][]string{{ColAmount, ColAmountMinor, ColNet}, {ColTransactionID, ColPaymentID, ColBankReference, ColReference}},
}

// Mapping maps column keys to the bank's header names (matched case-insensitively, spaces trimmed).
type Mapping map[string]string

// DefaultMapping names each column by its key ("knet_transaction_id", "amount", …).
func DefaultMapping() Mapping {
	m := Mapping{}
	for _, k := range Keys {
		m[k] = k
	}
	return m
}

// ParseMapping reads "key=Header,key=Header" over the default mapping; an unknown key is an error.
func ParseMapping(s string) (Mapping, error) {
	cols, err := statement.ParseColumns(s)
	if err != nil {
		return nil, fmt.Errorf("--columns %w", err)
	}
	return DefaultMapping().With(cols)
}

// With returns m with cols mapped over it (a layout file's columns, then --columns'); an unknown
// key is an error that lists the keys.
func (m Mapping) With(cols map[string]string) (Mapping, error) {
	out := Mapping{}
	for k, v := range m {
		out[k] = v
	}
	for k, v := range cols {
		if _, known := out[k]; !known {
			return nil, fmt.Errorf("unknown column key %q (keys: %s)", k, strings.Join(Keys, ", "))
		}
		out[k] = v
	}
	return out, nil
}

// Line is one line of the bank's statement.
type Line struct {
	// Number is the line in the file (a CSV's line, a workbook's row), so that a person finds it.
	Number                                                       int
	TransactionID, PaymentID, BankReference, AuthCode, Reference string
	// Amount is the gross, in fils, positive for a capture and for a refund alike.
	Amount int64
	Date   time.Time
	// Kind is capture or refund.
	Kind string
	// Fee is the bank's commission (never negative); HasFee says the statement gives it.
	Fee    int64
	HasFee bool
	// Net is what the bank pays for the line, signed: the gross less the fee for a capture,
	// minus the gross less the fee for a refund. Without net and fee columns it is the signed
	// gross.
	Net int64
	// Batch is the bank's batch or terminal, when the statement has one.
	Batch string
}

func (l *Line) fee() *int64 {
	if !l.HasFee {
		return nil
	}
	f := l.Fee
	return &f
}

func (l *Line) net() *int64 {
	n := l.Net
	return &n
}

// Signed is the line's gross, negative for a refund.
func (l Line) Signed() int64 {
	if l.Kind == "refund" {
		return -l.Amount
	}
	return l.Amount
}

// ErrStatement wraps every reason a statement cannot be read; the message names the file's format
// and the headers found.
var ErrStatement = statement.ErrFormat

// Statement is a bank's statement as read: its lines, and the rows below its header that are not
// lines (blank, total and footer rows, rows that could not be read), never silently dropped.
type Statement struct {
	// Format names the file's format: CSV with its encoding and separator, or xlsx and its sheet.
	Format  string
	Lines   []Line
	Skipped []statement.Skip
	// NetMismatch lists the lines whose amount less fee is not their net (the bank's own
	// arithmetic): matched on the gross all the same, and listed for a person to look at.
	NetMismatch []NetMismatch
	// HasFee says the statement carries the bank's commission.
	HasFee bool
}

// NetMismatch is a line whose amount, fee and net do not add up.
type NetMismatch struct {
	Line   int    `json:"line"`
	Amount int64  `json:"amount"`
	Fee    int64  `json:"fee"`
	Net    int64  `json:"net"`
	Reason string `json:"reason"`
}

// Totals are a statement's money in minor units, signed (refunds negative): gross, the bank's
// commission, and the net it pays (gross less fee).
type Totals struct {
	Gross int64 `json:"gross"`
	Fee   int64 `json:"fee"`
	Net   int64 `json:"net"`
}

// Totals sums the statement's lines.
func (st *Statement) Totals() Totals {
	var t Totals
	for _, l := range st.Lines {
		t.Gross += l.Signed()
		t.Fee += l.Fee
		t.Net += l.Net
	}
	return t
}

// Read reads a statement (CSV or xlsx) laid out as l says; l.Columns map the column keys (Keys)
// to the bank's headers, and a key it does not map is looked up under its own name. loc is the
// time zone of the bank's dates. A negative amount is a refund, unless a kind column says
// otherwise. Amounts are read exactly (fils), never through a float.
func Read(raw []byte, l statement.Layout, loc *time.Location) (*Statement, error) {
	cols := map[string]string{}
	for k, h := range l.Columns {
		if !strings.EqualFold(strings.TrimSpace(h), k) { // a key under its own name is looked for, not required
			cols[k] = h
		}
	}
	if _, err := DefaultMapping().With(cols); err != nil {
		return nil, err
	}
	l.Columns = cols
	t, err := statement.Read(raw, l, schema, loc)
	if err != nil {
		return nil, err
	}
	st := &Statement{Format: t.Format, Lines: make([]Line, 0, len(t.Rows)), Skipped: t.Skipped, HasFee: t.Has(ColFee)}
	hasGross := t.Has(ColAmount) || t.Has(ColAmountMinor)
	if !hasGross && !st.HasFee {
		return nil, fmt.Errorf("%w: %s: a %q column without %q or %q: map the gross (amount) or the commission (fee) too, so that the gross is known (headers found: %s)",
			ErrStatement, t.Format, ColNet, ColAmount, ColFee, strings.Join(t.Header, ", "))
	}
	for _, r := range t.Rows {
		line := Line{Number: r.Line, TransactionID: r.Text(ColTransactionID), PaymentID: r.Text(ColPaymentID), BankReference: r.Text(ColBankReference),
			AuthCode: r.Text(ColAuthCode), Reference: r.Text(ColReference), Kind: "capture", Batch: r.Text(ColBatch)}
		gross, hasAmount := r.Amount(ColAmountMinor)
		if !hasAmount {
			gross, hasAmount = r.Amount(ColAmount)
		}
		fee, hasFee := r.Amount(ColFee)
		net, hasNet := r.Amount(ColNet)
		line.Fee, line.HasFee = abs(fee), hasFee
		switch {
		case hasAmount:
			line.Amount = gross
		case hasNet:
			line.Amount = net // its sign, until the kind is known
		default:
			st.Skipped = append(st.Skipped, statement.Skip{Line: r.Line, Reason: "no amount and no net", Unreadable: true})
			continue
		}
		if line.Amount < 0 {
			line.Amount, line.Kind = -line.Amount, "refund" // banks often show refunds as negative amounts
		}
		switch k := strings.ToLower(r.Text(ColKind)); {
		case k == "":
		case strings.HasPrefix(k, "ref") || k == "credit" || k == "return":
			line.Kind = "refund"
		case strings.HasPrefix(k, "cap") || k == "sale" || k == "purchase" || k == "debit":
			line.Kind = "capture"
		default:
			st.Skipped = append(st.Skipped, statement.Skip{Line: r.Line, Reason: fmt.Sprintf("kind %q is neither capture nor refund", r.Text(ColKind)),
				Unreadable: true})
			continue
		}
		if hasNet {
			// The net carries the line's sign (a bank may show every amount positive, with a kind
			// column): a capture pays the merchant, a refund takes the gross and the fee back.
			net = abs(net)
			if line.Kind == "refund" {
				net = -net
			}
		}
		switch {
		case !hasAmount:
			// Only net and fee: the gross is the net plus the commission.
			line.Net = net
			line.Amount = abs(net + line.Fee)
		case hasNet:
			line.Net = net
			if want := line.Signed() - line.Fee; want != net {
				st.NetMismatch = append(st.NetMismatch, NetMismatch{Line: r.Line, Amount: line.Signed(), Fee: line.Fee, Net: net,
					Reason: fmt.Sprintf("amount less fee is %d, the statement's net is %d", want, net)})
			}
		default:
			line.Net = line.Signed() - line.Fee
		}
		line.Date, _ = r.Date(ColDate)
		st.Lines = append(st.Lines, line)
	}
	sort.SliceStable(st.Skipped, func(a, b int) bool { return st.Skipped[a].Line < st.Skipped[b].Line })
	return st, nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// ParseKWD reads an amount in Kuwaiti dinars (major units, at most 3 decimals, an optional sign
// and thousands separators) into fils, exactly: "3.5" and "3.500" are 3500, "1,234.250" 1234250.
func ParseKWD(s string) (int64, error) {
	n, err := statement.ParseAmount(s, "KWD", '.', false)
	if err != nil {
		return 0, fmt.Errorf("amount %q: %w", s, err)
	}
	return n, nil
}

// MaxPostingLagDays is how many days after a capture's (or refund's) day the acquiring bank may
// post it: a capture at 23:59:59 in Kuwait is on the next day's statement, one before a weekend
// or a holiday days later. So a statement line meets, by a strong key, the ledger's postings of
// its own day and of this many days before it. Bounded, so that a statement never reaches into
// the whole ledger and a key the bank reuses cannot pay a posting long settled.
const MaxPostingLagDays = 3

// Entry is one money movement of the ledger: a posted capture or refund, with the keys a bank
// statement may name it by.
type Entry struct {
	PaymentID, ActionID string
	Kind                string // capture or refund
	Amount              int64
	At                  time.Time
	Reference           string
	KNETPaymentID       string
	KNETTransactionID   string
	BankReference       string
	// PostDate is KNET's post_date of the payment (MMDD), when known: the day KNET says the bank
	// posts it. When it names one of the MaxPostingLagDays days after At's, the entry is expected
	// on that day's statement rather than on its own day's; it never moves the day earlier.
	PostDate string
	// PaidBefore names the line of another statement, of other days, that already paid the
	// entry ("statement knet-2026-12-01.csv line 4"); empty when none did. Such an entry is not
	// missing from this statement, and a line of this one that names it is reported.
	PaidBefore string
}

// Period is the days a statement covers, [From, To), midnights in Location (the report time
// zone): the entries expected on one of those days and on no line are ledger_only.
type Period struct {
	From, To time.Time
	Location *time.Location
}

// Item is one difference (or one match) between the statement and the ledger.
type Item struct {
	PaymentID       string `json:"payment_id,omitempty"`
	ActionID        string `json:"action_id,omitempty"`
	Kind            string `json:"kind,omitempty"`
	LedgerAmount    *int64 `json:"ledger_amount,omitempty"`
	StatementAmount *int64 `json:"statement_amount,omitempty"`
	Line            int    `json:"line,omitempty"`
	// Fee and Net are the bank's commission on the line and what it pays for it (negative for a
	// refund), when the statement says.
	Fee    *int64 `json:"fee,omitempty"`
	Net    *int64 `json:"net,omitempty"`
	By     string `json:"matched_by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Result is a statement matched against the ledger.
type Result struct {
	Matched        int    `json:"matched"`
	LedgerOnly     []Item `json:"ledger_only"`
	StatementOnly  []Item `json:"statement_only"`
	AmountMismatch []Item `json:"amount_mismatch"`
	// Matches lists every matched line (the ledger records them); not printed in the summary.
	Matches []Item `json:"-"`
}

// byWeakKeys names the match of a line by reference, amount and date.
const byWeakKeys = "reference+amount+date"

// Match pairs the statement's lines with the ledger's entries, in two passes, so that the
// result does not depend on the order of the lines:
//
//  1. Every line with a strong key (KNET transaction id, else KNET payment id, else bank
//     reference) meets the entries that key names, of the line's kind, captured on the line's day
//     or up to MaxPostingLagDays before it.
//  2. The lines left meet, by reference, amount and date (the entry's day, or the day KNET's
//     post_date gives it), the entries pass 1 left.
//
// Several candidates are narrowed to those of the line's amount. A line that still fits two
// entries is reported, never guessed, whatever other lines took; only entries alike in every way
// that counts (one payment, kind and the line's amount: two equal partial refunds) are
// interchangeable. Lines competing for one entry take it in an order of their contents (those of
// the entry's amount first), never of their place in the file. Entries expected on one of p's days
// that no line took are ledger_only.
func Match(lines []Line, entries []Entry, p Period) Result {
	m := newMatcher(entries, p)
	res := Result{LedgerOnly: []Item{}, StatementOnly: []Item{}, AmountMismatch: []Item{}}
	var strong, rest []claim
	for i := range lines {
		if c, ok := m.strong(&lines[i]); ok {
			strong = append(strong, c)
		} else {
			rest = append(rest, claim{l: &lines[i]})
		}
	}
	m.settle(&res, strong)
	for i := range rest {
		rest[i] = m.weak(rest[i].l)
	}
	m.settle(&res, rest)
	for _, i := range m.order {
		e := entries[i]
		if m.taken[i] == "" && m.due[i] {
			ledger := e.Amount
			res.LedgerOnly = append(res.LedgerOnly, Item{PaymentID: e.PaymentID, ActionID: e.ActionID, Kind: e.Kind, LedgerAmount: &ledger,
				Reason: "not on the statement"})
		}
	}
	sort.SliceStable(res.LedgerOnly, func(a, b int) bool { return res.LedgerOnly[a].ActionID < res.LedgerOnly[b].ActionID })
	for _, items := range [][]Item{res.Matches, res.StatementOnly, res.AmountMismatch} {
		sort.SliceStable(items, func(a, b int) bool { return items[a].Line < items[b].Line })
	}
	return res
}

// claim is a line with the entries its keys name.
type claim struct {
	l     *Line
	day   int // the line's day, 0 when it has no date
	by    string
	cands []int // entries' indexes, oldest first
	// exact: every candidate has the line's amount.
	exact bool
	// none says why there is no candidate, when the keys alone do not.
	none string
}

// matcher holds the entries indexed by key, and which ones lines took.
type matcher struct {
	entries                    []Entry
	loc                        *time.Location
	order                      []int // entries' indexes by time, then action id
	day, expected              []int // each entry's day, and the day it is expected on a statement
	due                        []bool
	byTx, byPay, byBank, byRef map[string][]int
	// taken says why an entry is no longer free: matched by a line, or paid before.
	taken []string
}

const takenByLine = "ledger entry already matched by another line"

func newMatcher(entries []Entry, p Period) *matcher {
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	m := &matcher{entries: entries, loc: loc, order: make([]int, len(entries)), day: make([]int, len(entries)),
		expected: make([]int, len(entries)), due: make([]bool, len(entries)), taken: make([]string, len(entries)),
		byTx: map[string][]int{}, byPay: map[string][]int{}, byBank: map[string][]int{}, byRef: map[string][]int{}}
	for i := range m.order {
		m.order[i] = i
	}
	sort.SliceStable(m.order, func(a, b int) bool {
		ea, eb := entries[m.order[a]], entries[m.order[b]]
		if !ea.At.Equal(eb.At) {
			return ea.At.Before(eb.At)
		}
		return ea.ActionID < eb.ActionID
	})
	from, to := dayNumber(p.From, loc), dayNumber(p.To, loc)
	for _, i := range m.order {
		e := entries[i]
		m.day[i] = dayNumber(e.At, loc)
		m.expected[i] = expectedDay(m.day[i], e.PostDate)
		m.due[i] = from <= m.expected[i] && m.expected[i] < to
		if e.PaidBefore != "" {
			m.taken[i] = "ledger entry already paid by " + e.PaidBefore
		}
		for _, kv := range []struct {
			m map[string][]int
			k string
		}{{m.byTx, e.KNETTransactionID}, {m.byPay, e.KNETPaymentID}, {m.byBank, e.BankReference}, {m.byRef, e.Reference}} {
			if kv.k != "" {
				kv.m[kv.k] = append(kv.m[kv.k], i)
			}
		}
	}
	return m
}

// strong returns the claim of a line by its strongest key that names entries; ok is false when
// none does.
func (m *matcher) strong(l *Line) (c claim, ok bool) {
	c = claim{l: l, day: dayNumber(l.Date, m.loc)}
	for _, k := range []struct {
		name, key string
		idx       map[string][]int
	}{{ColTransactionID, l.TransactionID, m.byTx}, {ColPaymentID, l.PaymentID, m.byPay}, {ColBankReference, l.BankReference, m.byBank}} {
		if k.key != "" && len(k.idx[k.key]) > 0 {
			c.cands, c.by = k.idx[k.key], k.name
			break
		}
	}
	if c.by == "" {
		return c, false
	}
	if c.cands = filter(c.cands, func(i int) bool { return m.entries[i].Kind == l.Kind }); len(c.cands) == 0 {
		return c, true
	}
	if c.cands = filter(c.cands, func(i int) bool {
		return c.day == 0 || m.day[i] <= c.day && c.day <= m.day[i]+MaxPostingLagDays
	}); len(c.cands) == 0 {
		c.none = fmt.Sprintf("the ledger's %s with these keys is not of the line's day or of the %d days before", l.Kind, MaxPostingLagDays)
	}
	m.narrow(&c)
	return c, true
}

// weak returns the claim of a line by reference, amount and date, over the entries no strong key
// took.
func (m *matcher) weak(l *Line) claim {
	c := claim{l: l, day: dayNumber(l.Date, m.loc)}
	if l.Reference == "" {
		return c
	}
	c.by = byWeakKeys
	c.cands = filter(m.byRef[l.Reference], func(i int) bool {
		return m.entries[i].Kind == l.Kind && m.entries[i].Amount == l.Amount &&
			(c.day == 0 || c.day == m.day[i] || c.day == m.expected[i])
	})
	m.narrow(&c)
	return c
}

// narrow leaves out the entries already taken (paid before; in pass 2, taken by strong keys)
// unless no other is left, then the entries of another amount when one has the line's.
func (m *matcher) narrow(c *claim) {
	if free := filter(c.cands, func(i int) bool { return m.taken[i] == "" }); len(free) > 0 {
		c.cands = free
	}
	if len(c.cands) > 1 {
		if exact := filter(c.cands, func(i int) bool { return m.entries[i].Amount == c.l.Amount }); len(exact) > 0 {
			c.cands = exact
		}
	}
	c.exact = len(c.cands) > 0
	for _, i := range c.cands {
		if m.entries[i].Amount != c.l.Amount {
			c.exact = false
		}
	}
}

// settle decides each claim, in an order of the lines' contents: those of their entry's amount
// first, then by day (undated last), then by their keys and amount; the line number only
// separates identical lines, which are interchangeable.
func (m *matcher) settle(res *Result, claims []claim) {
	sort.SliceStable(claims, func(a, b int) bool {
		ca, cb := claims[a], claims[b]
		if ca.exact != cb.exact {
			return ca.exact
		}
		if ca.day != cb.day {
			return cb.day == 0 || ca.day != 0 && ca.day < cb.day
		}
		la, lb := ca.l, cb.l
		for _, f := range [][2]string{{la.Kind, lb.Kind}, {la.TransactionID, lb.TransactionID}, {la.PaymentID, lb.PaymentID},
			{la.BankReference, lb.BankReference}, {la.Reference, lb.Reference}, {la.AuthCode, lb.AuthCode}} {
			if f[0] != f[1] {
				return f[0] < f[1]
			}
		}
		if la.Amount != lb.Amount {
			return la.Amount < lb.Amount
		}
		return la.Number < lb.Number
	})
	for _, c := range claims {
		l := c.l
		stmt := l.Amount
		switch {
		case len(c.cands) == 0:
			reason := c.none
			if reason == "" {
				reason = "no ledger " + l.Kind + " has these keys"
			}
			res.StatementOnly = append(res.StatementOnly, Item{Kind: l.Kind, StatementAmount: &stmt, Fee: l.fee(), Net: l.net(), Line: l.Number, Reason: reason})
			continue
		case len(c.cands) > 1 && !alike(m.entries, c.cands, l.Amount):
			res.StatementOnly = append(res.StatementOnly, Item{PaymentID: m.entries[c.cands[0]].PaymentID, Kind: l.Kind, StatementAmount: &stmt, Fee: l.fee(), Net: l.net(),
				Line: l.Number, By: c.by, Reason: fmt.Sprintf("matches %d ledger entries: not guessed", len(c.cands))})
			continue
		}
		free := filter(c.cands, func(i int) bool { return m.taken[i] == "" })
		if len(free) == 0 {
			e := m.entries[c.cands[0]]
			ledger := e.Amount
			res.StatementOnly = append(res.StatementOnly, Item{PaymentID: e.PaymentID, ActionID: e.ActionID, Kind: l.Kind,
				StatementAmount: &stmt, Fee: l.fee(), Net: l.net(), LedgerAmount: &ledger, Line: l.Number, By: c.by, Reason: m.taken[c.cands[0]]})
			continue
		}
		i := free[0]
		e := m.entries[i]
		m.taken[i] = takenByLine
		ledger := e.Amount
		it := Item{PaymentID: e.PaymentID, ActionID: e.ActionID, Kind: e.Kind, LedgerAmount: &ledger, StatementAmount: &stmt, Fee: l.fee(), Net: l.net(), Line: l.Number, By: c.by}
		res.Matches = append(res.Matches, it)
		if e.Amount != l.Amount {
			res.AmountMismatch = append(res.AmountMismatch, it)
			continue
		}
		res.Matched++
	}
}

// alike reports whether the entries idx are one payment's, of one kind, each of amount.
func alike(entries []Entry, idx []int, amount int64) bool {
	first := entries[idx[0]]
	for _, i := range idx {
		e := entries[i]
		if e.PaymentID != first.PaymentID || e.Kind != first.Kind || e.Amount != amount {
			return false
		}
	}
	return true
}

func filter(idx []int, keep func(int) bool) []int {
	var out []int
	for _, i := range idx {
		if keep(i) {
			out = append(out, i)
		}
	}
	return out
}

// dayNumber numbers t's day in loc (days since 1970-01-01), so that days compare and add as
// integers; 0 for the zero time.
func dayNumber(t time.Time, loc *time.Location) int {
	if t.IsZero() {
		return 0
	}
	y, m, d := t.In(loc).Date()
	return int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// expectedDay is the day an entry of day is expected on a statement: the day KNET's post_date
// (MMDD, no year) names when it is one of the MaxPostingLagDays days after day, else day itself.
func expectedDay(day int, postDate string) int {
	if len(postDate) != 4 {
		return day
	}
	mm, err1 := strconv.Atoi(postDate[:2])
	dd, err2 := strconv.Atoi(postDate[2:])
	if err1 != nil || err2 != nil {
		return day
	}
	year := time.Unix(int64(day)*86400, 0).UTC().Year()
	for _, y := range []int{year, year + 1} { // a capture of 31 December posted on 1 January
		t := time.Date(y, time.Month(mm), dd, 0, 0, 0, 0, time.UTC)
		if int(t.Month()) != mm || t.Day() != dd {
			return day // not a date: 0230
		}
		if n := int(t.Unix() / 86400); day < n && n <= day+MaxPostingLagDays {
			return n
		}
	}
	return day
}
