package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
	"knetrecon/internal/store"
)

const (
	simSecret = "sk_sbox_e2e_cluster"
	factKey   = "e2e-fact-key"
)

// cluster is a three-node JetStream cluster, two receivers, two reconcilers (each with its own
// durable consumer and ledger) and the simulator, all on loopback.
type cluster struct {
	t           *testing.T
	dir         string
	logs        string // the processes' logs (beside dir: a power cut must not take them)
	nats        []*proc
	natsURLs    []string
	receivers   []*proc
	recvURLs    []string
	reconcilers []*proc
	adminURLs   []string
	ledgers     []string
	sim         *proc
	simURL      string
}

func newCluster(t *testing.T) *cluster { return newClusterWith(t, clusterOpts{}) }

// clusterOpts tune a cluster: dir holds every node's store, the receivers' data and the ledgers
// (a temporary folder when empty); syncAlways sets the NATS servers' sync_interval to always.
type clusterOpts struct {
	dir        string
	syncAlways bool
}

func newClusterWith(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: o.dir, logs: t.TempDir()}
	if c.dir == "" {
		c.dir = t.TempDir()
	}
	var routes, monitors []string
	var clientPorts []int
	for range 3 {
		clientPorts = append(clientPorts, freePort(t))
		monitors = append(monitors, fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", freePort(t)))
	}
	for i := range 3 {
		name := fmt.Sprintf("nats%d", i+1)
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, r)
			}
		}
		args := []string{"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(clientPorts[i]), "-n", name, "-m", strings.TrimPrefix(monitors[i], "http://127.0.0.1:"),
			"--cluster_name", "knetrecon", "--cluster", routes[i], "--routes", strings.Join(others, ",")}
		if o.syncAlways {
			conf := filepath.Join(t.TempDir(), name+".conf")
			if err := os.WriteFile(conf, []byte(fmt.Sprintf("jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", filepath.Join(c.dir, name))), 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "-c", conf)
		} else {
			args = append(args, "-sd", filepath.Join(c.dir, name))
		}
		n := newProc(t, c.logs, name, nil, args...)
		n.start()
		c.nats = append(c.nats, n)
		c.natsURLs = append(c.natsURLs, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	natsURL := strings.Join(c.natsURLs, ",")
	// The receivers read every server's sync setting from its /varz: with sync_interval always a
	// 2xx is on disk (KNETRECON_DURABLE holds); without, they are told they may answer before.
	durable := map[string]string{"KNETRECON_DURABLE": "false"}
	if o.syncAlways {
		durable = map[string]string{"KNETRECON_NATS_MONITOR_URL": strings.Join(monitors, ",")}
	}
	simPort := freePort(t)
	c.simURL = fmt.Sprintf("http://127.0.0.1:%d", simPort)
	for i := range 2 {
		port := freePort(t)
		c.recvURLs = append(c.recvURLs, fmt.Sprintf("http://127.0.0.1:%d", port))
		env := map[string]string{
			"KNETRECON_RECEIVER_ADDR":   fmt.Sprintf("127.0.0.1:%d", port),
			"KNETRECON_ADMIN_ADDR":      fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			"KNETRECON_NATS_URL":        natsURL,
			"KNETRECON_STREAM_REPLICAS": "3",
			"KNETRECON_DATA_DIR":        filepath.Join(c.dir, fmt.Sprintf("receiver%d", i+1)),
			"KNETRECON_WEBHOOK_KEYS":    webhookKey,
			"KNETRECON_START_TIMEOUT":   "60s",
		}
		maps.Copy(env, durable)
		c.receivers = append(c.receivers, newProc(t, c.logs, fmt.Sprintf("receiver%d", i+1), env))
	}
	// The simulator posts its webhooks to the first receiver, holds a fifth of them back (out of
	// order) and sends another fifth twice, fails a tenth of the API calls, and its abandoned payments' customers
	// never come back from the KNET page: the sweep must void them.
	c.sim = newProc(t, c.logs, "ckosim", map[string]string{
		"KNETRECON_CKOSIM_ADDR":           fmt.Sprintf("127.0.0.1:%d", simPort),
		"KNETRECON_CKOSIM_SECRET_KEY":     simSecret,
		"KNETRECON_CKOSIM_WEBHOOK_URL":    c.recvURLs[0] + "/webhooks/checkout",
		"KNETRECON_CKOSIM_WEBHOOK_KEY":    webhookKey,
		"KNETRECON_CKOSIM_API_5XX_RATE":   "0.1",
		"KNETRECON_CKOSIM_DELAY_RATE":     "0.2",
		"KNETRECON_CKOSIM_DUPLICATE_RATE": "0.2",
		"KNETRECON_CKOSIM_TIME_SCALE":     "0.01",
	})
	keys := filepath.Join(c.logs, "fact.keys")
	if err := os.WriteFile(keys, []byte(factKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		port := freePort(t)
		c.adminURLs = append(c.adminURLs, fmt.Sprintf("http://127.0.0.1:%d", port))
		c.ledgers = append(c.ledgers, filepath.Join(c.dir, fmt.Sprintf("ledger%d.db", i+1)))
		c.reconcilers = append(c.reconcilers, newProc(t, c.logs, fmt.Sprintf("reconciler%d", i+1), map[string]string{
			"KNETRECON_LEDGER":              c.ledgers[i],
			"KNETRECON_CONSUMER":            fmt.Sprintf("reconciler-%c", 'a'+i),
			"KNETRECON_ADMIN_ADDR":          fmt.Sprintf("127.0.0.1:%d", port),
			"KNETRECON_NATS_URL":            natsURL,
			"KNETRECON_DATA_DIR":            filepath.Join(c.dir, fmt.Sprintf("reconciler%d", i+1)),
			"KNETRECON_WEBHOOK_KEYS":        webhookKey,
			"KNETRECON_FACT_KEYS_FILE":      keys,
			"KNETRECON_CHECKOUT_URL":        c.simURL,
			"KNETRECON_CHECKOUT_SECRET_KEY": simSecret,
			"KNETRECON_CHECKOUT_RATE_LIMIT": "100",
			"KNETRECON_SWEEP_SCHEDULE":      "@every 1s",
			"KNETRECON_PENDING_TIMEOUT":     "2s",
			"KNETRECON_VOID_GRACE":          "1s",
			"KNETRECON_STUCK_AFTER":         "10m",
			"KNETRECON_VERIFY_AFTER":        "off",
			"KNETRECON_SWEEP_LEASE_TTL":     "2s",
			"KNETRECON_REPORT_SCHEDULE":     "off",
			"KNETRECON_ACK_WAIT":            "5s",
			"KNETRECON_START_TIMEOUT":       "60s",
		}, "run"))
	}
	for i := range c.receivers {
		c.startReceiver(i)
	}
	c.sim.start()
	waitFor(t, 20*time.Second, "the simulator", func() bool { return status(c.simURL+"/_sim/now") == 200 })
	for i := range c.reconcilers {
		c.startReconciler(i)
	}
	return c
}

func (c *cluster) startReceiver(i int) {
	c.t.Helper()
	c.receivers[i].start()
	waitFor(c.t, 60*time.Second, "receiver ready", func() bool { return status(c.recvURLs[i]+"/readyz") == 200 })
}

func (c *cluster) startReconciler(i int) {
	c.t.Helper()
	c.reconcilers[i].start()
	waitFor(c.t, 60*time.Second, "reconciler ready", func() bool { return status(c.adminURLs[i]+"/readyz") == 200 })
}

// leader returns which reconciler holds the sweep's lease (-1: none of the running ones).
func (c *cluster) leader() int {
	for i, u := range c.adminURLs {
		if !c.reconcilers[i].running() {
			continue
		}
		if v, ok := gauge(u+"/metrics", "knetrecon_reconciler_sweep_leader"); ok && v == 1 {
			return i
		}
	}
	return -1
}

// gauge reads one unlabelled series from a /metrics page, without failing the test.
func gauge(url, name string) (float64, bool) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// sim calls the simulator's API or control endpoints.
func (c *cluster) simCall(method, path string, body any) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.simURL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+simSecret)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if len(raw) > 0 && raw[0] == '[' {
		var list []any
		_ = json.Unmarshal(raw, &list)
		return map[string]any{"list": list}, nil
	}
	_ = json.Unmarshal(raw, &out)
	return out, nil
}

// abandon creates a KNET payment whose customer lands on the KNET page and never comes back: it
// stays Pending at Checkout.com until the sweep voids it.
func (c *cluster) abandon(n int) (string, error) {
	p, err := c.simCall(http.MethodPost, "/_sim/payments", map[string]any{"amount": (100 + n) * 10, "currency": "KWD",
		"reference": fmt.Sprintf("ABANDONED-%d", n), "source": map[string]any{"type": "knet", "language": "en"}})
	if err != nil {
		return "", err
	}
	id, _ := p["id"].(string)
	if _, err := c.simCall(http.MethodPost, "/_sim/payments/"+id+"/land", nil); err != nil {
		return "", err
	}
	return id, nil
}

// voids counts the approved Void actions the simulator holds for a payment.
func (c *cluster) voids(id string) (int, error) {
	var out map[string]any
	var err error
	for range 20 { // the simulator fails a tenth of the API calls, ours included
		if out, err = c.simCall(http.MethodGet, "/payments/"+id+"/actions", nil); err == nil {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	n := 0
	list, _ := out["list"].([]any)
	for _, a := range list {
		if m, ok := a.(map[string]any); ok && m["type"] == "Void" {
			n++
		}
	}
	return n, nil
}

// digest runs `reconciler digest --json` on a ledger.
func digestOf(t *testing.T, ledger string) store.Digest {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "reconciler"), "digest", "--json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "KNETRECON_LEDGER=" + ledger}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("digest of %s: %v %s", ledger, err, out)
	}
	var d store.Digest
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("digest of %s: %v %s", ledger, err, out)
	}
	return d
}

// lastSeq reads the stream's last sequence from any node that answers.
func (c *cluster) lastSeq() (uint64, error) {
	nc, err := nats.Connect(strings.Join(c.natsURLs, ","), nats.Timeout(2*time.Second))
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.Config.Replicas != 3 {
		return 0, fmt.Errorf("stream has %d replicas, want 3", info.Config.Replicas)
	}
	return info.State.LastSeq, nil
}

// TestClusterFailover: a three-node JetStream cluster, two receivers, two reconcilers and the
// simulator with faults, under steady signed load; kill -9 one NATS node, then the sweeping
// reconciler, then restart both. At the end every webhook answered 2xx is in both ledgers
// exactly once, both ledgers are equal (payments, postings, discrepancies), the sweep went on
// under the other reconciler, and each abandoned payment was voided once at the simulator.
func TestClusterFailover(t *testing.T) {
	c := newCluster(t)
	rate := scale(40, 100)
	loads := []*load{
		startLoadAs(t, c.recvURLs[0], rate, "cluster_a", "card"),
		startLoadAs(t, c.recvURLs[1], rate, "cluster_b", "card"),
	}
	var mu sync.Mutex
	var abandoned []string
	stopAbandon := make(chan struct{})
	var abandonDone sync.WaitGroup
	abandonDone.Add(1)
	go func() {
		defer abandonDone.Done()
		for n := 0; ; n++ {
			select {
			case <-stopAbandon:
				return
			case <-time.After(400 * time.Millisecond):
			}
			id, err := c.abandon(n)
			if err != nil {
				t.Errorf("abandoned payment %d: %v", n, err)
				return
			}
			mu.Lock()
			abandoned = append(abandoned, id)
			mu.Unlock()
		}
	}()
	var leader int
	waitFor(t, 20*time.Second, "a sweep leader", func() bool { leader = c.leader(); return leader >= 0 })
	time.Sleep(scale(3*time.Second, 10*time.Second))

	// A NATS node dies (the one the receivers and reconcilers are likeliest on), then comes back.
	c.nats[0].kill()
	t.Logf("kill -9 nats1; 2xx so far %d + %d", loads[0].count2xx(), loads[1].count2xx())
	time.Sleep(scale(3*time.Second, 10*time.Second))

	// The lease may have moved while NATS lost a server (a holder that cannot renew gives way).
	// Whoever holds it now: while it sweeps (voiding the payments abandoned meanwhile), the
	// standby voids nothing, since it never calls Checkout.com.
	waitFor(t, 20*time.Second, "a sweep leader", func() bool { leader = c.leader(); return leader >= 0 })
	other := 1 - leader
	voids := func(i int) float64 {
		v, _ := gauge(c.adminURLs[i]+"/metrics", "knetrecon_sweep_voids_total")
		return v
	}
	standbyBefore, leaderBefore := voids(other), voids(leader)
	waitFor(t, 30*time.Second, "the sweep's leader voiding abandoned payments", func() bool {
		return c.leader() != leader || voids(leader) > leaderBefore
	})
	if c.leader() == leader {
		if got := voids(other); got != standbyBefore {
			t.Fatalf("the standby reconciler voided %v payments while the other held the lease: only the holder calls Checkout.com", got-standbyBefore)
		}
	} else {
		t.Log("the lease moved meanwhile; the standby's voids are not counted this time")
	}

	// The sweeping reconciler dies: the other takes the lease over and sweeps on.
	killed := time.Now()
	c.reconcilers[leader].kill()
	waitFor(t, 30*time.Second, "the other reconciler to take the sweep over", func() bool { return c.leader() == other })
	takeover := time.Since(killed)
	t.Logf("kill -9 reconciler %d (the sweep's leader); reconciler %d took over in %s", leader+1, other+1, takeover.Round(time.Millisecond))
	waitFor(t, 20*time.Second, "the new leader voiding abandoned payments", func() bool {
		v, ok := gauge(c.adminURLs[other]+"/metrics", "knetrecon_sweep_voids_total")
		return ok && v > 0
	})
	time.Sleep(scale(3*time.Second, 10*time.Second))

	c.nats[0].start()
	c.startReconciler(leader)
	takeovers := []time.Duration{takeover}
	// The long version kills the sweep's leader again and again, each time restarted: the
	// take-over time's spread.
	for range scale(0, 8) {
		time.Sleep(3 * time.Second)
		l := c.leader()
		if l < 0 {
			t.Fatal("no sweep leader")
		}
		killed := time.Now()
		c.reconcilers[l].kill()
		waitFor(t, 30*time.Second, "a take-over", func() bool { return c.leader() == 1-l })
		takeovers = append(takeovers, time.Since(killed))
		c.startReconciler(l)
	}
	slices.Sort(takeovers)
	time.Sleep(scale(3*time.Second, 10*time.Second))
	close(stopAbandon)
	abandonDone.Wait()
	for _, l := range loads {
		l.stopLoad()
	}

	// Every abandoned payment voided once at the simulator and Voided in both ledgers; every 2xx
	// in both ledgers; then both ledgers at the stream's end, equal.
	mu.Lock()
	ids := append([]string(nil), abandoned...)
	mu.Unlock()
	// Captures after an expiry open discrepancies in both ledgers; an operator resolves one from
	// the command line, on reconciler 1's ledger: a fact, so resolved in both.
	for i := range 5 {
		for _, ev := range []struct{ id, typ, action string }{{"exp", "payment_expired", ""}, {"cap", "payment_captured", fmt.Sprintf(`"action_id":"act_late_%d",`, i)}} {
			b := fmt.Appendf(nil, `{"id":"evt_late_%s_%d","type":%q,"version":"1.0.1","created_on":"2026-12-01T10:0%d:00Z",`+
				`"data":{"id":"pay_late_%d",%s"amount":5000,"currency":"KWD","reference":"LATE-%d","source":{"type":"card"}}}`, ev.id, i, ev.typ, i, i, ev.action, i)
			req, _ := http.NewRequest(http.MethodPost, c.recvURLs[i%2]+"/webhooks/checkout", bytes.NewReader(b))
			req.Header.Set("Cko-Signature", sign(webhookKey, b))
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("late webhook %s %d: %v %v", ev.id, i, resp, err)
			}
			resp.Body.Close()
		}
	}
	var discrepancy string
	waitFor(t, 30*time.Second, "the captures after expiry as discrepancies", func() bool {
		db, err := openRO(c.ledgers[0])
		if err != nil {
			return false
		}
		defer db.Close()
		var n int
		err = db.QueryRow(`SELECT COUNT(*), MIN(id) FROM discrepancies WHERE kind = 'captured_after_expiry'`).Scan(&n, &discrepancy)
		return err == nil && n == 5
	})
	cli := exec.Command(filepath.Join(bin, "reconciler"), "resolve", discrepancy, "--note", "refunded by hand, ticket 7")
	cli.Env = []string{"PATH=" + os.Getenv("PATH"), "KNETRECON_LEDGER=" + c.ledgers[0], "KNETRECON_NATS_URL=" + strings.Join(c.natsURLs, ","),
		"KNETRECON_FACT_KEYS_FILE=" + filepath.Join(c.logs, "fact.keys"), "KNETRECON_DATA_DIR=" + filepath.Join(c.dir, "reconciler1"), "USER=ops"}
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), "resolved") {
		t.Fatalf("reconciler resolve: %v %s", err, out)
	}
	waitFor(t, 30*time.Second, "the resolution in both ledgers", func() bool {
		for _, ledger := range c.ledgers {
			db, err := openRO(ledger)
			if err != nil {
				return false
			}
			var n int
			err = db.QueryRow(`SELECT COUNT(*) FROM discrepancies WHERE kind = 'captured_after_expiry' AND resolution LIKE 'by hand (ops): refunded%'`).Scan(&n)
			db.Close()
			if err != nil || n != 1 {
				return false
			}
		}
		return true
	})

	waitFor(t, 90*time.Second, "every abandoned payment voided in both ledgers", func() bool {
		for _, ledger := range c.ledgers {
			db, err := openRO(ledger)
			if err != nil {
				return false
			}
			var n int
			err = db.QueryRow(`SELECT COUNT(*) FROM payments WHERE reference LIKE 'ABANDONED-%' AND status = 'Voided'`).Scan(&n)
			db.Close()
			if err != nil || n != len(ids) {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		if n, err := c.voids(id); err != nil || n != 1 {
			t.Errorf("abandoned payment %s: %d voids at the simulator (%v), want exactly 1", id, n, err)
		}
	}
	var tallies []tally
	for i, ledger := range c.ledgers {
		for _, l := range loads {
			tl := settle(t, ledger, l, 60*time.Second)
			assertNothingLost(t, fmt.Sprintf("cluster: ledger %d, load %s", i+1, l.prefix), tl)
			tallies = append(tallies, tl)
		}
	}
	var last uint64
	waitFor(t, 60*time.Second, "both ledgers at the stream's end", func() bool {
		seq, err := c.lastSeq()
		if err != nil {
			return false
		}
		last = seq
		for _, ledger := range c.ledgers {
			if d := digestOf(t, ledger); d.StreamSeq != seq {
				return false
			}
		}
		return true
	})
	d1, d2 := digestOf(t, c.ledgers[0]), digestOf(t, c.ledgers[1])
	if !d1.Same(d2) {
		t.Fatalf("the two ledgers differ at stream seq %d in %v:\n  ledger 1 %+v\n  ledger 2 %+v", last, d1.Differs(d2), d1, d2)
	}
	msg := fmt.Sprintf("cluster (3 NATS nodes, 2 receivers, 2 reconcilers): %d webhooks 2xx, %d abandoned payments voided once; nats1 and the sweep's leader killed -9 and restarted; "+
		"sweep taken over in %s (%d kills: min %s, max %s; lease TTL 2s); both ledgers equal at stream seq %d: %d payments, %d postings, %d discrepancies (one resolved by an operator on one ledger: resolved in both), digest %s",
		tallies[0].acked+tallies[1].acked, len(ids), takeover.Round(time.Millisecond), len(takeovers),
		takeovers[0].Round(time.Millisecond), takeovers[len(takeovers)-1].Round(time.Millisecond), last, d1.Payments, d1.Postings, d1.Discrepancies, d1.SHA256[:16])
	t.Log(msg)
	fmt.Println("FIGURE " + msg)
}

// openRO opens a ledger for reading, beside the reconciler writing it.
func openRO(path string) (*sql.DB, error) { return sql.Open("sqlite3", store.DSN(path, true)) }
