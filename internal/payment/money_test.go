package payment_test

import (
	"errors"
	"testing"

	"knetrecon/internal/payment"
)

func TestExponent(t *testing.T) {
	tests := []struct {
		give    string
		want    int
		wantErr bool
	}{
		{"KWD", 3, false}, {"BHD", 3, false}, {"JOD", 3, false}, {"OMR", 3, false},
		{"TND", 3, false}, {"IQD", 3, false}, {"LYD", 3, false},
		{"JPY", 0, false}, {"USD", 2, false}, {"EUR", 2, false}, {"XYZ", 2, false},
		{"kwd", 0, true}, {"", 0, true}, {"KWDD", 0, true}, {"K1D", 0, true},
	}
	for _, tt := range tests {
		got, err := payment.Exponent(tt.give)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Exponent(%q) = %d, %v; want %d, err %v", tt.give, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, payment.ErrInvalidCurrency) {
			t.Errorf("Exponent(%q) error %v is not ErrInvalidCurrency", tt.give, err)
		}
	}
}

func TestParseMinor(t *testing.T) {
	tests := []struct {
		give    string
		want    int64
		wantErr bool
	}{
		{"1000", 1000, false},
		{"1", 1, false},
		{"999999999", 999999999, false},
		{"1000000000", 0, true}, // over Checkout.com's 9 digits
		{"9223372036854775807", 0, true},
		{"9223372036854775808", 0, true},
		{"99999999999999999999", 0, true},
		{"0", 0, true},
		{"-100", 0, true},
		{"10.5", 0, true},
		{"1000.0", 0, true},
		{"1e3", 0, true},
		{"1E3", 0, true},
		{"", 0, true},
		{"+5", 0, true},
		{" 5", 0, true},
	}
	for _, tt := range tests {
		got, err := payment.ParseMinor(tt.give)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseMinor(%q) = %d, %v; want %d, err %v", tt.give, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, payment.ErrInvalidAmount) {
			t.Errorf("ParseMinor(%q) error %v is not ErrInvalidAmount", tt.give, err)
		}
	}
}

func TestFormatParse(t *testing.T) {
	tests := []struct {
		minor    int64
		currency string
		want     string
	}{
		{1000, "KWD", "1.000"},
		{1, "KWD", "0.001"},
		{10, "KWD", "0.010"},
		{123456789, "KWD", "123456.789"},
		{0, "KWD", "0.000"},
		{-1500, "KWD", "-1.500"},
		{1000, "JPY", "1000"},
		{5, "USD", "0.05"},
		{-5, "EUR", "-0.05"},
		{9223372036854775807, "KWD", "9223372036854775.807"},
		{-9223372036854775808, "USD", "-92233720368547758.08"},
	}
	for _, tt := range tests {
		got, err := payment.Format(tt.minor, tt.currency)
		if err != nil || got != tt.want {
			t.Errorf("Format(%d, %s) = %q, %v; want %q", tt.minor, tt.currency, got, err, tt.want)
		}
		back, err := payment.Parse(got, tt.currency)
		if err != nil || back != tt.minor {
			t.Errorf("Parse(%q, %s) = %d, %v; want %d", got, tt.currency, back, err, tt.minor)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		give, currency string
		want           int64
		wantErr        bool
	}{
		{"1.5", "KWD", 1500, false},
		{"1", "KWD", 1000, false},
		{"0.001", "KWD", 1, false},
		{"1.0001", "KWD", 0, true},
		{"1.", "KWD", 0, true},
		{".5", "KWD", 0, true},
		{"1e3", "KWD", 0, true},
		{"1,000", "KWD", 0, true},
		{"10", "JPY", 10, false},
		{"10.0", "JPY", 0, true},
		{"9223372036854775.808", "KWD", 0, true},
		{"-9223372036854775.808", "KWD", -9223372036854775808, false},
		{"99999999999999999999999", "USD", 0, true},
		{"1.00", "kwd", 0, true},
	}
	for _, tt := range tests {
		got, err := payment.Parse(tt.give, tt.currency)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Parse(%q, %s) = %d, %v; want %d, err %v", tt.give, tt.currency, got, err, tt.want, tt.wantErr)
		}
	}
}
