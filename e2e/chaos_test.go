//go:build chaos

package e2e

// make chaos: the long version of every fault (50 reconciler and 10 receiver kills, a ledger
// locked or full for 5 minutes, NATS down for 30 s, more load).
func init() { long = true }
