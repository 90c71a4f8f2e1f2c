package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// AlertKinds are the discrepancies announced on the alert webhook: stuck payments and every kind
// that means money is wrong or unposted (payment.MoneyKinds; webhook_missing only once it has
// been open a day: most are late webhooks that arrive within Checkout.com's retries).
var AlertKinds = append([]payment.Kind{KindStuck}, payment.MoneyKinds...)

// WebhookMissingGrace is how long a webhook_missing stays open before it is announced.
const WebhookMissingGrace = 24 * time.Hour

// Alerter announces discrepancies on a Slack-compatible webhook: one message when one opens, one
// when it resolves. The ledger remembers what was announced, so nothing repeats every sweep and
// a failed delivery is tried again on the next pass. It runs on its own goroutine: a slow or
// broken alert endpoint never holds up the sweep.
type Alerter struct {
	ledger  *store.Ledger
	facts   *FactBus
	url     string
	client  *http.Client
	log     *zap.Logger
	metrics *SweepMetrics
	nudge   chan struct{}
	mu      sync.Mutex
	// Now is the clock for WebhookMissingGrace.
	Now func() time.Time
	// Leader, when set, reports whether this reconciler holds the sweep's lease: only it alerts.
	Leader func() bool
}

// NewAlerter returns an Alerter posting to url. metrics may be nil.
// What was announced is a fact on the stream (facts), so a new leader never announces it again.
func NewAlerter(ledger *store.Ledger, facts *FactBus, url string, log *zap.Logger, metrics *SweepMetrics) *Alerter {
	return &Alerter{ledger: ledger, facts: facts, url: url, client: &http.Client{Timeout: 5 * time.Second}, log: log, metrics: metrics,
		nudge: make(chan struct{}, 1), Now: time.Now}
}

// Nudge asks for a delivery pass soon; it never blocks.
func (a *Alerter) Nudge() {
	select {
	case a.nudge <- struct{}{}:
	default:
	}
}

// Run delivers on every nudge and at least every interval, until ctx ends.
func (a *Alerter) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.nudge:
		case <-t.C:
		}
		if a.Leader != nil && !a.Leader() {
			continue
		}
		if _, err := a.Deliver(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("alert delivery failed; will retry", zap.Error(err))
		}
	}
}

// mark publishes that al was announced (or, for a webhook_missing resolved within its grace, that
// it never will be).
func (a *Alerter) mark(ctx context.Context, al store.Alert) error {
	key := store.DiscrepancyKey{PaymentID: al.PaymentID, Kind: al.Kind, Subject: al.Subject}
	which := "opened"
	both := !al.Resolved && al.ResolvedAt != nil
	switch {
	case al.Resolved:
		which = "resolved"
	case both:
		which = "both"
	}
	now := a.Now()
	_, err := a.facts.Commit(ctx, Fact{Kind: FactAlerted, ID: factID(FactAlerted, key.PaymentID, string(key.Kind), key.Subject, which), At: now,
		Alerted: &AlertedFact{DiscrepancyKey: key, Resolved: al.Resolved, Both: both}})
	if err != nil {
		return fmt.Errorf("alert for discrepancy %d: %w", al.ID, err)
	}
	return nil
}

// Deliver announces every pending alert, oldest first, and returns how many were sent. It stops
// at the first failure (the endpoint is likely down) and leaves the rest for the next pass.
func (a *Alerter) Deliver(ctx context.Context) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	pending, err := a.ledger.PendingAlerts(ctx, AlertKinds, 100)
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, al := range pending {
		if al.Kind == payment.KindWebhookMissing && !al.Resolved {
			if al.ResolvedAt != nil {
				// The late webhook came within the grace: nothing to announce, ever.
				if err := a.mark(ctx, al); err != nil {
					return sent, err
				}
				continue
			}
			if a.Now().Sub(al.DetectedAt) < WebhookMissingGrace {
				continue // announced once it has been open a day
			}
		}
		if err := a.post(ctx, al); err != nil {
			a.count("failed")
			return sent, fmt.Errorf("alert for discrepancy %d: %w", al.ID, err)
		}
		if err := a.mark(ctx, al); err != nil {
			return sent, err
		}
		a.count("sent")
		sent++
		a.log.Info("alert sent", zap.Int64("discrepancy_id", al.ID), zap.String("kind", string(al.Kind)),
			zap.String("payment_id", al.PaymentID), zap.Bool("resolved", al.Resolved))
	}
	return sent, nil
}

func (a *Alerter) count(result string) {
	if a.metrics != nil {
		a.metrics.alerts.WithLabelValues(result).Inc()
	}
}

// AlertMessage is the JSON posted: Slack's `text`, plus fields for machines.
type AlertMessage struct {
	Text          string          `json:"text"`
	State         string          `json:"state"` // open or resolved
	Kind          string          `json:"kind"`
	PaymentID     string          `json:"payment_id"`
	DiscrepancyID int64           `json:"discrepancy_id"`
	Details       json.RawMessage `json:"details,omitempty"`
}

func (a *Alerter) post(ctx context.Context, al store.Alert) error {
	msg := AlertMessage{Kind: string(al.Kind), PaymentID: al.PaymentID, DiscrepancyID: al.ID, Details: al.Details, State: "open"}
	// A deposit's discrepancy is a posting day's, not a payment's.
	on := "on payment " + al.PaymentID
	if al.PaymentID == "" {
		on = "for " + strings.TrimPrefix(al.Subject, "deposit:")
	}
	if al.Resolved || al.ResolvedAt != nil {
		msg.State = "resolved"
		msg.Text = fmt.Sprintf(":white_check_mark: knetrecon: %s %s resolved (%s)", al.Kind, on, al.Resolution)
	} else {
		msg.Text = fmt.Sprintf(":rotating_light: knetrecon: %s %s: %s", al.Kind, on, al.Details)
	}
	body, _ := json.Marshal(msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alert endpoint answered %d", resp.StatusCode)
	}
	return nil
}
