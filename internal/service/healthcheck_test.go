package service_test

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"knetrecon/internal/service"
)

// The healthcheck subcommand asks the process's own address (a wildcard host on 127.0.0.1) and
// exits 0 on a 2xx, 1 otherwise with the answer on stderr, 2 on a bad address.
func TestHealthcheck(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			w.Write([]byte("ok\n"))
		case r.URL.Path == "/readyz" && ready:
			w.Write([]byte("ready\n"))
		default:
			http.Error(w, "nats: not connected", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	tests := []struct {
		name     string
		addr     string
		args     []string
		notReady bool
		want     int
		wantErr  string
	}{
		{name: "wildcard address", addr: ":" + port, want: 0},
		{name: "unspecified IP", addr: "0.0.0.0:" + port, want: 0},
		{name: "loopback", addr: "127.0.0.1:" + port, want: 0},
		{name: "not ready", addr: ":" + port, notReady: true, want: 1, wantErr: "503 Service Unavailable: nats: not connected"},
		{name: "alive while not ready", addr: ":" + port, args: []string{"--path", "/healthz"}, notReady: true, want: 0},
		{name: "url", addr: "bogus", args: []string{"--url", srv.URL + "/readyz"}, want: 0},
		{name: "nobody listening", addr: "127.0.0.1:1", want: 1, wantErr: "connection refused"},
		{name: "bad address", addr: "bogus", want: 2, wantErr: `address "bogus" is not host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready = !tt.notReady
			var stdout, stderr bytes.Buffer
			got := service.Healthcheck("receiver", "receiver healthcheck", tt.addr, tt.args, &stdout, &stderr)
			if got != tt.want || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", got, stderr.String(), tt.want, tt.wantErr)
			}
		})
	}
	var stdout bytes.Buffer
	if got := service.Healthcheck("receiver", "receiver healthcheck [--path P]", ":1", []string{"--help"}, &stdout, &stdout); got != 0 ||
		!strings.HasPrefix(stdout.String(), "Usage: receiver healthcheck [--path P]") || !strings.Contains(stdout.String(), "-timeout") {
		t.Fatalf("--help: %d %q", got, stdout.String())
	}
}
