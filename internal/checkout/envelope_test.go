package checkout

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecodeSamples(t *testing.T) {
	tests := []struct {
		file     string
		id, typ  string
		payID    string
		actionID string
		amount   string
		created  time.Time
	}{
		{"webhook_payment_captured.json", "evt_6aznipgxbuaure3qen5qbzyswy", "payment_captured", "pay_waji5li3mqtetnaor77xmow4bq", "act_gse7gcrhleuedmzhq25n3mhweq", "10000", time.Date(2019, 6, 7, 8, 25, 22, 0, time.UTC)},
		{"webhook_payment_captured_legacy_abc.json", "evt_6aznipgxbuaure3qen5qbzyswy", "payment_captured", "pay_waji5li3mqtetnaor77xmow4bq", "act_gse7gcrhleuedmzhq25n3mhweq", "10000", time.Date(2019, 6, 7, 8, 25, 22, 0, time.UTC)},
		{"webhook_payment_expired.json", "evt_hagjst6cjlhexnmdq5y2kvj72i", "payment_expired", "pay_4urtxiosfxxejmzuriescptqsi", "act_57v7ihlibudebdu7eoct2niioi", "300", time.Date(2021, 6, 11, 12, 1, 26, 316e6, time.UTC)},
		{"webhook_payment_pending.json", "evt_ivjkcjjvkf3eziyaidcys22cbm", "payment_pending", "pay_wafpfwejyitetb5aolywmqbxny", "", "100", time.Date(2021, 6, 11, 11, 40, 34, 11e6, time.UTC)},
		{"webhook_payment_refunded.json", "evt_rmbwhvwacc7u5iczmz2tdcogum", "payment_refunded", "pay_pswr5qaqzzferh2puzfyrefzuy", "act_7fmebms4rtmuja2poigylogjk4", "200", time.Date(2020, 2, 3, 11, 35, 3, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata/samples", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := DecodeEvent(body)
			if err != nil {
				t.Fatal(err)
			}
			if ev.ID != tt.id || ev.Type != tt.typ || ev.Data.ID != tt.payID || ev.Data.ActionID != tt.actionID || ev.Data.Amount.String() != tt.amount {
				t.Fatalf("decoded %+v", ev)
			}
			if !ev.Created.Equal(tt.created) {
				t.Fatalf("created = %v, want %v", ev.Created, tt.created)
			}
			if len(ev.Data.Metadata) == 0 && tt.file != "webhook_payment_captured_legacy_abc.json" {
				t.Fatal("metadata not kept")
			}
		})
	}
}

func TestDecodeRefundedBalances(t *testing.T) {
	body, err := os.ReadFile("testdata/samples/webhook_payment_refunded.json")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Data.Balances == nil || ev.Data.Balances.TotalRefunded != 200 || ev.Data.Currency != "GBP" {
		t.Fatalf("balances = %+v", ev.Data.Balances)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{"empty", ``, "empty body"},
		{"not json", `hello`, "not JSON"},
		{"truncated", `{"id":"evt_1","type":"x"`, "not JSON"},
		{"array", `[1,2]`, "not a JSON object"},
		{"string", `"evt_1"`, "not a JSON object"},
		{"missing id", `{"type":"payment_captured","data":{"id":"pay_1"}}`, "missing id"},
		{"empty id", `{"id":"","type":"payment_captured"}`, "missing id"},
		{"bad id prefix", `{"id":"pay_1","type":"payment_captured"}`, "does not start with evt_"},
		{"missing type", `{"id":"evt_1","data":{"id":"pay_1"}}`, "missing type"},
		{"id not string", `{"id":5,"type":"payment_captured"}`, "wrong JSON type"},
		{"payment without data.id", `{"id":"evt_1","type":"payment_captured","data":{}}`, "without data.id"},
		{"payment without data", `{"id":"evt_1","type":"payment_captured"}`, "without data.id"},
		{"data not object", `{"id":"evt_1","type":"payment_captured","data":[]}`, "data is not a JSON object"},
		{"bad time", `{"id":"evt_1","type":"x","created_on":"yesterday"}`, "not RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEvent([]byte(tt.give))
			var ee *EventError
			if !errors.As(err, &ee) || !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("err = %v, want an EventError", err)
			}
			if !strings.Contains(ee.Reason, tt.want) {
				t.Fatalf("reason %q does not say %q", ee.Reason, tt.want)
			}
		})
	}
}

func TestDecodeTolerates(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{"unknown type, no data", `{"id":"evt_1","type":"dispute_opened"}`},
		{"unknown fields", `{"id":"evt_1","type":"payment_approved","zzz":[1,{"a":null}],"data":{"id":"pay_1","new_field":true}}`},
		{"no version no links", `{"id":"evt_1","type":"payment_approved","created_on":"2024-01-01T00:00:00.1234567+00:00","data":{"id":"pay_1"}}`},
		{"metadata of any type", `{"id":"evt_1","type":"payment_approved","data":{"id":"pay_1","metadata":{"n":1,"s":"x","o":{"p":[1]}}}}`},
		{"source object", `{"id":"evt_1","type":"payment_approved","source":{"x":1},"data":{"id":"pay_1"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeEvent([]byte(tt.give)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
