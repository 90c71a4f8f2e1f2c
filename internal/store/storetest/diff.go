package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"knetrecon/internal/store"
)

// DiffLedgers compares two replicas row by row over every table the digest covers and returns
// each difference, readable (nothing: the same).
func DiffLedgers(tb testing.TB, a, b *store.Ledger) []string {
	tb.Helper()
	ctx := context.Background()
	var out []string
	for _, table := range store.DigestTableNames() {
		ra, err := a.DigestRows(ctx, table)
		if err != nil {
			tb.Fatal(err)
		}
		rb, err := b.DigestRows(ctx, table)
		if err != nil {
			tb.Fatal(err)
		}
		if len(ra) != len(rb) {
			out = append(out, fmt.Sprintf("%s: %d rows here, %d there", table, len(ra), len(rb)))
		}
		for i := range min(len(ra), len(rb)) {
			for j := range ra[i] {
				if ra[i][j] != rb[i][j] {
					out = append(out, fmt.Sprintf("%s row %d: %s | %s", table, i+1, clip(ra[i][j]), clip(rb[i][j])))
				}
			}
		}
	}
	return out
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return strings.ReplaceAll(s, "\n", " ")
}
