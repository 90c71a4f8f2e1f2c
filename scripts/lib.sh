# Shared by the run scripts: every process started is stopped on exit (Ctrl-C included); a port is
# checked free before its process starts; a process is waited for until it answers healthy, and
# one that dies meanwhile stops everything at once with one line saying which and why.
pids=()
declare -A names=() # pid → name, for the line that says which process stopped
declare -A since=() # log → its line count when this run's process started
stopping=

# stop ends every process started, TERM first, KILL for any still there after 20 s.
stop() {
  trap - INT TERM EXIT
  stopping=1
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 200); do
    local alive=
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

# fail prints one line and exits non-zero; the EXIT trap stops whatever was started.
fail() {
  echo "$*" >&2
  exit 1
}

# hostport ADDR: "host port" to connect to; an empty or wildcard host is this machine.
hostport() {
  local host=${1%:*} port=${1##*:}
  host=${host#[}
  host=${host%]}
  case $host in "" | 0.0.0.0 | "::") host=127.0.0.1 ;; esac
  echo "$host $port"
}

# listening HOST PORT: something accepts connections there.
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# check_port NAME VAR ADDR: fails, naming the port and the variable that moves it, when something
# already listens on ADDR's port.
check_port() {
  local host port who=
  read -r host port <<<"$(hostport "$3")"
  case $port in '' | *[!0-9]*) fail "$2=$3 is not host:port (like 127.0.0.1:8080)" ;; esac
  if listening "$host" "$port"; then
    if command -v ss >/dev/null; then
      who=$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:(("[^"]*"' | head -1 | cut -d'"' -f2) || true
    fi
    fail "port $port is in use${who:+ by $who} (wanted by the $1): set $2 to a free address, e.g. $2=127.0.0.1:$((port + 1)) make run"
  fi
}

# http_status HOST PORT PATH: the status code of a GET, 000 when nothing answers.
http_status() {
  (
    exec 3<>"/dev/tcp/$1/$2" || exit
    printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' "$3" "$1" "$2" >&3
    IFS= read -r -t 5 line <&3 || exit
    line=${line#HTTP/* }
    echo "${line%% *}"
  ) 2>/dev/null || echo 000
}

# spawn NAME LOG CMD…: starts CMD in the background, its output appended to LOG.
spawn() {
  local name=$1 log=$2
  shift 2
  echo "=== $(date -Is) $*" >>"$log"
  since[$log]=$(wc -l <"$log")
  "$@" >>"$log" 2>&1 &
  pids+=($!)
  names[$!]=$name
}

# died NAME PID LOG VAR: the one line for a process that ended on its own.
died() {
  local code=0 out last
  wait "$2" 2>/dev/null || code=$?
  out=$(tail -n +"$((${since[$3]:-0} + 1))" "$3" | grep -v '^[[:space:]]*$' || true)
  last=$(grep -m1 '^panic:' <<<"$out" || tail -1 <<<"$out")
  if grep -q 'address already in use' <<<"$out" && [ -n "${4:-}" ]; then
    fail "the $1 stopped (exit $code): its port is in use: set $4 to a free address (log: $3)"
  fi
  fail "the $1 stopped (exit $code): ${last:0:240} (log: $3)"
}

# wait_healthy NAME ADDR PATH LOG VAR: waits up to 60 s until GET PATH on ADDR answers 200 from the
# last process started; fails at once if that process dies first.
wait_healthy() {
  local pid=${pids[-1]} host port
  read -r host port <<<"$(hostport "$2")"
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || died "$1" "$pid" "$4" "$5"
    if [ "$(http_status "$host" "$port" "$3")" = 200 ]; then
      # The answer came from our process only if it is still there (not another program's port).
      kill -0 "$pid" 2>/dev/null || died "$1" "$pid" "$4" "$5"
      return 0
    fi
    sleep 0.1
  done
  fail "the $1 did not answer 200 on http://$host:$port$3 within 60 s (log: $4)"
}

# watch: after start-up, waits until a process ends on its own, then stops everything saying which.
# It polls: `wait -n` misses a process that ended before it was called.
watch() {
  local p code
  exec 4>&2 2>/dev/null # bash's own "Killed" notice would be a second line: this one says it all
  while :; do
    for p in "${pids[@]}"; do
      if ! kill -0 "$p" 2>/dev/null; then
        code=0
        wait "$p" 2>/dev/null || code=$?
        exec 2>&4
        [ -n "$stopping" ] && return 0
        fail "the ${names[$p]:-process $p} stopped (exit $code); everything is stopped (logs: ${LOGS:-.})"
      fi
    done
    sleep 0.5
  done
}

# wait_for HOST PORT: waits for a port to open (the cluster script's services open theirs once
# ready).
wait_for() { # host port
  for _ in $(seq 1 300); do
    if listening "$1" "$2"; then return 0; fi
    sleep 0.2
  done
  echo "gave up waiting for $1:$2" >&2
  return 1
}
