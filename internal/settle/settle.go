// Package settle matches the acquiring bank's KNET settlement statement against the ledger. KNET
// on Checkout.com is a gateway model: the merchant's KNET acquiring bank settles the money, so
// the line that proves a capture was paid is on the bank's statement, keyed by KNET's own ids.
// Reading a statement and matching are pure (this package); recording a run is the store's.
package settle

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
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
)

// Keys lists every column key, in documentation order.
var Keys = []string{ColTransactionID, ColPaymentID, ColBankReference, ColAuthCode, ColReference, ColAmount, ColAmountMinor, ColDate, ColKind}

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
	m := DefaultMapping()
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return nil, fmt.Errorf("--columns %q: want key=Header", part)
		}
		if _, known := m[k]; !known {
			return nil, fmt.Errorf("--columns: unknown key %q (keys: %s)", k, strings.Join(Keys, ", "))
		}
		m[k] = v
	}
	return m, nil
}

// Line is one line of the bank's statement.
type Line struct {
	// Number is the line in the file, the header being line 1.
	Number                                                       int
	TransactionID, PaymentID, BankReference, AuthCode, Reference string
	// Amount is in fils.
	Amount int64
	Date   time.Time
	// Kind is capture or refund.
	Kind string
}

// ErrStatement wraps every reason a statement cannot be read; the message names the line.
var ErrStatement = errors.New("statement")

// dateLayouts are the bank date formats accepted.
var dateLayouts = []string{"2006-01-02", "02/01/2006", "2006/01/02", "02-01-2006", "02.01.2006", "20060102",
	"2006-01-02 15:04:05", "02/01/2006 15:04:05", "02/01/2006 15:04", time.RFC3339}

// Parse reads a CSV statement: a header line, then one line per capture or refund. Amounts are
// read exactly (fils), never through a float. loc is the time zone of the bank's dates.
func Parse(r io.Reader, m Mapping, loc *time.Location) ([]Line, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrStatement, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		for k, name := range m {
			if strings.EqualFold(h, strings.TrimSpace(name)) {
				col[k] = i
			}
		}
	}
	_, hasMinor := col[ColAmountMinor]
	_, hasMajor := col[ColAmount]
	if !hasMinor && !hasMajor {
		return nil, fmt.Errorf("%w: no amount column (%q or %q; map it with --columns amount=Header)", ErrStatement, m[ColAmount], m[ColAmountMinor])
	}
	if _, ok := col[ColTransactionID]; !ok {
		if _, ok := col[ColPaymentID]; !ok {
			if _, ok := col[ColBankReference]; !ok {
				if _, ok := col[ColReference]; !ok {
					return nil, fmt.Errorf("%w: no key column: map one of %s, %s, %s or %s", ErrStatement,
						ColTransactionID, ColPaymentID, ColBankReference, ColReference)
				}
			}
		}
	}
	var out []Line
	for n := 2; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrStatement, n, err)
		}
		get := func(k string) string {
			if i, ok := col[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		if strings.Join(rec, "") == "" {
			continue // a blank line
		}
		l := Line{Number: n, TransactionID: get(ColTransactionID), PaymentID: get(ColPaymentID), BankReference: get(ColBankReference),
			AuthCode: get(ColAuthCode), Reference: get(ColReference), Kind: "capture"}
		if hasMinor && get(ColAmountMinor) != "" {
			if l.Amount, err = strconv.ParseInt(get(ColAmountMinor), 10, 64); err != nil {
				return nil, fmt.Errorf("%w: line %d: amount_minor %q is not a whole number of fils", ErrStatement, n, get(ColAmountMinor))
			}
		} else if l.Amount, err = ParseKWD(get(ColAmount)); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrStatement, n, err)
		}
		if l.Amount < 0 {
			l.Amount, l.Kind = -l.Amount, "refund" // banks often show refunds as negative amounts
		}
		switch k := strings.ToLower(get(ColKind)); {
		case k == "":
		case strings.HasPrefix(k, "ref") || k == "credit" || k == "return":
			l.Kind = "refund"
		case strings.HasPrefix(k, "cap") || k == "sale" || k == "purchase" || k == "debit":
			l.Kind = "capture"
		default:
			return nil, fmt.Errorf("%w: line %d: kind %q is neither capture nor refund", ErrStatement, n, k)
		}
		if d := get(ColDate); d != "" {
			if l.Date, err = parseDate(d, loc); err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrStatement, n, err)
			}
		}
		out = append(out, l)
	}
	return out, nil
}

func parseDate(s string, loc *time.Location) (time.Time, error) {
	for _, layout := range dateLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q: not one of the bank formats (2026-12-01, 01/12/2026, 2026/12/01, 01-12-2026, 20261201)", s)
}

// ParseKWD reads an amount in Kuwaiti dinars (major units, at most 3 decimals, an optional sign
// and thousands separators) into fils, exactly: "3.5" and "3.500" are 3500, "1,234.250" 1234250.
func ParseKWD(s string) (int64, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	s = strings.TrimSuffix(strings.TrimSuffix(s, "KWD"), " ")
	if s == "" {
		return 0, errors.New("amount missing")
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 3 || whole == "" && frac == "" {
		return 0, fmt.Errorf("amount %q: KWD has at most 3 decimals", s)
	}
	frac += strings.Repeat("0", 3-len(frac))
	if whole == "" {
		whole = "0"
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("amount %q is not a number", s)
			}
		}
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > 999_999_999 {
		return 0, fmt.Errorf("amount %q is too large", s)
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	v := w*1000 + f
	if neg {
		v = -v
	}
	return v, nil
}

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
}

// Item is one difference (or one match) between the statement and the ledger.
type Item struct {
	PaymentID       string `json:"payment_id,omitempty"`
	ActionID        string `json:"action_id,omitempty"`
	Kind            string `json:"kind,omitempty"`
	LedgerAmount    *int64 `json:"ledger_amount,omitempty"`
	StatementAmount *int64 `json:"statement_amount,omitempty"`
	Line            int    `json:"line,omitempty"`
	By              string `json:"matched_by,omitempty"`
	Reason          string `json:"reason,omitempty"`
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

// Match pairs each statement line with a ledger entry by the strongest key it has: KNET
// transaction id, KNET payment id, bank reference, then reference with amount and date. The keys
// name a payment; the entry is the payment's capture (or refund) of that kind, narrowed by amount
// when there are several. A line that fits two entries, or an entry already taken by another
// line, is reported, never guessed. Entries no line took are ledger_only.
func Match(lines []Line, entries []Entry, loc *time.Location) Result {
	byTx, byPay, byBank, byRef := index(entries)
	taken := make([]bool, len(entries))
	res := Result{LedgerOnly: []Item{}, StatementOnly: []Item{}, AmountMismatch: []Item{}}
	for _, l := range lines {
		var cands []int
		by := ""
		for _, k := range []struct {
			name, key string
			idx       map[string][]int
		}{{ColTransactionID, l.TransactionID, byTx}, {ColPaymentID, l.PaymentID, byPay}, {ColBankReference, l.BankReference, byBank}} {
			if k.key != "" {
				if c := k.idx[k.key]; len(c) > 0 {
					cands, by = c, k.name
					break
				}
			}
		}
		if by == "" && l.Reference != "" {
			for _, i := range byRef[l.Reference] {
				e := entries[i]
				if e.Amount == l.Amount && (l.Date.IsZero() || sameDay(e.At, l.Date, loc)) {
					cands = append(cands, i)
				}
			}
			by = "reference+amount+date"
		}
		cands = filter(cands, func(i int) bool { return entries[i].Kind == l.Kind })
		if len(cands) > 1 {
			if exact := filter(cands, func(i int) bool { return entries[i].Amount == l.Amount }); len(exact) > 0 {
				cands = exact
			}
		}
		// Entries alike in every way that counts (one payment, kind and the line's amount: two
		// equal partial refunds) are interchangeable: the first not yet taken is no guess.
		if free := filter(cands, func(i int) bool { return !taken[i] }); len(free) > 1 && alike(entries, free, l.Amount) {
			cands = free[:1]
		}
		stmt := l.Amount
		switch {
		case len(cands) == 0:
			res.StatementOnly = append(res.StatementOnly, Item{Kind: l.Kind, StatementAmount: &stmt, Line: l.Number,
				Reason: "no ledger " + l.Kind + " has these keys"})
		case len(cands) > 1 && len(filter(cands, func(i int) bool { return !taken[i] })) != 1:
			res.StatementOnly = append(res.StatementOnly, Item{PaymentID: entries[cands[0]].PaymentID, Kind: l.Kind, StatementAmount: &stmt,
				Line: l.Number, By: by, Reason: fmt.Sprintf("matches %d ledger entries: not guessed", len(cands))})
		default:
			i := cands[0]
			if len(cands) > 1 {
				i = filter(cands, func(i int) bool { return !taken[i] })[0]
			}
			e := entries[i]
			ledger := e.Amount
			if taken[i] {
				res.StatementOnly = append(res.StatementOnly, Item{PaymentID: e.PaymentID, ActionID: e.ActionID, Kind: l.Kind,
					StatementAmount: &stmt, LedgerAmount: &ledger, Line: l.Number, By: by, Reason: "ledger entry already matched by another line"})
				continue
			}
			taken[i] = true
			it := Item{PaymentID: e.PaymentID, ActionID: e.ActionID, Kind: e.Kind, LedgerAmount: &ledger, StatementAmount: &stmt, Line: l.Number, By: by}
			res.Matches = append(res.Matches, it)
			if e.Amount != l.Amount {
				res.AmountMismatch = append(res.AmountMismatch, it)
				continue
			}
			res.Matched++
		}
	}
	for i, e := range entries {
		if !taken[i] {
			ledger := e.Amount
			res.LedgerOnly = append(res.LedgerOnly, Item{PaymentID: e.PaymentID, ActionID: e.ActionID, Kind: e.Kind, LedgerAmount: &ledger,
				Reason: "not on the statement"})
		}
	}
	sort.SliceStable(res.LedgerOnly, func(a, b int) bool { return res.LedgerOnly[a].ActionID < res.LedgerOnly[b].ActionID })
	return res
}

func index(entries []Entry) (byTx, byPay, byBank, byRef map[string][]int) {
	byTx, byPay, byBank, byRef = map[string][]int{}, map[string][]int{}, map[string][]int{}, map[string][]int{}
	for i, e := range entries {
		for _, kv := range []struct {
			m map[string][]int
			k string
		}{{byTx, e.KNETTransactionID}, {byPay, e.KNETPaymentID}, {byBank, e.BankReference}, {byRef, e.Reference}} {
			if kv.k != "" {
				kv.m[kv.k] = append(kv.m[kv.k], i)
			}
		}
	}
	return byTx, byPay, byBank, byRef
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

func sameDay(a, b time.Time, loc *time.Location) bool {
	ay, am, ad := a.In(loc).Date()
	by, bm, bd := b.In(loc).Date()
	return ay == by && am == bm && ad == bd
}
