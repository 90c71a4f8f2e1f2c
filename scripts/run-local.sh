#!/usr/bin/env bash
# The whole pipeline on this machine, on embedded defaults:
#   ckosim (a local Checkout.com) ──webhooks──▶ receiver (embedded NATS under ./data/nats)
#        ▲                                            │ JetStream
#        └──── GET /payments, voids ◀── reconciler ◀──┘ ──▶ SQLite ledger ./data/ledger.db
# The simulator drives demo payments; KNET's seven minutes are shortened to one, and the
# verification of final payments (31 h after their latest event in production) to two minutes,
# so that the sweep's work (confirming expiries, voiding abandoned payments, recovering captures
# and refunds whose webhooks the simulator dropped) shows within minutes.
# Everything listens on 127.0.0.1. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."

export KNETRECON_DATA_DIR=${KNETRECON_DATA_DIR:-./data}
export KNETRECON_LEDGER=${KNETRECON_LEDGER:-$KNETRECON_DATA_DIR/ledger.db}
WEBHOOK_KEY=${KNETRECON_WEBHOOK_KEYS:-local-dev-webhook-key}
SECRET_KEY=${KNETRECON_CHECKOUT_SECRET_KEY:-sk_sbox_local}
DEMO=${DEMO:-40}
EXPIRY=${EXPIRY:-1m}
VERIFY_AFTER=${VERIFY_AFTER:-2m,10m}
# A new seed each run: a second `make run` on the same ./data continues with new payment ids
# instead of colliding with the first run's (SEED=… repeats a run exactly).
SEED=${SEED:-$(date +%s)}

mkdir -p "$KNETRECON_DATA_DIR" bin
echo "building…"
go build -buildvcs=auto -o bin/ ./cmd/receiver ./cmd/reconciler ./cmd/ckosim

. scripts/lib.sh

KNETRECON_WEBHOOK_KEYS=$WEBHOOK_KEY KNETRECON_RECEIVER_ADDR=127.0.0.1:8080 \
  bin/receiver --log-dev --log-level warn &
pids+=($!)
wait_for 127.0.0.1 8080

KNETRECON_CHECKOUT_URL=http://127.0.0.1:8090 KNETRECON_CHECKOUT_SECRET_KEY=$SECRET_KEY KNETRECON_WEBHOOK_KEYS=$WEBHOOK_KEY \
KNETRECON_PENDING_TIMEOUT=$EXPIRY KNETRECON_VOID_GRACE=20s KNETRECON_STUCK_AFTER=5m \
KNETRECON_SWEEP_SCHEDULE="@every 15s" KNETRECON_VERIFY_AFTER=$VERIFY_AFTER \
KNETRECON_RECEIVER_HEALTH_URL=http://127.0.0.1:8080/readyz \
  bin/reconciler run --log-dev &
pids+=($!)
wait_for 127.0.0.1 9090

# Keys go through the environment, never the command line (where `ps` shows them).
KNETRECON_CKOSIM_SECRET_KEY=$SECRET_KEY KNETRECON_CKOSIM_WEBHOOK_KEY=$WEBHOOK_KEY \
bin/ckosim --log-dev --addr 127.0.0.1:8090 --expiry "$EXPIRY" --seed "$SEED" \
  --webhook-url http://127.0.0.1:8080/webhooks/checkout \
  --drop-rate 0.1 --duplicate-rate 0.1 --delay-rate 0.1 --max-delay 20s --demo "$DEMO" &
pids+=($!)

cat <<TXT

knetrecon is running (KNET expiry shortened to $EXPIRY, verification to $VERIFY_AFTER, for the demo;
the simulator loses, duplicates and delays 10 % of webhooks each, on purpose, so that the sweep has
work: a payment can show Pending for up to a minute before its webhook or the sweep arrives;
seed $SEED):
  receiver     http://127.0.0.1:8080/webhooks/checkout   (/healthz /readyz /metrics)
  reconciler   http://127.0.0.1:9090/metrics             ledger $KNETRECON_LEDGER
  ckosim       http://127.0.0.1:8090/_sim/payments        (open a redirect_url to pay by hand:
               card 8888880000000001, 09/2025, PIN 1234)
In another terminal:
  bin/reconciler payment <pay_id>        the ledger's view of a payment
  bin/reconciler stuck                   what the sweep could not resolve
  bin/reconciler report --date YYYY-MM-DD  finance's report of a day (--format csv for the postings)
  curl -s 'http://127.0.0.1:8090/_sim/settlement?missing=1&change=1' > statement.csv
  bin/reconciler settle --statement statement.csv   the bank's statement of today against the ledger
  sqlite3 $KNETRECON_LEDGER 'select status, count(*), sum(captured) from payments group by 1'
Ctrl-C stops everything.
TXT
wait
