#!/usr/bin/env bash
# The whole road on one box: receiver (embedded NATS) and reconciler (SQLite ledger) as separate
# processes, signed 1.5 KB webhooks at a fixed rate for a fixed time (127.0.0.1 only), then the
# time until the ledger holds every event. Reports webhooks/s taken in and events/s applied.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "this benchmark reads /metrics with curl: apt-get install -y curl" >&2; exit 1; }
RATES=${RATES:-8000 10000 12500}
DURATION=${DURATION:-20s}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/" ./cmd/receiver ./cmd/reconciler ./cmd/webhookload

applied() { curl -s http://127.0.0.1:19090/metrics | awk '/^knetrecon_reconciler_events_total/ {s+=$2} END {printf "%d\n", s}'; }
stored() { curl -s http://127.0.0.1:18080/metrics | awk '/^knetrecon_receiver_requests_total\{outcome="stored"\}/ {print $2}'; }

for rate in $RATES; do
  rm -rf "$tmp/data"
  KNETRECON_RECEIVER_ADDR=127.0.0.1:18080 KNETRECON_NATS_LISTEN=127.0.0.1:14222 KNETRECON_DATA_DIR="$tmp/data" \
  KNETRECON_WEBHOOK_KEYS=bench-key KNETRECON_LOG_LEVEL=warn "$tmp/receiver" 2>"$tmp/receiver.log" &
  rp=$!; pids+=($rp)
  for _ in $(seq 1 100); do curl -fs -o /dev/null http://127.0.0.1:18080/readyz && break; sleep 0.1; done
  KNETRECON_NATS_URL=nats://127.0.0.1:14222 KNETRECON_LEDGER="$tmp/data/ledger.db" KNETRECON_ADMIN_ADDR=127.0.0.1:19090 \
  KNETRECON_SWEEP_SCHEDULE=off KNETRECON_WEBHOOK_KEYS=bench-key KNETRECON_DATA_DIR="$tmp/data" KNETRECON_LOG_LEVEL=warn "$tmp/reconciler" run 2>"$tmp/reconciler.log" &
  cp=$!; pids+=($cp)
  for _ in $(seq 1 100); do curl -fs -o /dev/null http://127.0.0.1:19090/readyz && break; sleep 0.1; done

  start=$(date +%s.%N)
  "$tmp/webhookload" -targets road=127.0.0.1:18080 -conns "" -rate "$rate" -duration "$DURATION" -key bench-key | sed -n 1p
  sent=$(stored)
  # Wait (bounded) for the reconciler to apply everything stored.
  for _ in $(seq 1 600); do
    [ "$(applied)" -ge "$sent" ] && break
    sleep 0.1
  done
  end=$(date +%s.%N)
  got=$(applied)
  awk -v r="$rate" -v s="$sent" -v g="$got" -v a="$start" -v b="$end" 'BEGIN {
    printf "rate %5d/s: %d stored, %d applied, all applied %.1fs after the load began: %.0f events/s end to end\n", r, s, g, b-a, g/(b-a) }'
  kill "$rp" "$cp"; wait "$rp" "$cp" 2>/dev/null || true
  pids=()
done
