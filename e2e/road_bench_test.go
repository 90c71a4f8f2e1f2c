//go:build roadbench

package e2e

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ledgerWatch notes when each event first shows in a ledger, polling it every 5 ms.
type ledgerWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time
	stop chan struct{}
	done chan struct{}
}

func watchLedger(t *testing.T, path string) *ledgerWatch {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	w := &ledgerWatch{seen: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer db.Close()
		var last int64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			rows, err := db.Query(`SELECT rowid, id FROM events WHERE rowid > ? ORDER BY rowid LIMIT 20000`, last)
			if err != nil {
				continue
			}
			now := time.Now()
			w.mu.Lock()
			for rows.Next() {
				var id string
				if rows.Scan(&last, &id) == nil {
					if _, ok := w.seen[id]; !ok {
						w.seen[id] = now
					}
				}
			}
			w.mu.Unlock()
			rows.Close()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-w.stop:
		default:
			close(w.stop)
		}
		<-w.done
	})
	return w
}

// roadRun is one measured run: webhooks answered 2xx, and how long each took from being sent to
// being committed in the ledger.
type roadRun struct {
	acked         int
	window, drain time.Duration
	p50, p99, max time.Duration
}

func (r roadRun) String() string {
	return fmt.Sprintf("%d webhooks 2xx in %s (%.0f/s taken in), all in the ledger %s after the load stopped (%.0f/s end to end); "+
		"webhook sent to ledger commit p50 %s p99 %s max %s",
		r.acked, r.window, float64(r.acked)/r.window.Seconds(), r.drain.Round(time.Millisecond),
		float64(r.acked)/(r.window+r.drain).Seconds(), r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), r.max.Round(time.Millisecond))
}

// road sends rate webhooks/s in all, split over urls, for d, and waits until ledger holds them.
func road(t *testing.T, name string, urls []string, ledger string, rate, senders int, d time.Duration) roadRun {
	t.Helper()
	w := watchLedger(t, ledger)
	var loads []*load
	for i, u := range urls {
		loads = append(loads, startLoadWith(t, u, rate/len(urls), fmt.Sprintf("%s_%d", name, i), "card", senders/len(urls)))
	}
	time.Sleep(d)
	stopped := time.Now()
	for _, l := range loads {
		l.stopLoad()
	}
	var r roadRun
	r.window = time.Since(stopped) + d
	deadline := time.Now().Add(3 * time.Minute)
	for {
		missing := 0
		w.mu.Lock()
		for _, l := range loads {
			l.mu.Lock()
			for id := range l.acked {
				if _, ok := w.seen[id]; !ok {
					missing++
				}
			}
			l.mu.Unlock()
		}
		w.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d acknowledged webhooks not in the ledger after 3 minutes", name, missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.drain = time.Since(stopped)
	var lat []time.Duration
	w.mu.Lock()
	for _, l := range loads {
		for id, sent := range l.sentAt {
			lat = append(lat, w.seen[id].Sub(sent))
		}
	}
	w.mu.Unlock()
	slices.Sort(lat)
	r.acked = len(lat)
	if len(lat) > 0 {
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return r
}

// TestRoadClusterVsSingle measures the whole road (signed webhook to ledger commit) on a single
// nats-server (R1; one receiver, one reconciler), on the three-node cluster (R3; two receivers,
// two reconcilers, each with its ledger) with the servers' default sync_interval (2 minutes), and
// on the same cluster with sync_interval: always (every write fsynced before it is acknowledged,
// the setting deploy/nats/cluster-*.conf ship and KNETRECON_DURABLE asks for), on this box, in the
// same run: the p99 of webhook-to-ledger time at 1,000/s, and the most the road takes in with 64
// senders. `make bench-cluster`.
func TestRoadClusterVsSingle(t *testing.T) {
	type setup struct {
		name   string
		urls   []string
		ledger string
	}
	var results []string
	measure := func(s setup) (roadRun, roadRun) {
		fixed := road(t, s.name+"_fixed", s.urls, s.ledger, 1000, 16, 20*time.Second)
		t.Logf("%s at 1,000/s: %s", s.name, fixed)
		most := road(t, s.name+"_most", s.urls, s.ledger, 50000, 64, 15*time.Second)
		t.Logf("%s, 64 senders: %s", s.name, most)
		return fixed, most
	}
	rate := func(r roadRun) float64 { return float64(r.acked) / r.window.Seconds() }
	single := newStack(t, stackOpts{externalNATS: true})
	sf, sm := measure(setup{"single", []string{single.recvURL}, single.ledger})
	single.reconciler.kill()
	single.receiver.kill()
	single.nats.kill()

	c := newCluster(t)
	cf, cm := measure(setup{"cluster", c.recvURLs, c.ledgers[0]})
	for _, p := range append(append(append([]*proc{c.sim}, c.reconcilers...), c.receivers...), c.nats...) {
		p.kill()
	}

	cs := newClusterWith(t, clusterOpts{syncAlways: true})
	sf2, sm2 := measure(setup{"cluster_sync_always", cs.recvURLs, cs.ledgers[0]})
	results = append(results,
		"single node (R1, 1 receiver, 1 reconciler) at 1,000/s: "+sf.String(),
		"cluster (3 nodes R3, 2 receivers, 2 reconcilers) at 1,000/s: "+cf.String(),
		"cluster, sync_interval always, at 1,000/s: "+sf2.String(),
		"single node, 64 senders: "+sm.String(),
		"cluster, 64 senders: "+cm.String(),
		"cluster, sync_interval always, 64 senders: "+sm2.String(),
		fmt.Sprintf("cluster / single: p99 at 1,000/s %.2f×; taken in %.2f×; end to end %.2f×",
			float64(cf.p99)/float64(sf.p99), rate(cm)/rate(sm),
			(float64(cm.acked)/(cm.window+cm.drain).Seconds())/(float64(sm.acked)/(sm.window+sm.drain).Seconds())),
		fmt.Sprintf("cluster sync always / cluster default: p99 at 1,000/s %.2f×; taken in %.2f×; end to end %.2f×",
			float64(sf2.p99)/float64(cf.p99), rate(sm2)/rate(cm),
			(float64(sm2.acked)/(sm2.window+sm2.drain).Seconds())/(float64(cm.acked)/(cm.window+cm.drain).Seconds())))
	fmt.Println("FIGURE road " + strings.Join(results, "\nFIGURE road "))
}
