package ckosim

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/xuri/excelize/v2"
)

// The bank's own layout, as a Kuwaiti acquiring bank sends it: title rows above the table, its
// own headers, dates day first, a commission and a net per line, and a grand-total row. The
// layout file docs/layouts/ckosim-bank.layout maps it.
var bankHeader = []string{"Txn Date", "KNET Transaction ID", "KNET Payment ID", "Bank Ref", "Auth Code", "Merchant Ref", "Type",
	"Gross Amount", "Commission", "Net Amount"}

// Commission is the bank's commission on a capture, in fils: 1 % with a floor of 50 fils (none
// on a refund). A simulator's figure, not any bank's tariff.
func Commission(amount int64) int64 { return max(50, (amount+50)/100) }

// settledLine is one approved capture or refund, as the bank settles it.
type settledLine struct {
	at                              time.Time
	txID, payID, bankRef, auth, ref string
	kind                            string
	gross, fee, net                 int64 // signed: a refund is negative
	day                             string
}

// settled returns the approved captures and refunds of days [from, to] (YYYY-MM-DD, Kuwait
// time), oldest first.
func (s *Sim) settled(from, to time.Time) []settledLine {
	var out []settledLine
	s.mu.Lock()
	for _, p := range s.payments {
		for _, a := range p.Actions {
			if !a.Approved || (a.Type != "Capture" && a.Type != "Refund") {
				continue
			}
			at := a.ProcessedOn.In(kuwait)
			if at.Before(from) || !at.Before(to.AddDate(0, 0, 1)) {
				continue
			}
			l := settledLine{at: at, txID: p.Source.KNETTransactionID, payID: p.Source.KNETPaymentID, bankRef: p.Source.BankReference,
				auth: p.Source.AuthCode, ref: p.Reference, kind: "Purchase", gross: a.Amount, day: at.Format(time.DateOnly)}
			if a.Type == "Refund" {
				l.kind, l.gross = "Refund", -a.Amount
			} else {
				l.fee = Commission(a.Amount)
			}
			l.net = l.gross - l.fee
			out = append(out, l)
		}
	}
	s.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// BankStatement writes the acquiring bank's KNET settlement statement of date in the bank's own
// layout (bankHeader), as CSV or, with asXLSX, as a workbook (Excel dates and numbers), damaged by
// f like Statement.
func (s *Sim) BankStatement(date string, f StatementFaults, asXLSX bool) ([]byte, error) {
	day, err := time.ParseInLocation(time.DateOnly, date, kuwait)
	if err != nil {
		return nil, fmt.Errorf("date %q: want YYYY-MM-DD", date)
	}
	lines := s.settled(day, day)
	for i := 0; i < f.Change && i < len(lines); i++ {
		l := &lines[len(lines)-1-i]
		l.gross += 10
		l.net += 10
	}
	lines = lines[min(f.Missing, len(lines)):]
	for i := 0; i < f.Extra; i++ {
		lines = append(lines, settledLine{at: day.Add(23 * time.Hour), txID: "9" + strconv.Itoa(100000000+i), ref: "UNKNOWN-" + strconv.Itoa(i),
			kind: "Purchase", gross: 1000, fee: Commission(1000), net: 1000 - Commission(1000)})
	}
	title := [][]any{{"Gulf Acquiring Bank K.S.C.P. — KNET Merchant Settlement Report"}, {"Merchant: KNETRECON DEMO STORE", "", "Merchant ID: 900123"},
		{"Settlement date: " + day.Format("02/01/2006")}, {}}
	var gross, fee, net int64
	rows := make([][]any, 0, len(lines))
	for _, l := range lines {
		gross, fee, net = gross+l.gross, fee+l.fee, net+l.net
		rows = append(rows, []any{l.at, l.txID, l.payID, l.bankRef, l.auth, l.ref, l.kind, l.gross, l.fee, l.net})
	}
	total := []any{"Grand Total", "", "", "", "", "", strconv.Itoa(len(lines)) + " transactions", gross, fee, net}
	if asXLSX {
		return bankXLSX("Settlement", title, bankHeader, rows, total)
	}
	return bankCSV(title, bankHeader, rows, total)
}

// AccountFaults damage the merchant's account statement.
type AccountFaults struct {
	// Missing leaves out this many credits (the oldest): money that did not arrive.
	Missing int
	// Short takes 100 fils off this many credits (the newest): money that arrived short.
	Short int
	// Lag is how many days after its posting day the bank credits a day's net (0: the same day).
	Lag int
}

// AccountStatement writes the merchant's bank-account statement for the posting days [from, to]
// (YYYY-MM-DD, Kuwait time): one credit per posting day of that day's net on the bank's
// statement (gross less commission, refunds taken off), dated Lag days after it, between an
// opening and a closing balance row, as CSV (or a workbook with asXLSX), damaged by f.
func (s *Sim) AccountStatement(from, to string, f AccountFaults, asXLSX bool) ([]byte, error) {
	a, err := time.ParseInLocation(time.DateOnly, from, kuwait)
	if err != nil {
		return nil, fmt.Errorf("from %q: want YYYY-MM-DD", from)
	}
	b, err := time.ParseInLocation(time.DateOnly, to, kuwait)
	if err != nil || b.Before(a) {
		return nil, fmt.Errorf("to %q: want YYYY-MM-DD, not before from", to)
	}
	nets := map[string]int64{}
	var days []string
	for _, l := range s.settled(a, b) {
		if _, ok := nets[l.day]; !ok {
			days = append(days, l.day)
		}
		nets[l.day] += l.net
	}
	sort.Strings(days)
	type credit struct {
		at     time.Time
		ref    string
		amount int64
	}
	var credits []credit
	for _, d := range days {
		if nets[d] <= 0 {
			continue
		}
		day, _ := time.ParseInLocation(time.DateOnly, d, kuwait)
		credits = append(credits, credit{at: day.AddDate(0, 0, f.Lag), ref: "KNET SETTLEMENT " + day.Format("02012006") + " MID 900123", amount: nets[d]})
	}
	for i := 0; i < f.Short && i < len(credits); i++ {
		credits[len(credits)-1-i].amount -= 100
	}
	credits = credits[min(f.Missing, len(credits)):]
	const opening = 1_000_000 // 1,000.000 KWD
	balance := int64(opening)
	rows := [][]any{{a, "Opening balance", "", "", int64(opening)}}
	for _, c := range credits {
		balance += c.amount
		rows = append(rows, []any{c.at, c.ref, "", c.amount, balance})
	}
	rows = append(rows, []any{b.AddDate(0, 0, f.Lag), "Closing balance", "", "", balance})
	title := [][]any{{"Gulf Acquiring Bank K.S.C.P. — Account Statement"}, {"Account: 0123456789 KWD", "", "KNETRECON DEMO STORE"}, {}}
	header := []string{"Value Date", "Description", "Debit", "Credit", "Balance"}
	if asXLSX {
		return bankXLSX("Statement", title, header, rows, nil)
	}
	return bankCSV(title, header, rows, nil)
}

// bankCSV writes title rows, a header, rows and a total row as a bank does: dates day first,
// amounts in KWD with three decimals.
func bankCSV(title [][]any, header []string, rows [][]any, total []any) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	cells := func(r []any) []string {
		out := make([]string, len(r))
		for i, v := range r {
			switch v := v.(type) {
			case time.Time:
				out[i] = v.Format("02/01/2006")
			case int64:
				out[i] = signedKWD(v)
			case nil:
			default:
				out[i] = fmt.Sprint(v)
			}
		}
		return out
	}
	for _, r := range title {
		_ = w.Write(cells(r))
	}
	_ = w.Write(header)
	for _, r := range rows {
		_ = w.Write(cells(r))
	}
	if total != nil {
		_ = w.Write(cells(total))
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// bankXLSX writes the same as a workbook: dates stored as dates, amounts as numbers.
func bankXLSX(sheet string, title [][]any, header []string, rows [][]any, total []any) ([]byte, error) {
	x := excelize.NewFile()
	defer x.Close()
	if err := x.SetSheetName("Sheet1", sheet); err != nil {
		return nil, err
	}
	dateStyle, err := x.NewStyle(&excelize.Style{NumFmt: 14})
	if err != nil {
		return nil, err
	}
	moneyFmt := "#,##0.000"
	moneyStyle, err := x.NewStyle(&excelize.Style{CustomNumFmt: &moneyFmt})
	if err != nil {
		return nil, err
	}
	n := 0
	put := func(r []any) error {
		n++
		for i, v := range r {
			cell, _ := excelize.CoordinatesToCellName(i+1, n)
			var err error
			switch v := v.(type) {
			case time.Time:
				y, m, d := v.Date()
				err = x.SetCellValue(sheet, cell, time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
				if err == nil {
					err = x.SetCellStyle(sheet, cell, cell, dateStyle)
				}
			case int64:
				// Fils to a number with three decimals: exact in a float64 for any real amount.
				err = x.SetCellFloat(sheet, cell, float64(v)/1000, 3, 64)
				if err == nil {
					err = x.SetCellStyle(sheet, cell, cell, moneyStyle)
				}
			case nil:
			default:
				err = x.SetCellValue(sheet, cell, v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range title {
		if err := put(r); err != nil {
			return nil, err
		}
	}
	head := make([]any, len(header))
	for i, h := range header {
		head[i] = h
	}
	if err := put(head); err != nil {
		return nil, err
	}
	for _, r := range rows {
		if err := put(r); err != nil {
			return nil, err
		}
	}
	if total != nil {
		if err := put(total); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// signedKWD writes fils as KWD with 3 decimals and a sign.
func signedKWD(fils int64) string {
	if fils < 0 {
		return "-" + kwd(-fils)
	}
	return kwd(fils)
}

// ctlAccount serves GET /_sim/account?from=YYYY-MM-DD&to=YYYY-MM-DD[&missing=N&short=N&lag=N&format=xlsx]:
// the merchant's account statement (both days default to today).
func (s *Sim) ctlAccount(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	today := s.clock.Now().In(kuwait).Format(time.DateOnly)
	from, to := q.Get("from"), q.Get("to")
	if from == "" {
		from = today
	}
	if to == "" {
		to = from
	}
	var f AccountFaults
	for name, dst := range map[string]*int{"missing": &f.Missing, "short": &f.Short, "lag": &f.Lag} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				http.Error(w, name+" must be a count", http.StatusBadRequest)
				return
			}
			*dst = n
		}
	}
	asXLSX := q.Get("format") == "xlsx"
	b, err := s.AccountStatement(from, to, f, asXLSX)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeFile(w, "account-"+from+"-"+to, asXLSX, b)
}

// writeFile answers a file download, CSV or xlsx.
func writeFile(w http.ResponseWriter, name string, asXLSX bool, b []byte) {
	if asXLSX {
		w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.xlsx"`)
	} else {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	}
	_, _ = w.Write(b)
}
