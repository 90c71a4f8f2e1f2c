#!/usr/bin/env bash
# The cluster on this machine: what deploy/compose.cluster.yaml runs, as processes on 127.0.0.1.
#   three nats-server nodes (one JetStream cluster, the stream R3)
#   two receivers (stateless: either takes any webhook)       :8080 and :8081
#   two reconcilers, each its own consumer and SQLite ledger  :9090 (a) and :9091 (b)
#   ckosim (a local Checkout.com) driving demo payments, its webhooks to the first receiver
# Exactly one reconciler sweeps (it holds the lease in the NATS KV bucket KNETRECON_LEASES); kill
# it and the other takes over within a few seconds. Both ledgers end up the same:
#   bin/reconciler digest --ledger ./data/cluster/ledger-a.db
#   bin/reconciler digest --ledger ./data/cluster/ledger-b.db
# Ctrl-C stops it all; the state stays in ./data/cluster (make clean removes it).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=$(realpath -m "${DIR:-./data/cluster}") # nats-server wants an absolute store dir
WEBHOOK_KEY=${KNETRECON_WEBHOOK_KEYS:-local-dev-webhook-key}
SECRET_KEY=${KNETRECON_CHECKOUT_SECRET_KEY:-sk_sbox_local}
DEMO=${DEMO:-40}
EXPIRY=${EXPIRY:-1m}
SEED=${SEED:-$(date +%s)}

mkdir -p "$DIR" bin
echo "building…"
go build -buildvcs=auto -o bin/ ./cmd/receiver ./cmd/reconciler ./cmd/ckosim
[ -x bin/nats-server ] || go build -o bin/nats-server github.com/nats-io/nats-server/v2
# The reconcilers' shared fact key: every reconciler of the stream verifies the others' facts.
[ -s "$DIR/fact.keys" ] || { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/fact.keys"; chmod 600 "$DIR/fact.keys"; }

. scripts/lib.sh

for i in 1 2 3; do
  routes=""
  for j in 1 2 3; do [ "$j" = "$i" ] || routes="$routes${routes:+,}nats://127.0.0.1:$((6221 + j))"; done
  bin/nats-server -js -a 127.0.0.1 -p $((4221 + i)) -n "n$i" -sd "$DIR/nats$i" \
    --cluster_name knetrecon --cluster "nats://127.0.0.1:$((6221 + i))" --routes "$routes" > "$DIR/nats$i.log" 2>&1 &
  pids+=($!)
done
NATS_URL=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224

for i in 0 1; do
  KNETRECON_NATS_URL=$NATS_URL KNETRECON_STREAM_REPLICAS=3 KNETRECON_WEBHOOK_KEYS=$WEBHOOK_KEY \
  KNETRECON_RECEIVER_ADDR=127.0.0.1:$((8080 + i)) KNETRECON_METRICS_ADDR=127.0.0.1:$((9190 + i)) \
  KNETRECON_DATA_DIR="$DIR/receiver$i" KNETRECON_START_TIMEOUT=60s \
    bin/receiver --log-dev --log-level warn &
  pids+=($!)
done
wait_for 127.0.0.1 8080
wait_for 127.0.0.1 8081

for r in a b; do
  port=$([ $r = a ] && echo 9090 || echo 9091)
  recv=$([ $r = a ] && echo 9190 || echo 9191)
  KNETRECON_NATS_URL=$NATS_URL KNETRECON_CONSUMER=reconciler-$r KNETRECON_LEDGER="$DIR/ledger-$r.db" \
  KNETRECON_DATA_DIR="$DIR/reconciler-$r" KNETRECON_FACT_KEYS_FILE="$DIR/fact.keys" KNETRECON_SWEEP_LEASE_TTL=5s \
  KNETRECON_ADMIN_ADDR=127.0.0.1:$port KNETRECON_REPORT_DIR="$DIR/reports-$r" \
  KNETRECON_CHECKOUT_URL=http://127.0.0.1:8090 KNETRECON_CHECKOUT_SECRET_KEY=$SECRET_KEY KNETRECON_WEBHOOK_KEYS=$WEBHOOK_KEY \
  KNETRECON_PENDING_TIMEOUT=$EXPIRY KNETRECON_VOID_GRACE=20s KNETRECON_STUCK_AFTER=5m \
  KNETRECON_SWEEP_SCHEDULE="@every 15s" KNETRECON_VERIFY_AFTER=2m,10m KNETRECON_START_TIMEOUT=60s \
  KNETRECON_RECEIVER_HEALTH_URL=http://127.0.0.1:$recv/readyz \
    bin/reconciler run --log-dev --log-level warn &
  pids+=($!)
done
wait_for 127.0.0.1 9090
wait_for 127.0.0.1 9091

KNETRECON_CKOSIM_SECRET_KEY=$SECRET_KEY KNETRECON_CKOSIM_WEBHOOK_KEY=$WEBHOOK_KEY \
bin/ckosim --log-dev --log-level warn --addr 127.0.0.1:8090 --expiry "$EXPIRY" --seed "$SEED" \
  --webhook-url http://127.0.0.1:8080/webhooks/checkout \
  --drop-rate 0.1 --duplicate-rate 0.1 --delay-rate 0.1 --max-delay 20s --demo "$DEMO" &
pids+=($!)

cat <<TXT

the knetrecon cluster is running (seed $SEED):
  nats-server  n1 n2 n3   $NATS_URL  (one JetStream cluster; the stream R3; logs in $DIR/nats*.log)
  receivers    http://127.0.0.1:8080/webhooks/checkout  http://127.0.0.1:8081/webhooks/checkout
  reconcilers  a: desk http://127.0.0.1:9090/  ledger $DIR/ledger-a.db
               b: desk http://127.0.0.1:9091/  ledger $DIR/ledger-b.db
  ckosim       http://127.0.0.1:8090  (demo payments; its webhooks go to the first receiver)
In another terminal, once the demo has settled (a few minutes), the two ledgers are the same:
  bin/reconciler digest --ledger $DIR/ledger-a.db
  bin/reconciler digest --ledger $DIR/ledger-b.db
Which one sweeps: curl -s 127.0.0.1:9090/metrics | grep sweep_leader (and 9091). Kill it (kill -9
its pid) and the other takes the sweep over; start it again and it catches up.
Ctrl-C stops everything.
TXT
wait
