# knetrecon — the two commands of the README are `make run` and `make test`.
GO ?= go
export CGO_ENABLED = 1

.PHONY: run cluster test chaos rules-test vet fmt-check bench bench-ledger bench-receiver bench-go bench-sweep bench-road bench-cluster bench-rebuild bench-growth build fuzz clean

## run: the whole pipeline on this machine, embedded defaults (NATS and SQLite under ./data)
run:
	./scripts/run-local.sh

## cluster: the same on three NATS nodes (one JetStream cluster, the stream R3), two receivers and
## two reconcilers with a ledger each (see deploy/CLUSTER.md); `reconciler digest` compares ledgers
cluster:
	./scripts/run-cluster.sh

## test: formatting, vet, the alert rules' tests, and every test (real embedded NATS, real SQLite
## files, simulator over HTTP, the short fault suite against the built binaries)
test: fmt-check vet rules-test
	$(GO) test -count=1 -timeout 15m ./...

# promtool, built from the Prometheus module (the first time takes a few minutes), for the alert
# rules' tests.
PROMTOOL_VERSION ?= v0.316.0
bin/promtool:
	GOBIN=$(CURDIR)/bin $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

## rules-test: every alert of deploy/prometheus/alerts.yml firing and clearing on synthetic series
rules-test: bin/promtool
	cd deploy/prometheus && ../../bin/promtool check rules alerts.yml && ../../bin/promtool test rules alerts_test.yml

## chaos: the fault suite against the built binaries, long version (about 20 minutes): kill -9
## ×50 reconciler and ×10 receiver, NATS killed, the ledger locked or its disk full for 5 minutes,
## panics, a stream at its byte limit, 10 power cuts in each durability mode (needs /dev/fuse and
## fusermount3). Each fault prints a FIGURE line. `make test` runs the short one.
chaos:
	$(GO) test -tags chaos -count=1 -timeout 60m -v ./e2e

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

build:
	$(GO) build -buildvcs=auto -o bin/ ./cmd/...

## bench: Go benchmarks, then the receiver load test
bench: bench-go bench-receiver

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -skip 'SweepOverdue|LedgerGrowth' ./...

## bench-ledger: Apply (batched, unbatched) and the consumer, each beside the plain upsert of the same rows
bench-ledger:
	$(GO) test -run '^$$' -bench 'Apply|UpsertCeiling|Consumer' -benchtime 40000x -count 3 ./internal/store ./internal/reconcile

## bench-receiver: signed 1.5 KB webhooks at 32 and 256 connections and 5,000/s, against a null handler
bench-receiver:
	./scripts/bench-receiver.sh

## bench-growth: memory and throughput while the ledger grows to 1M payments (several minutes)
bench-growth:
	$(GO) test ./internal/store -run '^$$' -bench LedgerGrowth -benchtime 1x -timeout 60m

## bench-cluster: the whole road on a single nats-server (R1), the three-node cluster (R3) and the cluster
## with sync_interval always, same run: p99 webhook-to-ledger at 1,000/s and the most each takes in with
## 64 senders (about 3 minutes; figures in deploy/CLUSTER.md)
bench-cluster:
	$(GO) test -tags roadbench -count=1 -timeout 20m -run TestRoadClusterVsSingle -v ./e2e

## bench-rebuild: `reconciler rebuild` of a ledger of 1M payments from the stream, backup, rebuild
## from the backup (KNETRECON_BENCH_PAYMENTS=… for another size; several minutes)
bench-rebuild:
	$(GO) test -tags roadbench -count=1 -timeout 60m -run TestRebuildMillion -v ./e2e

## bench-road: receiver and reconciler together on one box, fixed rates, time to drain
bench-road:
	./scripts/bench-road.sh

## bench-sweep: one sweep over 10,000 overdue payments, simulator at 50 ms per call, 50 req/s limit
bench-sweep:
	$(GO) test ./internal/reconcile -run '^$$' -bench SweepOverdue -benchtime 1x -timeout 30m

## fuzz: the signature check and the envelope decoders (no false accept; the decoders agree), then
## the reconciler's decoder (whatever it accepts is within every bound). Each prints its executions.
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./internal/checkout -run '^$$' -fuzz FuzzVerifyDecode -fuzztime $(FUZZTIME)
	$(GO) test ./internal/checkout -run '^$$' -fuzz FuzzDecodeFields -fuzztime $(FUZZTIME)
	$(GO) test ./internal/reconcile -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)

clean:
	rm -rf bin data
