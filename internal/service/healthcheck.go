package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Healthcheck is the `healthcheck` subcommand of the receiver and the reconciler: it asks the
// running process's own /readyz (or --path) on addr, its listen address (a wildcard host is asked
// on 127.0.0.1), and exits 0 when the answer is 2xx and 1 otherwise, saying why on stderr. The
// container images' health checks run it, so the production image needs neither curl nor a shell.
// usage is its synopsis, printed with the flags by --help.
func Healthcheck(name, usage, addr string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name+" healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("path", "/readyz", "the path asked: /readyz (ready for work) or /healthz (alive)")
	url := fs.String("url", "", "the URL asked instead (default: http://<the process's address><path>)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: %s\n\nAsks the running %s's /readyz and exits 0 when it answers 2xx, 1 otherwise.\n\n", usage, name)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "%s healthcheck: %v\n\nUsage: %s\n", name, err, usage)
		return 2
	}
	if *url == "" {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			fmt.Fprintf(stderr, "%s healthcheck: address %q is not host:port\n", name, addr)
			return 2
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		*url = "http://" + net.JoinHostPort(host, port) + *path
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "%s healthcheck: %v\n", name, err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "%s healthcheck: %v\n", name, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(stderr, "%s healthcheck: %s answered %s: %s\n", name, *url, resp.Status, body)
		return 1
	}
	return 0
}
