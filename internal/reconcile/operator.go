package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"knetrecon/internal/store"
)

// ErrRefused means an operator's action changed nothing: what it named is gone or already handled.
var ErrRefused = errors.New("refused")

// Operator carries out operators' actions (from the desk or the command line) as facts on the
// stream: every ledger applies them, and keeps them in its audit trail.
type Operator struct {
	ledger *store.Ledger
	facts  *FactBus
}

// NewOperator returns an Operator over ledger (to name things) and facts (to act).
func NewOperator(ledger *store.Ledger, facts *FactBus) *Operator {
	return &Operator{ledger: ledger, facts: facts}
}

// Resolve closes discrepancy id with the operator's note.
func (o *Operator) Resolve(ctx context.Context, id int64, who, note string) (FactResult, error) {
	key, err := o.ledger.DiscrepancyKeyOf(ctx, id)
	if err != nil {
		return FactResult{}, err
	}
	if open, err := o.ledger.DiscrepancyOpen(ctx, id); err != nil {
		return FactResult{}, err
	} else if !open {
		return FactResult{}, fmt.Errorf("%w: discrepancy %d is resolved already", ErrRefused, id)
	}
	now := o.ledger.Now()
	return o.commit(ctx, Fact{Kind: FactResolve, ID: factID(FactResolve, key.PaymentID, string(key.Kind), key.Subject, stamp(now)), At: now,
		Operator: &OperatorNote{Who: who, Note: note}, Resolve: &key})
}

// Discard sets dead letter id aside with the operator's note.
func (o *Operator) Discard(ctx context.Context, id int64, who, note string) (FactResult, error) {
	seq, err := o.ledger.DeadLetterSeqOf(ctx, id)
	if err != nil {
		return FactResult{}, err
	}
	if d, err := o.ledger.DeadLetter(ctx, id); err != nil {
		return FactResult{}, err
	} else if d.DiscardedAt != nil {
		return FactResult{}, fmt.Errorf("%w: dead letter %d was discarded by %s already", ErrRefused, id, d.DiscardedBy)
	}
	now := o.ledger.Now()
	return o.commit(ctx, Fact{Kind: FactDiscard, ID: factID(FactDiscard, strconv.FormatUint(seq, 10), stamp(now)), At: now,
		Operator: &OperatorNote{Who: who, Note: note}, DeadLetterSeq: seq})
}

// Replay applies dead letter id again (its signature verified again), in every ledger.
func (o *Operator) Replay(ctx context.Context, id int64, who, note string) (FactResult, error) {
	seq, err := o.ledger.DeadLetterSeqOf(ctx, id)
	if err != nil {
		return FactResult{}, err
	}
	now := o.ledger.Now()
	return o.commit(ctx, Fact{Kind: FactReplay, ID: factID(FactReplay, strconv.FormatUint(seq, 10), stamp(now)), At: now,
		Operator: &OperatorNote{Who: who, Note: note}, DeadLetterSeq: seq})
}

func (o *Operator) commit(ctx context.Context, f Fact) (FactResult, error) {
	res, err := o.facts.Commit(ctx, f)
	if err != nil {
		return res, err
	}
	if res.Refused != "" {
		return res, fmt.Errorf("%w: %s", ErrRefused, res.Refused)
	}
	return res, nil
}
