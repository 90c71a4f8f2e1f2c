// Package e2e is the black-box fault suite: it builds the receiver, the reconciler (with the chaos
// tag, for fault injection) and nats-server once, runs them as processes on loopback, puts them
// under steady signed load and under the faults operators meet (kill -9, NATS stopped, a locked
// or full ledger, panics, a stream at its byte limit, power cuts on a FUSE file system that drops
// what was not fsynced), and counts: sent, 2xx, in the ledger, lost.
//
// `make test` runs the short version; `make chaos` (build tag chaos) the long one.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
	"knetrecon/internal/store"
)

// long is set by the chaos build tag (make chaos): more kills, longer faults, more load.
var long bool

// bin is the folder of the binaries built for this run.
var bin string

const webhookKey = "e2e-webhook-key"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "knetrecon-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	for _, b := range []struct{ out, pkg, tags string }{
		{"receiver", "./cmd/receiver", ""},
		{"reconciler", "./cmd/reconciler", "chaos"},
		{"nats-server", "github.com/nats-io/nats-server/v2", ""},
		{"ckosim", "./cmd/ckosim", ""},
	} {
		args := []string{"build", "-o", filepath.Join(dir, b.out)}
		if b.tags != "" {
			args = append(args, "-tags", b.tags)
		}
		cmd := exec.Command("go", append(args, b.pkg)...)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is one of the binaries, run as a process of its own.
type proc struct {
	t    *testing.T
	name string
	args []string
	env  map[string]string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the running process has ended
}

func newProc(t *testing.T, dir, name string, env map[string]string, args ...string) *proc {
	p := &proc{t: t, name: name, args: args, env: env, log: filepath.Join(dir, name+".log")}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", p.log, tail(p.log, 25))
		}
	})
	return p
}

func (p *proc) binary() string {
	name := strings.TrimRight(p.name, "0123456789")
	if name == "nats" {
		return filepath.Join(bin, "nats-server")
	}
	return filepath.Join(bin, name)
}

// start runs the process with a clean environment: only PATH, HOME and its own settings.
func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.binary(), p.args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range p.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
}

// signal sends sig and waits until the process is gone (SIGKILL after 20 s).
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// kill is kill -9.
func (p *proc) kill() { p.signal(syscall.SIGKILL) }

// running reports whether the process is alive.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// status GETs url and returns its status code (0 when nothing answers).
func status(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond every 50 ms until it holds, or fails the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stack is a receiver and a reconciler (and, when external, a nats-server) on loopback.
type stack struct {
	t                     *testing.T
	dir, ledger           string
	receiver, reconciler  *proc
	nats                  *proc
	recvURL, adminURL     string
	natsURL, natsStoreDir string
}

// stackOpts tune a stack; env maps add to or override each process's settings.
type stackOpts struct {
	externalNATS    bool
	ledgerDir       string
	receiverEnv     map[string]string
	reconcilerEnv   map[string]string
	natsStartupWait time.Duration
}

func newStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	dir := t.TempDir()
	s := &stack{t: t, dir: dir}
	natsPort := freePort(t)
	s.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	recvPort, adminPort := freePort(t), freePort(t)
	s.recvURL = fmt.Sprintf("http://127.0.0.1:%d", recvPort)
	s.adminURL = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	ledgerDir := o.ledgerDir
	if ledgerDir == "" {
		ledgerDir = dir
	}
	s.ledger = filepath.Join(ledgerDir, "ledger.db")

	renv := map[string]string{
		"KNETRECON_RECEIVER_ADDR": fmt.Sprintf("127.0.0.1:%d", recvPort),
		"KNETRECON_DATA_DIR":      filepath.Join(dir, "receiver"),
		"KNETRECON_WEBHOOK_KEYS":  webhookKey,
		"KNETRECON_START_TIMEOUT": "20s",
	}
	if o.externalNATS {
		s.natsStoreDir = filepath.Join(dir, "nats")
		s.nats = newProc(t, dir, "nats", nil, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(natsPort), "-sd", s.natsStoreDir)
		s.nats.start()
		renv["KNETRECON_NATS_URL"] = s.natsURL
		renv["KNETRECON_DURABLE"] = "false" // this nats-server fsyncs every 2 minutes: the receiver is told it may answer before
	} else {
		renv["KNETRECON_NATS_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", natsPort)
	}
	for k, v := range o.receiverEnv {
		renv[k] = v
	}
	cenv := map[string]string{
		"KNETRECON_LEDGER":          s.ledger,
		"KNETRECON_ADMIN_ADDR":      fmt.Sprintf("127.0.0.1:%d", adminPort),
		"KNETRECON_NATS_URL":        s.natsURL,
		"KNETRECON_SWEEP_SCHEDULE":  "off",
		"KNETRECON_REPORT_SCHEDULE": "off",
		"KNETRECON_ACK_WAIT":        "2s",
		"KNETRECON_START_TIMEOUT":   "30s",
		"KNETRECON_WEBHOOK_KEYS":    webhookKey,
		"KNETRECON_DATA_DIR":        filepath.Join(dir, "receiver"), // the embedded NATS's token
	}
	for k, v := range o.reconcilerEnv {
		cenv[k] = v
	}
	s.receiver = newProc(t, dir, "receiver", renv)
	s.reconciler = newProc(t, dir, "reconciler", cenv, "run")
	s.startReceiver()
	s.startReconciler()
	return s
}

func (s *stack) startReceiver() {
	s.t.Helper()
	s.receiver.start()
	waitFor(s.t, 30*time.Second, "the receiver ready", func() bool { return status(s.recvURL+"/readyz") == 200 })
}

func (s *stack) startReconciler() {
	s.t.Helper()
	s.reconciler.start()
	waitFor(s.t, 40*time.Second, "the reconciler ready", func() bool { return status(s.adminURL+"/readyz") == 200 })
}

func (s *stack) startNATS() {
	s.t.Helper()
	s.nats.start()
	waitFor(s.t, 30*time.Second, "the receiver ready again", func() bool { return status(s.recvURL+"/readyz") == 200 })
}

// load sends signed payment_captured webhooks, each for a payment of its own with its own
// amount, at a steady rate, like Checkout.com would; it records which got a 2xx.
type load struct {
	url    string
	prefix string
	source string             // the payment source type of every webhook (knet unless startLoadAs says)
	pad    func(n int) string // webhook n's padding; about 1.5 KB in all when nil
	client *http.Client

	mu       sync.Mutex
	next     int
	sent     int
	acked    map[string]int64 // event id → amount, for every 2xx
	statuses map[int]int      // status → count; 0 is a connection error
	lastOK   time.Time        // the last 2xx's answer time
	okAfter  map[string]time.Time
	sentAt   map[string]time.Time // when each webhook that got a 2xx was sent

	stop chan struct{}
	done sync.WaitGroup
}

// startLoad sends rate webhooks a second to url until stopLoad, from 8 senders.
func startLoad(t *testing.T, url string, rate int) *load {
	return startLoadAs(t, url, rate, strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_"), "knet")
}

// startLoadAs is startLoad with the event ids' prefix and the payments' source type given.
func startLoadAs(t *testing.T, url string, rate int, prefix, source string) *load {
	return startLoadWith(t, url, rate, prefix, source, 8)
}

// startLoadWith is startLoadAs from senders concurrent senders; opts tune the load before it starts.
func startLoadWith(t *testing.T, url string, rate int, prefix, source string, senders int, opts ...func(*load)) *load {
	l := &load{url: url + "/webhooks/checkout", prefix: prefix, source: source,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		acked:  map[string]int64{}, statuses: map[int]int{}, okAfter: map[string]time.Time{}, sentAt: map[string]time.Time{},
		stop: make(chan struct{})}
	for _, o := range opts {
		o(l)
	}
	work := make(chan int, 64)
	for range senders {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for n := range work {
				l.send(n)
			}
		}()
	}
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		defer close(work)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
				l.mu.Lock()
				n := l.next
				l.next++
				l.mu.Unlock()
				work <- n
			}
		}
	}()
	t.Cleanup(l.stopLoad)
	return l
}

// padding brings a webhook to about 1.5 KB, the size of Checkout.com's own samples.
var padding = strings.Repeat("knet ", 200)

// body is webhook n: a capture of its own payment with its own action id and amount.
func (l *load) body(n int) (id string, amount int64, b []byte) {
	id = fmt.Sprintf("evt_%s_%07d", l.prefix, n)
	amount = int64(n%997+1) * 10
	pad := padding
	if l.pad != nil {
		pad = l.pad(n)
	}
	b = fmt.Appendf(nil, `{"id":%q,"type":"payment_captured","version":"1.0.1","created_on":"2026-12-01T10:00:00.1234567Z",`+
		`"data":{"id":"pay_%s_%07d","action_id":"act_%s_%07d","amount":%d,"currency":"KWD","reference":"ORD-%d",`+
		`"processed_on":"2026-12-01T10:00:00Z","response_code":"10000","response_summary":"Approved","source":{"type":%q},`+
		`"metadata":{"padding":%q}}}`, id, l.prefix, n, l.prefix, n, amount, n, l.source, pad)
	return id, amount, b
}

func (l *load) send(n int) {
	sent := time.Now()
	id, amount, b := l.body(n)
	mac := hmac.New(sha256.New, []byte(webhookKey))
	mac.Write(b)
	req, _ := http.NewRequest(http.MethodPost, l.url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cko-Signature", hex.EncodeToString(mac.Sum(nil)))
	code := 0
	resp, err := l.client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code = resp.StatusCode
		if code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			code = -503 // a 503 without Retry-After: counted apart, tests refuse it
		}
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	l.statuses[code]++
	if code >= 200 && code < 300 {
		l.acked[id] = amount
		l.okAfter[id] = now
		l.sentAt[id] = sent
		l.lastOK = now
	}
}

// stopLoad stops sending and waits for the requests in flight.
func (l *load) stopLoad() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.done.Wait()
}

// okSince counts the 2xx answered after t.
func (l *load) okSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.okAfter {
		if at.After(t) {
			n++
		}
	}
	return n
}

func (l *load) count2xx() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// tally is what the ledger holds of the webhooks that got a 2xx.
type tally struct {
	sent, acked, inLedger, lost, wrongMoney, extra, deadLetters int
	ackedMoney, ledgerMoney                                     int64
}

func (t tally) String() string {
	return fmt.Sprintf("sent %d, 2xx %d, in the ledger %d, lost %d, money counted twice or wrong %d, dead letters %d; "+
		"2xx money %s KWD, ledger %s KWD; stored without a 2xx (a retry would find them): %d",
		t.sent, t.acked, t.inLedger, t.lost, t.wrongMoney, t.deadLetters, kwd(t.ackedMoney), kwd(t.ledgerMoney), t.extra)
}

func kwd(fils int64) string { return fmt.Sprintf("%d.%03d", fils/1000, fils%1000) }

// readLedger counts, in the ledger file, the acked webhooks' events and money.
func readLedger(path string, l *load) (tally, error) {
	l.mu.Lock()
	acked := make(map[string]int64, len(l.acked))
	for k, v := range l.acked {
		acked[k] = v
	}
	tl := tally{sent: l.sent, acked: len(acked)}
	l.mu.Unlock()
	db, err := sql.Open("sqlite3", store.DSN(path, true))
	if err != nil {
		return tl, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT e.id, COALESCE(p.amount, 0), COALESCE(pay.captured, 0)
		FROM events e LEFT JOIN postings p ON p.action_id = e.action_id LEFT JOIN payments pay ON pay.id = e.payment_id
		WHERE e.id LIKE ?`, "evt_"+l.prefix+"_%")
	if err != nil {
		return tl, err
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var id string
		var posted, captured int64
		if err := rows.Scan(&id, &posted, &captured); err != nil {
			return tl, err
		}
		seen[id] = true
		want, ok := acked[id]
		if !ok {
			tl.extra++
			continue
		}
		tl.inLedger++
		tl.ledgerMoney += captured
		if posted != want || captured != want {
			tl.wrongMoney++
		}
	}
	if err := rows.Err(); err != nil {
		return tl, err
	}
	for id, amount := range acked {
		tl.ackedMoney += amount
		if !seen[id] {
			tl.lost++
		}
	}
	err = db.QueryRow(`SELECT COUNT(*) FROM dead_letters`).Scan(&tl.deadLetters)
	return tl, err
}

// settle waits until every acked webhook is in the ledger (or d passes), then returns the tally.
func settle(t *testing.T, path string, l *load, d time.Duration) tally {
	t.Helper()
	l.stopLoad()
	deadline := time.Now().Add(d)
	for {
		tl, err := readLedger(path, l)
		if err == nil && tl.lost == 0 {
			return tl
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("read the ledger: %v", err)
			}
			return tl
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// assertNothingLost fails unless every acked webhook is in the ledger once with its money, and
// nothing went to the dead letters.
func assertNothingLost(t *testing.T, what string, tl tally) {
	t.Helper()
	t.Logf("%s: %s", what, tl)
	fmt.Printf("FIGURE %s: %s\n", what, tl)
	if tl.acked == 0 {
		t.Fatal("no webhook got a 2xx: the load never reached the receiver")
	}
	if tl.lost != 0 || tl.wrongMoney != 0 || tl.deadLetters != 0 || tl.ackedMoney != tl.ledgerMoney {
		t.Fatalf("%s: %s", what, tl)
	}
}

// metric reads one series' value from a /metrics page (the first line starting with name).
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("%s not on %s", name, url)
	return 0
}

// holdWriteLock takes the ledger's write lock from this process (as an analyst's sqlite3 or a
// backup would) and returns the function that releases it.
func holdWriteLock(t *testing.T, path string) func() {
	t.Helper()
	db, err := sql.Open("sqlite3", store.DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil) // _txlock=immediate: the write lock
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE schema_migrations SET name = name`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
				t.Error(err)
			}
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// scale picks the short or the long (make chaos) figure.
func scale[T any](short, chaos T) T {
	if long {
		return chaos
	}
	return short
}

// natsConn connects to the stack's NATS (with the embedded server's token, when it has one).
func (s *stack) natsConn(t *testing.T) *nats.Conn {
	t.Helper()
	tok, err := events.ReadEmbeddedToken(filepath.Join(s.dir, "receiver"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.natsURL, nats.Token(tok))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// streamInfo reads the stream's state through a NATS connection of the test's own.
func (s *stack) streamInfo(t *testing.T) *jetstream.StreamInfo {
	t.Helper()
	js, err := jetstream.New(s.natsConn(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}
