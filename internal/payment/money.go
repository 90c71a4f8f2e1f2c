package payment

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// ErrInvalidAmount is wrapped by every amount that is not a positive integer number of minor units
// that fits in an int64, and by every decimal string that does not parse exactly.
var ErrInvalidAmount = errors.New("invalid amount")

// ErrInvalidCurrency is wrapped when a currency is not a three-letter upper-case ISO 4217 code.
var ErrInvalidCurrency = errors.New("invalid currency")

// exponents lists the ISO 4217 currencies whose minor unit is not the usual hundredth. Checkout.com
// expresses every amount in these minor units: 1000 KWD is 1.000 KWD (fils), 1000 JPY is ¥1000.
var exponents = map[string]int{
	// Three decimals: the Gulf and North African dinars and rials.
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	// No decimals.
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}

// Exponent returns the number of decimal places of currency's minor unit: 3 for KWD, 0 for JPY,
// 2 for any other well-formed code. A code that is not three upper-case letters is refused.
func Exponent(currency string) (int, error) {
	if len(currency) != 3 {
		return 0, fmt.Errorf("%w: %q", ErrInvalidCurrency, currency)
	}
	for i := 0; i < 3; i++ {
		if currency[i] < 'A' || currency[i] > 'Z' {
			return 0, fmt.Errorf("%w: %q", ErrInvalidCurrency, currency)
		}
	}
	if e, ok := exponents[currency]; ok {
		return e, nil
	}
	return 2, nil
}

// MaxMinor is the largest amount accepted: Checkout.com's amounts are positive integers of at
// most 9 digits (999,999.999 KWD). Bounding every amount also keeps every SUM over the ledger far
// from int64's limit.
const MaxMinor = 999_999_999

// ParseMinor reads an amount as Checkout.com sends it (a JSON number of minor units) and accepts
// only a positive integer of at most MaxMinor: no sign, no fraction, no exponent, no float.
func ParseMinor(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: missing", ErrInvalidAmount)
	}
	if s[0] == '-' {
		return 0, fmt.Errorf("%w: %s is negative", ErrInvalidAmount, short(s))
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %s is not an integer number of minor units", ErrInvalidAmount, short(s))
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, fmt.Errorf("%w: %s does not fit in 64 bits", ErrInvalidAmount, short(s))
		}
		n = n*10 + d
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: zero", ErrInvalidAmount)
	}
	if n > MaxMinor {
		return 0, fmt.Errorf("%w: %s is over Checkout.com's 9 digits", ErrInvalidAmount, short(s))
	}
	return n, nil
}

// Format writes minor units of currency as an exact decimal: Format(1000, "KWD") is "1.000",
// Format(-5, "USD") is "-0.05", Format(1000, "JPY") is "1000".
func Format(minor int64, currency string) (string, error) {
	exp, err := Exponent(currency)
	if err != nil {
		return "", err
	}
	neg := minor < 0
	// Work on the unsigned magnitude so that math.MinInt64 formats too.
	u := uint64(minor)
	if neg {
		u = -u
	}
	digits := fmt.Sprintf("%d", u)
	if exp > 0 {
		if len(digits) <= exp {
			digits = strings.Repeat("0", exp-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-exp] + "." + digits[len(digits)-exp:]
	}
	if neg {
		return "-" + digits, nil
	}
	return digits, nil
}

// Parse reads a decimal amount of currency into minor units, exactly: Parse("1.5", "KWD") is 1500.
// More decimals than the currency has, white space, exponents and overflow are refused.
func Parse(s, currency string) (int64, error) {
	exp, err := Exponent(currency)
	if err != nil {
		return 0, err
	}
	in := s
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || len(frac) > exp {
		return 0, fmt.Errorf("%w: %q is not a %s amount", ErrInvalidAmount, short(in), currency)
	}
	digits := whole + frac + strings.Repeat("0", exp-len(frac))
	var n uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q is not a %s amount", ErrInvalidAmount, short(in), currency)
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, fmt.Errorf("%w: %q does not fit in 64 bits", ErrInvalidAmount, short(in))
		}
		n = n*10 + d
	}
	switch {
	case neg && n <= 1<<63:
		return int64(-n), nil // two's complement: -(1<<63) wraps to math.MinInt64
	case !neg && n <= math.MaxInt64:
		return int64(n), nil
	}
	return 0, fmt.Errorf("%w: %q does not fit in 64 bits", ErrInvalidAmount, short(in))
}

func short(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
