package main

import (
	"cmp"
	"io"

	"knetrecon/internal/service"
)

// healthcheck is `reconciler healthcheck [--path P] [--url U] [--timeout D]`: the container's
// health check (no curl, no shell in the image). It asks /readyz on KNETRECON_ADMIN_ADDR, the
// variable `reconciler run` listens on; /healthz and /readyz answer without the desk token.
func healthcheck(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	addr := cmp.Or(getenv("KNETRECON_ADMIN_ADDR"), "127.0.0.1:9090")
	c, _ := commandNamed("healthcheck")
	return service.Healthcheck("reconciler", c.usage, addr, args, stdout, stderr)
}
