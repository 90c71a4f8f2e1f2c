package ckosim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"knetrecon/internal/checkout/ckosim"
)

// TestBankFilesOverHTTP: the bank's statement in its own layout (CSV and xlsx) and the merchant's
// account statement are served with their faults; a bad parameter is a 400.
func TestBankFilesOverHTTP(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	post := func(path, body string) {
		t.Helper()
		resp, err := http.Post(e.srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	for _, amount := range []string{"3000", "12340"} {
		resp, err := http.Post(e.srv.URL+"/_sim/payments", "application/json", strings.NewReader(`{"amount":`+amount+`,"currency":"KWD","source":{"type":"knet","language":"en"}}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
			t.Fatalf("create: %s %v", b, err)
		}
		id := p.ID
		post("/_sim/payments/"+id+"/land", "")
		post("/_sim/payments/"+id+"/complete", "")
	}
	get := func(path string) (int, string, string) {
		t.Helper()
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, _, csv := get("/_sim/settlement?layout=bank")
	// 3.000 pays 0.050 commission (the floor), 12.340 pays 0.123 (1 %).
	if code != 200 || !strings.Contains(csv, "Txn Date,KNET Transaction ID") || !strings.Contains(csv, "Grand Total,,,,,,2 transactions,15.340,0.173,15.167") {
		t.Fatalf("bank CSV %d:\n%s", code, csv)
	}
	if code, ctype, body := get("/_sim/settlement?layout=bank&format=xlsx"); code != 200 || !strings.Contains(ctype, "spreadsheetml") || !strings.HasPrefix(body, "PK") {
		t.Fatalf("bank xlsx %d %s", code, ctype)
	}
	code, _, acct := get("/_sim/account?short=1")
	if code != 200 || !strings.Contains(acct, "Opening balance") || !strings.Contains(acct, ",15.067,") {
		t.Fatalf("account %d:\n%s", code, acct)
	}
	if _, _, acct := get("/_sim/account?missing=1"); strings.Contains(acct, "KNET SETTLEMENT") {
		t.Fatalf("account with its one credit missing:\n%s", acct)
	}
	for _, bad := range []string{"/_sim/account?short=x", "/_sim/account?from=2026-13-01", "/_sim/settlement?layout=other", "/_sim/settlement?format=xlsx"} {
		if code, _, _ := get(bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
}
