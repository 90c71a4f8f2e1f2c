package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"knetrecon/internal/checkout"
	"knetrecon/internal/checkout/ckosim"
)

// demoMix is the share of each demo outcome, in percent: mostly captured, some refunded in parts,
// some canceled, declined, expired, and a few customers who never come back (left Pending for
// the reconciler's sweep to void).
var demoMix = []struct {
	name   string
	weight int
}{
	{"captured", 50},
	{"partially refunded", 14},
	{"refunded in parts", 6},
	{"canceled", 10},
	{"declined", 8},
	{"expired", 7},
	{"abandoned", 5},
}

// demo creates Config.Demo payments and drives each through an outcome drawn from demoMix, one
// step every DemoInterval, so that a person watching the receiver and the ledger sees every path.
func (m *Main) demo(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(m.Config.Seed), 99))
	total := 0
	for _, o := range demoMix {
		total += o.weight
	}
	counts := map[string]int{}
	for i := 1; i <= m.Config.Demo; i++ {
		pick, outcome := rng.IntN(total), ""
		for _, o := range demoMix {
			if pick < o.weight {
				outcome = o.name
				break
			}
			pick -= o.weight
		}
		amount := int64(rng.IntN(25000)+50) * 10 // 0.500 to 250.490 KWD, in fils
		status, err := m.demoPayment(ctx, rng, i, amount, outcome)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.Log.Warn("demo payment", zap.Int("n", i), zap.String("outcome", outcome), zap.Error(err))
			continue
		}
		counts[status]++
	}
	m.Log.Info("demo finished", zap.Int("payments", m.Config.Demo), zap.Any("by_status", counts))
}

func (m *Main) pause(ctx context.Context) bool {
	if m.Config.DemoInterval <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(m.Config.DemoInterval)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *Main) demoPayment(ctx context.Context, rng *rand.Rand, n int, amount int64, outcome string) (string, error) {
	sim := m.Sim
	ref := fmt.Sprintf("%s%04d", m.Config.DemoPrefix, n)
	meta, _ := json.Marshal(map[string]any{"order_id": ref, "demo": true})
	created, err := sim.CreatePayment(ckosim.PaymentRequest{
		Amount: amount, Currency: "KWD", Reference: ref, Metadata: meta,
		Source:   checkout.Source{Type: "knet", Language: []string{"en", "ar"}[rng.IntN(2)], UserDefinedField1: "demo order " + fmt.Sprint(n)},
		Customer: checkout.Customer{Email: fmt.Sprintf("customer%d@example.com", n)},
	})
	if err != nil {
		return "", fmt.Errorf("create: %w", err)
	}
	id := created.ID
	log := m.Log.With(zap.String("payment_id", id), zap.String("reference", ref), zap.Int64("amount", amount), zap.String("outcome", outcome))
	log.Info("demo payment created", zap.String("redirect", created.RedirectURL))
	if outcome == "abandoned" {
		return checkout.StatusPending, nil
	}
	if err := sim.Land(id); err != nil {
		return "", err
	}
	if !m.pause(ctx) {
		return "", ctx.Err()
	}
	var status string
	switch outcome {
	case "canceled":
		status, err = sim.Cancel(id)
	case "declined":
		status, err = sim.Decline(id)
	case "expired":
		status, err = sim.Expire(id)
	default:
		status, err = sim.Complete(id, ckosim.TestCard)
	}
	if err != nil {
		return status, err
	}
	parts := 0
	switch outcome {
	case "partially refunded":
		parts = 1 + rng.IntN(2)
	case "refunded in parts":
		parts = 2
	}
	for p := 1; p <= parts; p++ {
		if !m.pause(ctx) {
			return status, ctx.Err()
		}
		part := amount / 4 / 10 * 10
		if part == 0 {
			part = 10
		}
		if _, err := sim.Refund(id, part, fmt.Sprintf("%s-R%d", ref, p)); err != nil {
			return status, fmt.Errorf("refund: %w", err)
		}
	}
	if outcome == "refunded in parts" {
		if _, err := sim.Refund(id, 0, ref+"-RFINAL"); err != nil {
			return status, fmt.Errorf("final refund: %w", err)
		}
	}
	p, err := sim.Payment(id)
	if err != nil {
		return status, err
	}
	log.Info("demo payment done", zap.String("status", p.Status))
	return p.Status, nil
}
