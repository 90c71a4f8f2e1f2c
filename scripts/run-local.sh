#!/usr/bin/env bash
# The whole pipeline on this machine, on embedded defaults:
#   ckosim (a local Checkout.com) ──webhooks──▶ receiver (embedded NATS under ./data/nats)
#        ▲                                            │ JetStream
#        └──── GET /payments, voids ◀── reconciler ◀──┘ ──▶ SQLite ledger ./data/ledger.db
# The simulator drives demo payments; KNET's seven minutes are shortened to one, and the
# verification of final payments (31 h after their latest event in production) to two minutes,
# so that the sweep's work (confirming expiries, voiding abandoned payments, recovering captures
# and refunds whose webhooks the simulator dropped) shows within minutes.
#
# The ports move with the services' own variables: KNETRECON_RECEIVER_ADDR (127.0.0.1:8080),
# KNETRECON_ADMIN_ADDR (the desk and the reconciler's metrics, 127.0.0.1:9090),
# KNETRECON_NATS_LISTEN (127.0.0.1:4222) and KNETRECON_CKOSIM_ADDR (127.0.0.1:8090). Each port is
# checked free first; a port in use, or a process that stops while starting, stops everything with
# one line saying which and a non-zero exit. The banner shows once every process answers healthy;
# the logs go to ./data/logs/. Each run numbers its demo references anew (DEMO<run>-0001…).
# BIN=DIR runs the binaries in DIR instead of building them (the tests do).
# Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."

export KNETRECON_DATA_DIR=${KNETRECON_DATA_DIR:-./data}
export KNETRECON_LEDGER=${KNETRECON_LEDGER:-$KNETRECON_DATA_DIR/ledger.db}
RECEIVER_ADDR=${KNETRECON_RECEIVER_ADDR:-127.0.0.1:8080}
ADMIN_ADDR=${KNETRECON_ADMIN_ADDR:-127.0.0.1:9090}
NATS_LISTEN=${KNETRECON_NATS_LISTEN:-127.0.0.1:4222}
CKOSIM_ADDR=${KNETRECON_CKOSIM_ADDR:-127.0.0.1:8090}
WEBHOOK_KEY=${KNETRECON_WEBHOOK_KEYS:-local-dev-webhook-key}
SECRET_KEY=${KNETRECON_CHECKOUT_SECRET_KEY:-sk_sbox_local}
DEMO=${DEMO:-40}
EXPIRY=${EXPIRY:-1m}
VERIFY_AFTER=${VERIFY_AFTER:-2m,10m}
# A new seed each run: a second `make run` on the same ./data continues with new payment ids
# instead of colliding with the first run's (SEED=… repeats a run exactly).
SEED=${SEED:-$(date +%s)}
LOGS=$KNETRECON_DATA_DIR/logs

. scripts/lib.sh

# Every port free before anything starts, each named with the variable that moves it.
declare -A seen=()
for svc in "receiver KNETRECON_RECEIVER_ADDR $RECEIVER_ADDR" "reconciler KNETRECON_ADMIN_ADDR $ADMIN_ADDR" \
  "receiver's NATS KNETRECON_NATS_LISTEN $NATS_LISTEN" "simulator KNETRECON_CKOSIM_ADDR $CKOSIM_ADDR"; do
  addr=${svc##* } rest=${svc% *}
  var=${rest##* } name=${rest% *}
  check_port "$name" "$var" "$addr"
  port=${addr##*:}
  [ -n "${seen[$port]:-}" ] && fail "port $port is given to both ${seen[$port]} and $var: set one of them to another address"
  seen[$port]=$var
done

mkdir -p "$KNETRECON_DATA_DIR" "$LOGS"
if [ -z "${BIN:-}" ]; then
  echo "building…"
  mkdir -p bin
  go build -buildvcs=auto -o bin/ ./cmd/receiver ./cmd/reconciler ./cmd/ckosim
  BIN=bin
fi

# This run's number, for demo references no earlier run on this ./data used.
run=$(($(cat "$KNETRECON_DATA_DIR/runs" 2>/dev/null || echo 0) + 1))
echo "$run" >"$KNETRECON_DATA_DIR/runs"
PREFIX=DEMO$run-

read -r rhost rport <<<"$(hostport "$RECEIVER_ADDR")"
read -r ahost aport <<<"$(hostport "$ADMIN_ADDR")"
read -r nhost nport <<<"$(hostport "$NATS_LISTEN")"
read -r chost cport <<<"$(hostport "$CKOSIM_ADDR")"
echo "starting (logs in $LOGS/)…"

KNETRECON_WEBHOOK_KEYS=$WEBHOOK_KEY KNETRECON_RECEIVER_ADDR=$RECEIVER_ADDR KNETRECON_NATS_LISTEN=$NATS_LISTEN \
  spawn receiver "$LOGS/receiver.log" "$BIN/receiver" --log-dev --log-level warn
wait_healthy receiver "$RECEIVER_ADDR" /readyz "$LOGS/receiver.log" KNETRECON_RECEIVER_ADDR

KNETRECON_CHECKOUT_URL=http://$chost:$cport KNETRECON_CHECKOUT_SECRET_KEY=$SECRET_KEY KNETRECON_WEBHOOK_KEYS=$WEBHOOK_KEY \
  KNETRECON_NATS_URL=${KNETRECON_NATS_URL:-nats://$nhost:$nport} KNETRECON_ADMIN_ADDR=$ADMIN_ADDR \
  KNETRECON_PENDING_TIMEOUT=$EXPIRY KNETRECON_VOID_GRACE=20s KNETRECON_STUCK_AFTER=5m \
  KNETRECON_SWEEP_SCHEDULE="@every 15s" KNETRECON_VERIFY_AFTER=$VERIFY_AFTER \
  KNETRECON_RECEIVER_HEALTH_URL=http://$rhost:$rport/readyz \
  spawn reconciler "$LOGS/reconciler.log" "$BIN/reconciler" run --log-dev
wait_healthy reconciler "$ADMIN_ADDR" /readyz "$LOGS/reconciler.log" KNETRECON_ADMIN_ADDR

# Keys go through the environment, never the command line (where `ps` shows them).
KNETRECON_CKOSIM_SECRET_KEY=$SECRET_KEY KNETRECON_CKOSIM_WEBHOOK_KEY=$WEBHOOK_KEY KNETRECON_CKOSIM_ADDR=$CKOSIM_ADDR \
  spawn simulator "$LOGS/ckosim.log" "$BIN/ckosim" --log-dev --expiry "$EXPIRY" --seed "$SEED" \
  --webhook-url "http://$rhost:$rport/webhooks/checkout" --demo-prefix "$PREFIX" \
  --drop-rate 0.1 --duplicate-rate 0.1 --delay-rate 0.1 --max-delay 20s --demo "$DEMO"
wait_healthy simulator "$CKOSIM_ADDR" /_sim/payments "$LOGS/ckosim.log" KNETRECON_CKOSIM_ADDR

# The commands of another terminal find this run's ledger and NATS by themselves on the defaults;
# moved, they need the same settings.
moved=()
[ "$KNETRECON_LEDGER" != ./data/ledger.db ] && moved+=("KNETRECON_DATA_DIR=$KNETRECON_DATA_DIR" "KNETRECON_LEDGER=$KNETRECON_LEDGER")
[ "$nhost:$nport" != 127.0.0.1:4222 ] && moved+=("KNETRECON_NATS_URL=nats://$nhost:$nport")
[ "$ahost:$aport" != 127.0.0.1:9090 ] && moved+=("KNETRECON_ADMIN_ADDR=$ADMIN_ADDR")
there="In another terminal:"
[ ${#moved[@]} -gt 0 ] && there="In another terminal, after export ${moved[*]}:"

cat <<TXT

knetrecon is running. The desk: http://$ahost:$aport/
  It shows the road's health, the money per day and what needs a person. Type ${PREFIX}0004 (a
  demo order's reference: this run's are ${PREFIX}0001…$(printf %04d "$DEMO")) into its search box
  for that payment's timeline: webhooks, the sweep's checks, postings, KNET ids.

For the demo KNET's expiry is shortened to $EXPIRY and verification to $VERIFY_AFTER; the simulator
loses, duplicates and delays 10 % of webhooks each, on purpose, so that the sweep has work (a
payment can show Pending for up to a minute before its webhook or the sweep arrives); seed $SEED.
  receiver     http://$rhost:$rport/webhooks/checkout   (/healthz /readyz /metrics)
  reconciler   http://$ahost:$aport/metrics   ledger $KNETRECON_LEDGER
  simulator    http://$chost:$cport/_sim/payments   (open a redirect_url to pay by hand:
               card 8888880000000001, 09/2025, PIN 1234)
  logs         $LOGS/receiver.log, reconciler.log, ckosim.log   (tail -f them)
$there
  bin/reconciler payment ${PREFIX}0004     the ledger's view of a payment (by id or reference)
  bin/reconciler stuck                   what the sweep could not resolve
  bin/reconciler report --date YYYY-MM-DD  finance's report of a day (--format csv for the postings)
The money to the bank account, three legs (the bank's statement with its commission, then the
merchant's account statement with today's net credited 0.100 KWD short):
  curl -s 'http://$chost:$cport/_sim/settlement?layout=bank&format=xlsx' > bank.xlsx
  bin/reconciler settle --statement bank.xlsx --layout docs/layouts/ckosim-bank.layout
  curl -s 'http://$chost:$cport/_sim/account?short=1' > account.csv
  bin/reconciler deposits --statement account.csv --layout docs/layouts/ckosim-account.layout
Ctrl-C stops everything.
TXT
watch
