package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
	"knetrecon/internal/faultfs"
)

// TestClusterPowerCut: the three NATS servers' stores, both receivers' data and both ledgers on
// one file system that loses every write no fsync made durable (internal/faultfs); the power goes
// on all of them at once, under load. With sync_interval: always every webhook answered 2xx is in
// the stream and, once caught up without new traffic, in both ledgers. With the servers' default
// (a sync every 2 minutes) the figures say what a coordinated cut costs a replicated stream.
func TestClusterPowerCut(t *testing.T) {
	if !long {
		// Once, on a fresh clone, a reconciler hung at start on the mount and never logged a line;
		// until that is understood the case runs in make chaos only, where its failure is seen.
		t.Skip("the cluster power-cut case runs in make chaos (go test -tags chaos -run TestClusterPowerCut ./e2e)")
	}
	if err := faultfs.Available(); err != nil {
		t.Skipf("the cluster power-cut case needs FUSE: %v", err)
	}
	for _, mode := range []struct {
		name       string
		syncAlways bool
	}{{"sync_interval always", true}, {"sync_interval default", false}} {
		t.Run(strings.ReplaceAll(mode.name, " ", "-"), func(t *testing.T) { clusterPowerCuts(t, mode.name, mode.syncAlways) })
	}
}

func clusterPowerCuts(t *testing.T, mode string, syncAlways bool) {
	backing, mnt := t.TempDir(), t.TempDir()
	ffs, err := faultfs.Mount(backing, mnt)
	if err != nil {
		t.Skipf("the cluster power-cut case needs to mount a FUSE file system: %v", err)
	}
	t.Cleanup(func() {
		if err := ffs.Unmount(); err != nil {
			t.Error(err)
		}
	})
	c := newClusterWith(t, clusterOpts{dir: mnt, syncAlways: syncAlways})
	cuts, rate, phase := scale(1, 5), scale(60, 120), scale(3*time.Second, 8*time.Second)
	var loads []*load
	var acked, missingStream, missingLedger, worstStream int
	for i := range cuts {
		for j, u := range c.recvURLs {
			loads = append(loads, startLoadAs(t, u, rate, fmt.Sprintf("cluster_cut%d_%s_%d", i, strings.Fields(mode)[1], j), "knet"))
		}
		time.Sleep(phase)
		ffs.Cut()
		all := append(append(append([]*proc{}, c.nats...), c.receivers...), c.reconcilers...)
		killTogether(all...)
		for _, l := range loads {
			l.stopLoad()
		}
		if err := ffs.Remount(); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nats {
			n.start()
		}
		for i := range c.receivers {
			c.startReceiver(i)
		}
		for i := range c.reconcilers {
			c.startReconciler(i)
		}
		js, closeNC := c.connect(t)
		idle := c.consumersIdle(t, js, 60*time.Second)
		inStream := streamIDs(t, js)
		closeNC()
		ledgers := []map[string]bool{ledgerEventIDs(t, c.ledgers[0]), ledgerEventIDs(t, c.ledgers[1])}
		acked, missingStream, missingLedger = 0, 0, 0
		for _, l := range loads {
			l.mu.Lock()
			for id := range l.acked {
				acked++
				if !inStream[id] {
					missingStream++
				}
				for _, led := range ledgers {
					if !led[id] {
						missingLedger++
					}
				}
			}
			l.mu.Unlock()
		}
		worstStream = max(worstStream, missingStream)
		msg := fmt.Sprintf("cluster power cut %d of %d on all 3 NATS nodes, 2 receivers and 2 ledgers at once, %s, %d/s per receiver: "+
			"2xx so far %d; missing from the stream %d; missing from the 2 ledgers after catch-up without new traffic %d", i+1, cuts, mode, rate,
			acked, missingStream, missingLedger)
		if !idle {
			msg += " (a consumer still had pending messages)"
		}
		t.Log(msg)
		fmt.Printf("FIGURE %s\n", msg)
	}
	if acked == 0 {
		t.Fatal("no webhook got a 2xx")
	}
	if syncAlways && (worstStream != 0 || missingLedger != 0) {
		t.Errorf("%s: webhooks answered 2xx lost: %d from the stream, %d from the ledgers", mode, missingStream, missingLedger)
	}
}

// connect connects a test to the cluster (any node that answers).
func (c *cluster) connect(t *testing.T) (jetstream.JetStream, func()) {
	t.Helper()
	nc, err := nats.Connect(strings.Join(c.natsURLs, ","), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	return js, nc.Close
}

// consumersIdle waits (up to d) until both reconcilers' consumers have nothing pending and
// nothing unacknowledged.
func (c *cluster) consumersIdle(t *testing.T, js jetstream.JetStream, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		idle := true
		for _, name := range []string{"reconciler-a", "reconciler-b"} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			cons, err := js.Consumer(ctx, events.StreamName, name)
			var info *jetstream.ConsumerInfo
			if err == nil {
				info, err = cons.Info(ctx)
			}
			cancel()
			if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
				idle = false
			}
		}
		if idle {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}
