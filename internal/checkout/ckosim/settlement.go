package ckosim

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// kuwait is the acquiring bank's time zone: a statement's day is a day in Kuwait.
var kuwait = time.FixedZone("Asia/Kuwait", 3*3600)

// StatementFaults damage a statement the way a bank's sometimes differs from the ledger.
type StatementFaults struct {
	// Missing leaves out this many lines (money the bank did not pay).
	Missing int
	// Extra adds this many lines for payments nobody knows of.
	Extra int
	// Change adds 10 fils to this many lines' amounts.
	Change int
}

// Statement writes the acquiring bank's KNET settlement statement of date (YYYY-MM-DD, Kuwait
// time) for the simulator's approved captures and refunds of that day, as CSV in knetrecon's
// default layout (knet_transaction_id, knet_payment_id, bank_reference, auth_code, reference,
// amount in KWD, date, kind), oldest first, damaged by f.
func (s *Sim) Statement(date string, f StatementFaults) ([]byte, error) {
	day, err := time.ParseInLocation(time.DateOnly, date, kuwait)
	if err != nil {
		return nil, fmt.Errorf("date %q: want YYYY-MM-DD", date)
	}
	type row struct {
		at  time.Time
		rec []string
	}
	var rows []row
	s.mu.Lock()
	for _, p := range s.payments {
		for _, a := range p.Actions {
			if !a.Approved || (a.Type != "Capture" && a.Type != "Refund") {
				continue
			}
			if at := a.ProcessedOn.In(kuwait); at.Before(day) || !at.Before(day.AddDate(0, 0, 1)) {
				continue
			}
			kind := "capture"
			if a.Type == "Refund" {
				kind = "refund"
			}
			rows = append(rows, row{at: a.ProcessedOn, rec: []string{p.Source.KNETTransactionID, p.Source.KNETPaymentID,
				p.Source.BankReference, p.Source.AuthCode, p.Reference, kwd(a.Amount), date, kind}})
		}
	}
	s.mu.Unlock()
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at.Before(rows[j].at) })
	for i := 0; i < f.Change && i < len(rows); i++ {
		n, _ := parseFils(rows[len(rows)-1-i].rec[5])
		rows[len(rows)-1-i].rec[5] = kwd(n + 10)
	}
	rows = rows[min(f.Missing, len(rows)):] // the oldest lines go missing; the newest are changed
	for i := 0; i < f.Extra; i++ {
		rows = append(rows, row{rec: []string{"9" + strconv.Itoa(100000000+i), "", "", "", "UNKNOWN-" + strconv.Itoa(i), "1.000", date, "capture"}})
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"knet_transaction_id", "knet_payment_id", "bank_reference", "auth_code", "reference", "amount", "date", "kind"})
	for _, r := range rows {
		_ = w.Write(r.rec)
	}
	w.Flush()
	return b.Bytes(), w.Error()
}

// kwd writes fils as KWD with 3 decimals.
func kwd(fils int64) string { return fmt.Sprintf("%d.%03d", fils/1000, fils%1000) }

func parseFils(s string) (int64, error) {
	var w, f int64
	_, err := fmt.Sscanf(s, "%d.%d", &w, &f)
	return w*1000 + f, err
}

// ctlSettlement serves GET /_sim/settlement?date=YYYY-MM-DD[&missing=N&extra=N&change=N][&layout=bank][&format=xlsx]:
// knetrecon's default layout, or with layout=bank the bank's own (title rows, commission, net,
// a grand total), as CSV or an xlsx workbook.
func (s *Sim) ctlSettlement(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	date := q.Get("date")
	if date == "" {
		date = s.clock.Now().In(kuwait).Format(time.DateOnly)
	}
	var f StatementFaults
	for name, dst := range map[string]*int{"missing": &f.Missing, "extra": &f.Extra, "change": &f.Change} {
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
	var b []byte
	var err error
	switch q.Get("layout") {
	case "bank":
		b, err = s.BankStatement(date, f, asXLSX)
	case "", "default":
		if asXLSX {
			http.Error(w, "format=xlsx needs layout=bank", http.StatusBadRequest)
			return
		}
		b, err = s.Statement(date, f)
	default:
		http.Error(w, "layout must be default or bank", http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeFile(w, "knet-settlement-"+date, asXLSX, b)
}
