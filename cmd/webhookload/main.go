// Command webhookload measures the receiver: it sends signed ~1.5 KB webhooks with unique event
// ids over keep-alive HTTP/1.1 connections, closed-loop at fixed concurrencies and open-loop at a
// fixed rate, and reports webhooks/s and latency percentiles. With -null it serves instead a null
// handler that reads the body and answers 200, the ceiling the receiver is compared with; with
// -bare a bare receiver (HMAC and a JetStream publish, nothing else), the floor of any design
// that stores before it answers.
//
// It talks to the given address only (127.0.0.1 in `make bench-receiver`) and stops by itself.
package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"knetrecon/internal/service"
)

func main() {
	if service.VersionRequested(os.Args[1:]) {
		fmt.Println("webhookload", service.BuildOf())
		return
	}
	var (
		null     = flag.String("null", "", "serve a null handler on this address instead of sending load")
		bare     = flag.String("bare", "", "serve a bare receiver (HMAC + JetStream publish) on this address instead of sending load")
		bareAck  = flag.String("bare-ack", "sync", "the bare receiver waits for the PubAck (sync) or not at all (none)")
		targets  = flag.String("targets", "", "comma-separated name=host:port list to load, e.g. null=127.0.0.1:18081,receiver=127.0.0.1:18080")
		path     = flag.String("path", "/webhooks/checkout", "webhook path")
		key      = flag.String("key", "bench-key", "webhook signature key")
		conns    = flag.String("conns", "32,256", "concurrencies for the closed-loop runs (empty: none)")
		duration = flag.Duration("duration", 10*time.Second, "length of each run")
		warmup   = flag.Duration("warmup", 2*time.Second, "warm-up before each run, not counted")
		rate     = flag.Int("rate", 5000, "webhooks/s for the fixed-rate run (0 skips it)")
		size     = flag.Int("size", 1500, "body size in bytes")
		jsonOut  = flag.String("json", "", "also write the results as JSON to this file")
	)
	flag.Parse()
	if *null != "" {
		if err := serveNull(*null); err != nil {
			fmt.Fprintln(os.Stderr, "webhookload:", err)
			os.Exit(1)
		}
		return
	}
	if *bare != "" {
		if err := serveBare(*bare, *key, *bareAck); err != nil {
			fmt.Fprintln(os.Stderr, "webhookload:", err)
			os.Exit(1)
		}
		return
	}
	if *targets == "" {
		fmt.Fprintln(os.Stderr, "webhookload: -targets or -null is required")
		os.Exit(2)
	}
	var levels []int
	for _, c := range strings.Split(*conns, ",") {
		if strings.TrimSpace(c) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > 4096 {
			fmt.Fprintf(os.Stderr, "webhookload: bad -conns entry %q\n", c)
			os.Exit(2)
		}
		levels = append(levels, n)
	}
	gen := &generator{path: *path, key: []byte(*key), size: *size}
	var results []result
	for _, t := range strings.Split(*targets, ",") {
		name, addr, ok := strings.Cut(t, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "webhookload: bad -targets entry %q (want name=host:port)\n", t)
			os.Exit(2)
		}
		// Each target starts on a quiet disk: the stores written by the targets before it are
		// flushed first, not while this one is measured.
		syscall.Sync()
		// The fixed-rate run comes first, on a quiet server: it measures latency, not the
		// aftermath of the overload runs that follow.
		if *rate > 0 {
			_ = fixedRate(gen, addr, *rate, *warmup)
			r := fixedRate(gen, addr, *rate, *duration)
			r.Target, r.Mode = name, fmt.Sprintf("%d/s fixed", *rate)
			results = append(results, r)
			fmt.Println(r)
		}
		for _, c := range levels {
			_ = closedLoop(gen, addr, c, *warmup)
			r := closedLoop(gen, addr, c, *duration)
			r.Target, r.Mode = name, fmt.Sprintf("%d conns", c)
			results = append(results, r)
			fmt.Println(r)
		}
	}
	printRatios(results)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "webhookload:", err)
		}
	}
}

func serveNull(addr string) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"outcome":"stored"}`+"\n")
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintln(os.Stderr, "null handler on", addr)
	return srv.ListenAndServe()
}

// generator builds signed webhooks with unique event ids.
type generator struct {
	path string
	key  []byte
	size int
	seq  atomic.Uint64
}

// template is one connection's request, rewritten in place for each webhook: the sequence
// number's digits and the signature change, nothing else, so the sender spends its CPU on
// sending rather than on building requests.
type template struct {
	req       []byte
	bodyStart int
	sigAt     int
	digitsAt  []int
	mac       hash.Hash
}

const digits = 22

func (g *generator) template(host string) *template {
	num := strings.Repeat("0", digits)
	body := `{"id":"evt_bench` + num + `","type":"payment_captured","version":"1.0.1","created_on":"2026-11-25T10:00:00Z","data":{"id":"pay_bench` + num + `","action_id":"act_bench` + num + `","amount":1000,"currency":"KWD","reference":"ORD-` + num + `","processed_on":"2026-11-25T10:00:00Z","response_code":"10000","response_summary":"Approved","balances":{"total_authorized":1000,"total_captured":1000,"total_refunded":0,"available_to_refund":1000},"metadata":{"pad":"`
	pad := g.size - len(body) - len(`"}}}`)
	if pad < 0 {
		pad = 0
	}
	body += strings.Repeat("x", pad) + `"}}}`
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nCko-Signature: ", g.path, host)
	t := &template{sigAt: len(head), mac: hmac.New(sha256.New, g.key)}
	head += strings.Repeat("0", 64) + fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body))
	t.bodyStart = len(head)
	t.req = []byte(head + body)
	for off := 0; ; {
		i := strings.Index(body[off:], num)
		if i < 0 {
			break
		}
		t.digitsAt = append(t.digitsAt, t.bodyStart+off+i)
		off += i + digits
	}
	return t
}

// next rewrites t for the next webhook.
func (g *generator) next(t *template) []byte {
	n := g.seq.Add(1)
	var d [digits]byte
	for i := digits - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	for _, at := range t.digitsAt {
		copy(t.req[at:], d[:])
	}
	t.mac.Reset()
	t.mac.Write(t.req[t.bodyStart:])
	var sum [sha256.Size]byte
	hex.Encode(t.req[t.sigAt:t.sigAt+64], t.mac.Sum(sum[:0]))
	return t.req
}

// conn is one keep-alive HTTP/1.1 connection with a minimal response reader.
type conn struct {
	c net.Conn
	r *bufio.Reader
	t *template
}

func dial(g *generator, addr string) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, r: bufio.NewReaderSize(c, 4096), t: g.template(addr)}, nil
}

// do sends one webhook and returns the response status.
func (c *conn) do(g *generator, addr string) (int, error) {
	req := g.next(c.t)
	_ = c.c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.c.Write(req); err != nil {
		return 0, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 {
		return 0, errors.New("short status line")
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, err
	}
	length := -1
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := strings.Cut(string(h), ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	if _, err := c.r.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}

type result struct {
	Target  string  `json:"target"`
	Mode    string  `json:"mode"`
	Sent    int     `json:"sent"`
	OK      int     `json:"ok"`
	Errors  int     `json:"errors"`
	PerSec  float64 `json:"webhooks_per_sec"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	Maxms   float64 `json:"max_ms"`
	Seconds float64 `json:"seconds"`
}

// String is the result as one line of the report.
func (r result) String() string {
	return fmt.Sprintf("%-10s %-14s %9.0f webhooks/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  (%d ok, %d errors)",
		r.Target, r.Mode, r.PerSec, r.P50ms, r.P99ms, r.Maxms, r.OK, r.Errors)
}

type recorder struct {
	mu   sync.Mutex
	lats []time.Duration
	ok   int
	errs int
}

func (rec *recorder) add(local []time.Duration, ok, errs int) {
	rec.mu.Lock()
	rec.lats = append(rec.lats, local...)
	rec.ok += ok
	rec.errs += errs
	rec.mu.Unlock()
}

func (rec *recorder) result(elapsed time.Duration) result {
	slices.Sort(rec.lats)
	pct := func(p float64) float64 {
		if len(rec.lats) == 0 {
			return 0
		}
		i := int(p * float64(len(rec.lats)-1))
		return float64(rec.lats[i]) / 1e6
	}
	return result{Sent: rec.ok + rec.errs, OK: rec.ok, Errors: rec.errs, PerSec: float64(rec.ok) / elapsed.Seconds(),
		P50ms: pct(0.50), P99ms: pct(0.99), Maxms: pct(1), Seconds: elapsed.Seconds()}
}

// worker is one connection's share of a run: it sends, redials after a broken connection, and
// tallies what happened.
type worker struct {
	g    *generator
	addr string
	c    *conn
	lats []time.Duration
	ok   int
	errs int
}

// send sends one webhook and records its latency from since. It reports false when the
// connection is gone and cannot be redialled.
func (w *worker) send(since time.Time) bool {
	if w.c == nil {
		c, err := dial(w.g, w.addr)
		if err != nil {
			w.errs++
			return false
		}
		w.c = c
	}
	status, err := w.c.do(w.g, w.addr)
	if err != nil {
		w.errs++
		w.c.c.Close()
		w.c = nil
		return true
	}
	w.lats = append(w.lats, time.Since(since))
	if status == http.StatusOK {
		w.ok++
	} else {
		w.errs++
	}
	return true
}

// done closes the connection and hands the tally to rec.
func (w *worker) done(rec *recorder) {
	if w.c != nil {
		w.c.c.Close()
	}
	rec.add(w.lats, w.ok, w.errs)
}

// closedLoop keeps n connections busy for d, each sending its next webhook as soon as the last
// one is answered.
func closedLoop(g *generator, addr string, n int, d time.Duration) result {
	rec := &recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{g: g, addr: addr}
			defer w.done(rec)
			for ctx.Err() == nil && w.send(time.Now()) {
			}
		}()
	}
	wg.Wait()
	return rec.result(time.Since(start))
}

// fixedRate sends rate webhooks/s for d, open-loop: each latency counts from the moment the
// request was due, so a stall shows in the figures instead of slowing the sender down.
func fixedRate(g *generator, addr string, rate int, d time.Duration) result {
	rec := &recorder{}
	total := int(float64(rate) * d.Seconds())
	due := make(chan time.Time, total)
	var wg sync.WaitGroup
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{g: g, addr: addr}
			defer w.done(rec)
			for at := range due {
				w.send(at) // an unreachable server counts each due webhook as an error
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		due <- at
	}
	close(due)
	wg.Wait()
	return rec.result(time.Since(start))
}

func printRatios(results []result) {
	byKey := map[string]result{}
	for _, r := range results {
		byKey[r.Target+"|"+r.Mode] = r
	}
	fmt.Println()
	for _, r := range results {
		if r.Target == "null" {
			continue
		}
		if n, ok := byKey["null|"+r.Mode]; ok && n.PerSec > 0 && !strings.Contains(r.Mode, "fixed") {
			fmt.Printf("%s / null at %s: %.2fx\n", r.Target, r.Mode, r.PerSec/n.PerSec)
		}
	}
	// The durable receiver against its bounds, when they ran: a receiver that fsyncs each webhook
	// on its own (floor to beat) and the bare publishers (ceilings).
	for _, r := range results {
		if r.Target != "receiver" || strings.Contains(r.Mode, "fixed") {
			continue
		}
		for _, other := range []string{"receiver-fsync-each", "receiver-not-durable", "bare-sync-ack", "bare-no-ack"} {
			if o, ok := byKey[other+"|"+r.Mode]; ok && o.PerSec > 0 {
				fmt.Printf("receiver (durable) / %s at %s: %.2fx\n", other, r.Mode, r.PerSec/o.PerSec)
			}
		}
	}
}
