package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"knetrecon/internal/payment"
)

// formatMoney writes minor units of currency for people, in the currency's own decimals and
// named: 5000 USD is "50.00 USD", 5000 KWD "5.000 KWD". A currency that is not an ISO code keeps
// the exact integer, said to be minor units, rather than guess its decimals.
func formatMoney(minor int64, currency string) string {
	s, err := payment.Format(minor, currency)
	if err != nil {
		return strconv.FormatInt(minor, 10) + " minor units " + strconv.Quote(currency)
	}
	return s + " " + currency
}

// formatMoneyOf is formatMoney of an amount that may be unknown ("-").
func formatMoneyOf(minor *int64, currency string) string {
	if minor == nil {
		return "-"
	}
	return formatMoney(*minor, currency)
}

// detailMoneyKeys are the keys of a discrepancy's details that hold money in minor units (the
// same list as the desk's, internal/desk's moneyKeys).
var detailMoneyKeys = map[string]bool{
	"amount": true, "captured": true, "refunded": true, "held_refunds": true,
	"ledger_amount": true, "event_amount": true, "posted_amount": true,
	"ledger_captured": true, "ledger_refunded": true, "provider_captured": true, "provider_refunded": true,
	"statement_amount": true, "expected": true, "difference": true,
}

// moneyDetails writes a discrepancy's details (a JSON object) for people: each amount in its
// currency's decimals, named ("ledger_amount":"5.000 KWD"), the currency being the details' own or
// else currency (the payment's). Details that are not an object, or whose currency is unknown,
// are written as they are.
func moneyDetails(details []byte, currency string) string {
	dec := json.NewDecoder(bytes.NewReader(details))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return string(details)
	}
	for _, k := range []string{"currency", "ledger_currency", "payment_currency"} {
		if c, ok := m[k].(string); ok && c != "" {
			currency = c
			break
		}
	}
	if _, err := payment.Exponent(currency); err != nil {
		return string(details)
	}
	for k, v := range m {
		if n, ok := v.(json.Number); ok && detailMoneyKeys[k] {
			if minor, err := n.Int64(); err == nil {
				m[k] = formatMoney(minor, currency)
			}
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return string(details)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
