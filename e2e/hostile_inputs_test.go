package e2e

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/store"
)

// hostileCase is one request against the running receiver and what it must answer.
type hostileCase struct {
	name   string
	method string
	body   []byte
	header map[string]string
	want   int // the status the receiver must answer
	signed bool
}

func sign(key string, b []byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(b)
	return hex.EncodeToString(mac.Sum(nil))
}

// envelope is a valid captured webhook with id n and amount.
func envelope(n int, amount string) []byte {
	return fmt.Appendf(nil, `{"id":"evt_hostile_%04d","type":"payment_captured","created_on":"2026-12-01T10:00:00Z",`+
		`"data":{"id":"pay_hostile_%04d","action_id":"act_hostile_%04d","amount":%s,"currency":"KWD","source":{"type":"knet"}}}`, n, n, n, amount)
}

// hostileCases generates the suite: signatures wrong in every way, authentic bodies of every
// hostile shape, methods and sizes.
func hostileCases() []hostileCase {
	var cs []hostileCase
	// 1. Signatures wrong in every way, over 12 valid bodies: 401, never stored.
	for n := 0; n < 12; n++ {
		b := envelope(9000+n, "1000")
		good := sign(webhookKey, b)
		bad := map[string]string{
			"missing":          "",
			"empty":            " ",
			"short":            good[:63],
			"long":             good + "00",
			"not hex":          strings.Repeat("zz", 32),
			"other key":        sign("not-the-key", b),
			"other body":       sign(webhookKey, envelope(n, "1000")),
			"base64":           base64.StdEncoding.EncodeToString([]byte(good))[:64],
			"prefixed":         "sha256=" + good[:57],
			"flipped bit":      good[:63] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", good[63])+1)%16]),
			"zeros":            strings.Repeat("0", 64),
			"other body's sig": sign(webhookKey, append(b, ' ')),
		}
		for name, sig := range bad {
			h := map[string]string{}
			if name != "missing" {
				h["Cko-Signature"] = sig
			}
			cs = append(cs, hostileCase{name: "signature " + name, method: http.MethodPost, body: b, header: h, want: 401})
		}
	}
	// 2. Authentic (signed) bodies of every hostile shape: stored or quarantined (200), never a
	// 5xx, never a 503 loop; what cannot be applied is dead-lettered by the reconciler.
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	shapes := map[string]string{
		"empty":              ``,
		"not JSON":           `hello`,
		"array":              `[1,2,3]`,
		"null":               `null`,
		"invalid UTF-8":      "{\"id\":\"evt_x\xff\xfe\",\"type\":\"payment_captured\",\"data\":{\"id\":\"pay_1\"}}",
		"invalid UTF-8 data": "{\"id\":\"evt_hostile_utf8\",\"type\":\"payment_captured\",\"data\":{\"id\":\"pay_u\",\"reference\":\"\xc3\x28\"}}",
		"deep nesting":       `{"id":"evt_hostile_deep","type":"x","data":` + deep + `}`,
		"duplicate keys":     `{"id":"evt_hostile_dup1","id":"evt_hostile_dup2","type":"payment_captured","data":{"id":"pay_d","amount":1000,"amount":-5}}`,
		"CR LF in id":        `{"id":"evt_a\r\nNats-Msg-Id: evt_b","type":"payment_captured","data":{"id":"pay_1"}}`,
		"CR LF in type":      `{"id":"evt_hostile_crlf","type":"payment_captured\r\nX: 1","data":{"id":"pay_1"}}`,
		"wildcard type *":    `{"id":"evt_hostile_w1","type":"*","data":{"id":"pay_1"}}`,
		"wildcard type >":    `{"id":"evt_hostile_w2","type":"payment.>","data":{"id":"pay_1"}}`,
		"4 KB type":          `{"id":"evt_hostile_t","type":"` + strings.Repeat("a", 4096) + `","data":{"id":"pay_1"}}`,
		"64 KB id":           `{"id":"evt_` + strings.Repeat("a", 64<<10) + `","type":"payment_captured","data":{"id":"pay_1"}}`,
		"64 KB reference":    `{"id":"evt_hostile_ref","type":"payment_captured","data":{"id":"pay_r","action_id":"act_r","amount":1000,"currency":"KWD","reference":"` + strings.Repeat("r", 64<<10) + `"}}`,
		"no id":              `{"type":"payment_captured","data":{"id":"pay_1"}}`,
		"id not evt_":        `{"id":"pay_1","type":"payment_captured","data":{"id":"pay_1"}}`,
		"data not object":    `{"id":"evt_hostile_dno","type":"payment_captured","data":[1]}`,
		"time unreadable":    `{"id":"evt_hostile_time","type":"payment_captured","created_on":"yesterday","data":{"id":"pay_1"}}`,
		"unknown type":       `{"id":"evt_hostile_unknown","type":"dispute_opened","data":{"id":"dsp_1"}}`,
		"NUL byte":           "{\"id\":\"evt_hostile_nul\",\"type\":\"payment_captured\",\"data\":{\"id\":\"pay_\\u0000\"}}",
		"trailing garbage":   `{"id":"evt_hostile_tr","type":"x"} {"id":"evt_2"}`,
	}
	for name, body := range shapes {
		for i, variant := range []string{body, " \n" + body + "\n", body + "\t"} {
			b := []byte(variant)
			cs = append(cs, hostileCase{name: fmt.Sprintf("signed %s #%d", name, i), method: http.MethodPost, body: b,
				header: map[string]string{"Cko-Signature": sign(webhookKey, b)}, want: 200, signed: true})
		}
	}
	// 3. Absurd numbers in an authentic capture: stored (200); the reconciler refuses every one
	// but the valid amounts (dead letter with the reason), so no absurd amount reaches the ledger.
	for i, amount := range []string{"9223372036854775807", "9223372036854775808", "99999999999999999999", "1000000000",
		"1e3", "1E9", "10.5", "1000.0", "-1000", "-0", "0", `"1000"`, "null", "true", "[1000]", "{}", "0x3e8", "1_000",
		"999999999", "1000"} {
		b := envelope(8000+i, amount)
		cs = append(cs, hostileCase{name: "amount " + amount, method: http.MethodPost, body: b,
			header: map[string]string{"Cko-Signature": sign(webhookKey, b)}, want: 200, signed: true})
	}
	// 4. Random bytes, signed: stored in quarantine (200), never applied.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100; i++ {
		b := make([]byte, 1+r.IntN(2048))
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		cs = append(cs, hostileCase{name: fmt.Sprintf("random bytes %d", i), method: http.MethodPost, body: b,
			header: map[string]string{"Cko-Signature": sign(webhookKey, b)}, want: 200, signed: true})
	}
	// 5. Methods and sizes.
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		cs = append(cs, hostileCase{name: "method " + m, method: m, body: nil, want: 405})
	}
	big := bytes.Repeat([]byte("a"), 1<<20+1)
	cs = append(cs, hostileCase{name: "body over the limit", method: http.MethodPost, body: big,
		header: map[string]string{"Cko-Signature": sign(webhookKey, big)}, want: 413})
	return cs
}

// TestHostileInputs runs the generated cases against the running receiver and reconciler: each
// gets its expected answer, both processes stay up, and nothing unsigned, unverified or invalid
// reaches the ledger; every stored message is applied or dead-lettered.
func TestHostileInputs(t *testing.T) {
	s := newStack(t, stackOpts{})
	cases := hostileCases()
	client := &http.Client{Timeout: 10 * time.Second}
	unsigned := map[string]bool{}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, s.recvURL+"/webhooks/checkout", bytes.NewReader(c.body))
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
		if !c.signed {
			unsigned[string(c.body)] = true
		}
	}
	protocol := protocolCases(t, strings.TrimPrefix(s.recvURL, "http://"))
	t.Logf("%d generated cases and %d protocol cases", len(cases), protocol)
	if len(cases)+protocol < 300 {
		t.Fatalf("only %d cases", len(cases)+protocol)
	}
	if !s.receiver.running() || !s.reconciler.running() || status(s.recvURL+"/healthz") != 200 || status(s.adminURL+"/readyz") != 200 {
		t.Fatal("a process went down or unhealthy under hostile input")
	}
	// Everything stored is settled: applied or dead-lettered, nothing left behind.
	waitFor(t, 60*time.Second, "the reconciler to settle every stored message", func() bool {
		info := s.streamInfo(t)
		db, err := sql.Open("sqlite3", store.DSN(s.ledger, true))
		if err != nil {
			return false
		}
		defer db.Close()
		var events, dead int
		if db.QueryRow(`SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM dead_letters)`).Scan(&events, &dead) != nil {
			return false
		}
		return uint64(events+dead) == info.State.Msgs
	})
	db, err := sql.Open("sqlite3", store.DSN(s.ledger, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var bad int
	// Only what is authentic and valid may be applied: the captures with amounts 999999999 and
	// 1000, the chunked one, and events of types the rules do not know (stored, never rejected).
	if err := db.QueryRow(`SELECT COUNT(*) FROM events WHERE id NOT IN ('evt_hostile_8018', 'evt_hostile_8019', 'evt_hostile_7000',
		'evt_hostile_unknown', 'evt_hostile_deep', 'evt_hostile_utf8')`).Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("%d events applied that should not have been (%v)", bad, err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM payments WHERE amount > 999999999 OR captured > 999999999 OR id LIKE 'pay_hostile_9%'`).Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("%d payments from unsigned or absurd input (%v)", bad, err)
	}
	rows, err := db.Query(`SELECT body FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		if unsigned[string(b)] {
			t.Fatalf("an unsigned body reached the ledger: %.80s", b)
		}
	}
	fmt.Printf("FIGURE hostile input: %d cases, every answer as expected, both processes up, nothing unsigned or invalid applied\n", len(cases)+protocol)
}

// protocolCases sends what a browser or a library would not: chunked bodies, a slow client,
// header floods, garbage request lines. It returns how many cases ran.
func protocolCases(t *testing.T, addr string) int {
	t.Helper()
	n := 0
	raw := func(name, req string, want string) {
		t.Helper()
		n++
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		line, _ := bufio.NewReader(conn).ReadString('\n')
		if !strings.Contains(line, want) {
			t.Errorf("%s: %q, want %q", name, line, want)
		}
	}
	b := envelope(7000, "1000")
	sig := sign(webhookKey, b)
	// A chunked, signed body: stored like any other.
	chunked := fmt.Sprintf("POST /webhooks/checkout HTTP/1.1\r\nHost: x\r\nCko-Signature: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", sig)
	for i := 0; i < len(b); i += 100 {
		end := min(i+100, len(b))
		chunked += fmt.Sprintf("%x\r\n%s\r\n", end-i, b[i:end])
	}
	raw("chunked body", chunked+"0\r\n\r\n", "200")
	// Chunked and unsigned: 401.
	raw("chunked unsigned", "POST /webhooks/checkout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "401")
	// A header flood past the 64 KB limit: 431.
	flood := "POST /webhooks/checkout HTTP/1.1\r\nHost: x\r\n"
	for i := 0; i < 2000; i++ {
		flood += fmt.Sprintf("X-Flood-%d: %s\r\n", i, strings.Repeat("f", 40))
	}
	raw("header flood", flood+"Content-Length: 0\r\nConnection: close\r\n\r\n", "431")
	// Many headers under the limit, unsigned: 401.
	many := "POST /webhooks/checkout HTTP/1.1\r\nHost: x\r\n"
	for i := 0; i < 200; i++ {
		many += fmt.Sprintf("X-Many-%d: v\r\n", i)
	}
	raw("many headers", many+"Content-Length: 2\r\nConnection: close\r\n\r\n{}", "401")
	raw("garbage request line", "\x00\x01\x02 / HTTP/1.1\r\n\r\n", "400")
	raw("bad content length", "POST /webhooks/checkout HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "400")
	raw("two Cko-Signature headers, the first wrong", fmt.Sprintf("POST /webhooks/checkout HTTP/1.1\r\nHost: x\r\nCko-Signature: %s\r\nCko-Signature: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		strings.Repeat("0", 64), sig, len(b), b), "401")
	// A slow client that never finishes its headers is cut off (ReadHeaderTimeout), and the
	// receiver answers others meanwhile.
	n++
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_, _ = io.WriteString(slow, "POST /webhooks/checkout HTTP/1.1\r\nHost: x\r\n")
	if code := status("http://" + addr + "/healthz"); code != 200 {
		t.Fatalf("healthz while a slow client holds a connection: %d", code)
	}
	_ = slow.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.ReadAll(slow); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("the slow client was not cut off by the server: %v", err)
	}
	return n
}
