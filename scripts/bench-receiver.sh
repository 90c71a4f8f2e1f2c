#!/usr/bin/env bash
# Load test of the receiver against a null HTTP handler, same machine, same run.
# Sends signed ~1.5 KB webhooks to 127.0.0.1 only; every run is bounded by -duration.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "this benchmark reads /metrics with curl: apt-get install -y curl" >&2; exit 1; }
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32,256}
RATE=${RATE:-2000}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/receiver" ./cmd/receiver
go build -o "$tmp/webhookload" ./cmd/webhookload

# The receiver three ways: durable by default (a 2xx after fsync; webhooks answered together
# share one fsync), fsyncing each webhook on its own (nats-server's sync_always), and not durable
# (a 2xx after the PubAck: a power cut may lose what the last two minutes stored).
KNETRECON_RECEIVER_ADDR=127.0.0.1:18080 KNETRECON_NATS_LISTEN=127.0.0.1:14222 \
KNETRECON_DATA_DIR="$tmp/data" KNETRECON_WEBHOOK_KEYS=bench-key \
  "$tmp/receiver" 2>"$tmp/receiver.log" &
pids+=($!)
KNETRECON_RECEIVER_ADDR=127.0.0.1:18084 KNETRECON_NATS_LISTEN=127.0.0.1:14224 KNETRECON_NATS_SYNC_ALWAYS=true \
KNETRECON_DATA_DIR="$tmp/data-sync-always" KNETRECON_WEBHOOK_KEYS=bench-key \
  "$tmp/receiver" 2>"$tmp/receiver-sync-always.log" &
pids+=($!)
KNETRECON_RECEIVER_ADDR=127.0.0.1:18085 KNETRECON_NATS_LISTEN=127.0.0.1:14225 KNETRECON_DURABLE=false \
KNETRECON_DATA_DIR="$tmp/data-not-durable" KNETRECON_WEBHOOK_KEYS=bench-key \
  "$tmp/receiver" 2>"$tmp/receiver-not-durable.log" &
pids+=($!)
"$tmp/webhookload" -null 127.0.0.1:18081 2>/dev/null &
pids+=($!)
# Two bounds beside the null handler: a bare receiver (HMAC + JetStream publish waiting for the
# PubAck, nothing else) and the same waiting for no ack at all: what a JetStream publish per webhook
# costs on this machine before any of the receiver's own work.
"$tmp/webhookload" -bare 127.0.0.1:18082 -bare-ack sync -key bench-key 2>/dev/null &
pids+=($!)
"$tmp/webhookload" -bare 127.0.0.1:18083 -bare-ack none -key bench-key 2>/dev/null &
pids+=($!)

for i in $(seq 1 100); do
  if curl -fsS http://127.0.0.1:18080/readyz >/dev/null 2>&1 && curl -s -o /dev/null http://127.0.0.1:18081/ \
    && curl -fsS http://127.0.0.1:18084/readyz >/dev/null 2>&1 && curl -fsS http://127.0.0.1:18085/readyz >/dev/null 2>&1 \
    && curl -s -o /dev/null http://127.0.0.1:18082/ && curl -s -o /dev/null http://127.0.0.1:18083/; then break; fi
  sleep 0.1
done

"$tmp/webhookload" -targets null=127.0.0.1:18081,receiver=127.0.0.1:18080,receiver-fsync-each=127.0.0.1:18084,receiver-not-durable=127.0.0.1:18085,bare-sync-ack=127.0.0.1:18082,bare-no-ack=127.0.0.1:18083 \
  -conns "$CONNS" -rate "$RATE" -duration "$DURATION" -key bench-key "$@"
echo
echo "receiver outcomes (durable, fsync-each, not durable):"
for port in 18080 18084 18085; do
  curl -s http://127.0.0.1:$port/metrics | grep '^knetrecon_receiver_requests_total' | grep -v ' 0$' | sed "s/^/  :$port /" || true
done
