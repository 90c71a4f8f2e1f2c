// Package events is knetrecon's road through NATS JetStream: the stream and its subjects, the
// publisher the receiver uses, the consumer the reconciler uses, and the embedded server that
// makes the local default work without any NATS installed.
package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream layout. The names are part of the operator's interface (nats CLI, alerts): keep them.
const (
	// StreamName is the one stream that holds every verified webhook.
	StreamName = "CHECKOUT_EVENTS"
	// SubjectPrefix starts the subject of every decodable event: checkout.events.<event type>.
	SubjectPrefix = "checkout.events."
	// QuarantineSubject holds authentic bodies (valid signature) whose envelope could not be decoded.
	QuarantineSubject = "checkout.quarantine"
)

// Message headers written by the receiver.
const (
	// HeaderMsgID is JetStream's de-duplication header: the event id, or the body's SHA-256 in quarantine.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderReceivedAt is when the receiver took the webhook in, RFC 3339 with nanoseconds, UTC.
	HeaderReceivedAt = "Knetrecon-Received-At"
	// HeaderKey names the webhook key that verified the body (its name, never the key).
	HeaderKey = "Knetrecon-Key"
	// HeaderEventType repeats the event type so consumers can route without decoding.
	HeaderEventType = "Knetrecon-Event-Type"
	// HeaderQuarantineReason says why a quarantined body could not be decoded.
	HeaderQuarantineReason = "Knetrecon-Quarantine-Reason"
	// HeaderSignature keeps the webhook's Cko-Signature exactly as received, so that the
	// reconciler verifies the body itself instead of trusting whoever published on the bus.
	HeaderSignature = "Cko-Signature"
)

// StreamConfig is the part of the stream's configuration an operator may tune.
type StreamConfig struct {
	// Replicas is the number of copies in a NATS cluster (1 for a single server, 3 in production clusters).
	Replicas int
	// MaxAge is how long messages are kept; long enough to replay a week.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size. JetStream itself refuses a message that would not fit
	// (DiscardNew): it counts every message's real size, from every receiver and reconciler at
	// once, so nothing a ledger has not applied is ever discarded to make room. Applied history
	// makes room instead: the receivers give up the oldest messages at or below the slowest
	// ledger's ack floor (see Room), so a caught-up ledger never blocks intake. MaxAge still
	// removes messages older than it, applied or not.
	MaxBytes int64
	// Duplicates is the de-duplication window; at least 48 h so that a retry days later is caught.
	Duplicates time.Duration
}

// MinDuplicates is the shortest de-duplication window accepted: Checkout.com retries for ~30 h.
const MinDuplicates = 48 * time.Hour

// DefaultStreamConfig returns safe defaults: one replica, 14 days, 10 GiB, a 72 h duplicate window.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{
		Replicas:   1,
		MaxAge:     14 * 24 * time.Hour,
		MaxBytes:   10 << 30,
		Duplicates: 72 * time.Hour,
	}
}

// Validate checks the configuration; its messages name the environment variable to fix.
func (c StreamConfig) Validate() error {
	var errs []error
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("KNETRECON_STREAM_REPLICAS must be 1 to 5, got %d", c.Replicas))
	}
	if c.Duplicates < MinDuplicates {
		errs = append(errs, fmt.Errorf("KNETRECON_STREAM_DUPLICATE_WINDOW must be at least %s, got %s", MinDuplicates, c.Duplicates))
	}
	if c.MaxAge < 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("KNETRECON_STREAM_MAX_AGE must be at least 168h (a week of replay), got %s", c.MaxAge))
	}
	if c.MaxAge < c.Duplicates {
		errs = append(errs, fmt.Errorf("KNETRECON_STREAM_MAX_AGE (%s) must not be shorter than KNETRECON_STREAM_DUPLICATE_WINDOW (%s)", c.MaxAge, c.Duplicates))
	}
	if c.MaxBytes == 0 || c.MaxBytes < -1 {
		errs = append(errs, fmt.Errorf("KNETRECON_STREAM_MAX_BYTES must be positive or -1 for no limit, got %d", c.MaxBytes))
	}
	return errors.Join(errs...)
}

// jetStreamConfig is the full stream configuration derived from c.
func (c StreamConfig) jetStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Verified Checkout.com webhooks, exact bodies, and the reconcilers' signed facts: the knetrecon ledgers' log",
		Subjects:    []string{SubjectPrefix + ">", QuarantineSubject, FactSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxAge:      c.MaxAge,
		MaxBytes:    c.MaxBytes,
		Duplicates:  c.Duplicates,
		MaxMsgSize:  8 << 20,
	}
}

// ErrStreamNotUpdated means the stream exists with a configuration other than the one asked
// for, and this credential may not change it (the receiver's may only create the stream): the
// stream is used as it is until an operator applies the change.
var ErrStreamNotUpdated = errors.New("stream " + StreamName + " differs from the configuration and this NATS credential may not update it")

// EnsureStream creates the stream, or updates it to cfg if it exists and differs. Calling it
// again with the same configuration changes nothing (and sends no update, which the receiver's
// credential may not), so every process may call it at start-up. When the update is refused for
// want of permission it returns the stream as it is and an error wrapping ErrStreamNotUpdated.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	want := cfg.jetStreamConfig()
	s, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if s, err = js.CreateStream(ctx, want); errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, StreamName) // another process created it first
		}
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", StreamName, err)
		}
		if sameStream(s.CachedInfo().Config, want) {
			return s, nil
		}
	} else if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	have := s.CachedInfo().Config
	if sameStream(have, want) {
		return s, nil
	}
	// A refused request gets no answer (the server drops it and tells the connection): wait for
	// the update a little only.
	uctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	u, err := js.UpdateStream(uctx, want)
	if err != nil {
		if Refused(js.Conn(), "$JS.API.STREAM.UPDATE."+StreamName) {
			return s, fmt.Errorf("%w (it has max_bytes %d, max_age %s, replicas %d, duplicates %s; asked for %d, %s, %d, %s): %w",
				ErrStreamNotUpdated, have.MaxBytes, have.MaxAge, have.Replicas, have.Duplicates, want.MaxBytes, want.MaxAge, want.Replicas, want.Duplicates, err)
		}
		return nil, fmt.Errorf("update stream %s: %w", StreamName, err)
	}
	return u, nil
}

// sameStream reports whether have already is the configuration want sets.
func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Retention == want.Retention && have.Discard == want.Discard &&
		have.Storage == want.Storage && have.Replicas == want.Replicas && have.MaxAge == want.MaxAge &&
		have.MaxBytes == want.MaxBytes && have.Duplicates == want.Duplicates && have.MaxMsgSize == want.MaxMsgSize &&
		have.Description == want.Description
}

// Refused reports whether the server refused nc's last publish to subject for want of
// permission. A refused request is dropped unanswered (the caller sees its timeout); the server
// says why on the connection, which keeps it as its last error.
func Refused(nc *nats.Conn, subject string) bool {
	err := nc.LastError()
	return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `Publish to "`+subject+`"`)
}

// Subject returns the subject for an event type: checkout.events.<type>. Characters NATS gives a
// meaning to (dots, wildcards, white space) are replaced by '_', so that any type Checkout.com
// invents lands on one valid token.
func Subject(eventType string) string {
	var b strings.Builder
	b.Grow(len(SubjectPrefix) + len(eventType))
	b.WriteString(SubjectPrefix)
	if eventType == "" {
		b.WriteString("_")
	}
	for _, r := range eventType {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
