package main

import (
	"cmp"
	"os"

	"knetrecon/internal/service"
)

// healthcheck is `receiver healthcheck [--path P] [--url U] [--timeout D]`: the container's
// health check (no curl, no shell in the image). It asks /readyz on the admin address
// (KNETRECON_METRICS_ADDR) when there is one, else on the webhook address (KNETRECON_RECEIVER_ADDR),
// the same variables the running receiver reads.
func healthcheck(args []string, getenv func(string) string) int {
	addr := cmp.Or(getenv("KNETRECON_METRICS_ADDR"), getenv("KNETRECON_RECEIVER_ADDR"), ":8080")
	return service.Healthcheck("receiver", "receiver healthcheck [--path /readyz] [--url URL] [--timeout 3s]", addr, args, os.Stdout, os.Stderr)
}
