package events

import (
	"crypto/subtle"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Roles on the bus: each process holds the credential of one, and the server grants each only
// what it needs (deploy/nats/auth.conf for an external server, the same permissions built here
// for the embedded one). Keep the two in step: TestShippedAuthMatchesRoles compares them.
const (
	// RoleReceiver publishes webhooks and reads the stream's state; it may create the stream
	// when it is missing, never change, purge or delete it, consume or ack.
	RoleReceiver = "receiver"
	// RoleKeeper makes room in a full stream (Room): it reads the stream's state and its
	// consumers' ack floors and purges the stream. Room purges only at or below the slowest
	// durable consumer's ack floor; the server cannot check that, so the receiver holds this
	// credential in a connection of its own that does nothing else.
	RoleKeeper = "keeper"
	// RoleReconciler consumes with its own durable consumer (named as its user), reads the stream
	// by sequence, replays it with ordered consumers, publishes facts and holds the sweep's lease.
	RoleReconciler = "reconciler"
	// RoleOperator may do anything: maintenance by people (nats CLI), never a service.
	RoleOperator = "operator"
)

// Subjects of the JetStream API the roles are granted, for CHECKOUT_EVENTS and the lease bucket.
const (
	jsAPI     = "$JS.API."
	leaseKV   = "KV_" + LeaseBucket
	inboxes   = "_INBOX.>"
	streamAPI = jsAPI + "STREAM."
	consAPI   = jsAPI + "CONSUMER."
)

// ReceiverPermissions are the receiver's: publish webhooks (events and quarantine), read the
// stream's state and its consumers' (the backlog), the account's storage (the store circuit),
// and create the stream when it is missing.
func ReceiverPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			SubjectPrefix + ">", QuarantineSubject,
			jsAPI + "INFO",
			streamAPI + "INFO." + StreamName,
			streamAPI + "CREATE." + StreamName,
			consAPI + "LIST." + StreamName,
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{inboxes}},
	}
}

// KeeperPermissions are the keeper's: read the stream's state and its consumers' ack floors,
// and purge the stream (Room gives up applied history).
func KeeperPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			streamAPI + "INFO." + StreamName,
			consAPI + "LIST." + StreamName,
			streamAPI + "PURGE." + StreamName,
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{inboxes}},
	}
}

// ReconcilerPermissions are a reconciler's whose durable consumer is durable: create, update,
// delete, pull from and ack that consumer; create and pull from ordered consumers (replays, whose
// names are random, so any name but those in others: the other reconcilers' durables); read the
// stream by sequence; publish facts; hold the sweep's lease. Acks go only to its own consumer,
// and nothing lets it purge, delete or change the stream.
func ReconcilerPermissions(durable string, others []string) *server.Permissions {
	allow := []string{
		FactSubjectPrefix + ">",
		jsAPI + "INFO",
		streamAPI + "INFO." + StreamName,
		streamAPI + "MSG.GET." + StreamName,
		jsAPI + "DIRECT.GET." + StreamName,
		jsAPI + "DIRECT.GET." + StreamName + ".>",
		consAPI + "LIST." + StreamName,
		consAPI + "NAMES." + StreamName,
		consAPI + "INFO." + StreamName + ".*",
		consAPI + "CREATE." + StreamName + ".*",
		consAPI + "CREATE." + StreamName + ".*.>",
		consAPI + "MSG.NEXT." + StreamName + ".*",
		consAPI + "DELETE." + StreamName + "." + durable,
		"$JS.ACK." + StreamName + "." + durable + ".>",
		// The sweep's lease: a KV bucket, created by the first reconciler.
		streamAPI + "INFO." + leaseKV,
		streamAPI + "CREATE." + leaseKV,
		streamAPI + "MSG.GET." + leaseKV,
		jsAPI + "DIRECT.GET." + leaseKV + ".>",
		"$KV." + LeaseBucket + ".>",
	}
	var deny []string
	for _, o := range others {
		if o == durable {
			continue
		}
		deny = append(deny,
			consAPI+"CREATE."+StreamName+"."+o,
			consAPI+"CREATE."+StreamName+"."+o+".>",
			consAPI+"MSG.NEXT."+StreamName+"."+o)
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: allow, Deny: deny},
		Subscribe: &server.SubjectPermission{Allow: []string{inboxes}},
	}
}

// embeddedAuth authenticates the embedded server's clients against the credentials generated
// in the data directory (EmbeddedCredentials) and grants each its role's permissions:
//   - user receiver, user keeper: their own passwords;
//   - user operator, or a bare token (as before this release): the operator's, everything;
//   - any other user name: a reconciler whose durable consumer is that name, with the
//     reconcilers' password (every reconciler on the machine reads the same file, so they are
//     told apart by name, not by secret: they share the data directory's trust).
type embeddedAuth struct{ creds EmbeddedCredentials }

// Check implements server.Authenticator.
func (a embeddedAuth) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	same := func(got, want string) bool {
		return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	}
	var perms *server.Permissions
	switch {
	case o.Username == "" && o.Token != "":
		if !same(o.Token, a.creds.Operator) {
			return false
		}
		c.RegisterUser(&server.User{Username: RoleOperator})
		return true
	case o.Username == RoleOperator:
		if !same(o.Password, a.creds.Operator) {
			return false
		}
	case o.Username == RoleReceiver:
		if !same(o.Password, a.creds.Receiver) {
			return false
		}
		perms = ReceiverPermissions()
	case o.Username == RoleKeeper:
		if !same(o.Password, a.creds.Keeper) {
			return false
		}
		perms = KeeperPermissions()
	case validDurable(o.Username):
		if !same(o.Password, a.creds.Reconciler) {
			return false
		}
		perms = ReconcilerPermissions(o.Username, nil)
	default:
		return false
	}
	c.RegisterUser(&server.User{Username: o.Username, Password: o.Password, Permissions: perms})
	return true
}

// validDurable reports whether name can name a durable consumer and stand in a subject token.
func validDurable(name string) bool {
	return name != "" && !strings.ContainsAny(name, ".*> \t\r\n")
}
