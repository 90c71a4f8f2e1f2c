# Shared by the run scripts: every process started is stopped on exit (Ctrl-C included), and
# wait_for waits for a port to open (each service opens its port once it is ready; no curl needed).
pids=()
stop() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

wait_for() { # host port
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "gave up waiting for $1:$2" >&2
  return 1
}
