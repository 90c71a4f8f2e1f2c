package main

import (
	"strconv"

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
