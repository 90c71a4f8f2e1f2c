//go:build chaos

package main

import (
	"hash/fnv"
	"os"
	"strconv"
	"sync"

	"go.uber.org/zap"

	"knetrecon/internal/reconcile"
	"knetrecon/internal/store"
)

// In a build with the chaos tag (the fault suite's, never a release), KNETRECON_CHAOS_PANIC_EVERY=N
// makes the first write of about one event in N panic: a stand-in for a bug that passes, to show
// that the reconciler goes on and loses nothing.
func init() {
	every, _ := strconv.Atoi(os.Getenv("KNETRECON_CHAOS_PANIC_EVERY"))
	if every <= 0 {
		return
	}
	chaosHook = func(p *reconcile.Processor, log *zap.Logger) {
		log.Warn("chaos build: injecting panics", zap.Int("every", every))
		var mu sync.Mutex
		seen := map[string]bool{}
		p.BeforeEvent = func(in store.Input) {
			h := fnv.New32a()
			h.Write([]byte(in.EventID))
			if h.Sum32()%uint32(every) != 0 {
				return
			}
			mu.Lock()
			first := !seen[in.EventID]
			seen[in.EventID] = true
			mu.Unlock()
			if first {
				panic("chaos: injected panic while writing " + in.EventID)
			}
		}
	}
}
