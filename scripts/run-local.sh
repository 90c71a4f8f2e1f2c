#!/usr/bin/env bash
# The whole pipeline on this machine, on embedded defaults: the receiver (with an in-process
# NATS server under ./data/nats). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export KNETRECON_WEBHOOK_KEYS=${KNETRECON_WEBHOOK_KEYS:-local-dev-webhook-key}
export KNETRECON_DATA_DIR=${KNETRECON_DATA_DIR:-./data}
mkdir -p "$KNETRECON_DATA_DIR" bin
go build -o bin/ ./cmd/...

pids=()
stop() { trap - INT TERM EXIT; for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait; }
trap stop INT TERM EXIT

bin/receiver --log-dev &
pids+=($!)
wait
