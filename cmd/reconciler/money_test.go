package main

import "testing"

// TestFormatMoney: every amount printed for people in its own currency's decimals (a 50.00 USD
// capture once printed as 5.000).
func TestFormatMoney(t *testing.T) {
	fifty := int64(5000)
	tests := []struct {
		give     *int64
		currency string
		want     string
	}{
		{&fifty, "USD", "50.00 USD"},
		{&fifty, "KWD", "5.000 KWD"},
		{&fifty, "JPY", "5000 JPY"},
		{ptrTo(int64(-500)), "KWD", "-0.500 KWD"},
		{&fifty, "usd", `5000 minor units "usd"`},
		{nil, "KWD", "-"},
	}
	for _, tt := range tests {
		if got := formatMoneyOf(tt.give, tt.currency); got != tt.want {
			t.Errorf("formatMoneyOf(%v, %q) = %q, want %q", tt.give, tt.currency, got, tt.want)
		}
	}
}

// TestMoneyDetails: a discrepancy's amounts printed in its currency, the details' own first.
func TestMoneyDetails(t *testing.T) {
	tests := []struct{ give, currency, want string }{
		{`{"ledger_amount":5000,"statement_amount":4500,"reason":"a <b> & c"}`, "KWD",
			`{"ledger_amount":"5.000 KWD","reason":"a <b> & c","statement_amount":"4.500 KWD"}`},
		{`{"expected":5000,"currency":"USD"}`, "KWD", `{"currency":"USD","expected":"50.00 USD"}`},
		{`{"amount":5000,"line":12}`, "", `{"amount":5000,"line":12}`},
		{`not json`, "KWD", `not json`},
	}
	for _, tt := range tests {
		if got := moneyDetails([]byte(tt.give), tt.currency); got != tt.want {
			t.Errorf("moneyDetails(%s, %q) = %s, want %s", tt.give, tt.currency, got, tt.want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
