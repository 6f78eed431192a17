#!/usr/bin/env bash
# Run a local authority cluster in the background, with logs and pids in a run dir.
#
#   scripts/cluster.sh up [--replicas 3|5] [--port P] [--http-port H] [--log-level L] [--wait-s 30]
#                                            init (if needed) and start every replica, wait for a leader
#   scripts/cluster.sh down                  stop the workers (they leave), then SIGTERM every replica
#                                            (a leader hands over first), then wait
#   scripts/cluster.sh status [--watch]      the status table (nodeledger status)
#   scripts/cluster.sh kill-leader           SIGKILL the current leader (and say which)
#   scripts/cluster.sh start ID [--log-level L] | kill ID
#                                            one replica (also one added by member replace --start)
#   scripts/cluster.sh snapshot ID           snapshot and compact that replica's log now (SIGUSR2)
#
# The run dir is $NODELEDGER_RUN_DIR, default .run/cluster in the repo. Logs: $DIR/logs/replica-N.log
# (pino JSON, one event per line). Exit codes follow the CLI's (0 ok, 2 bad input, 3 no such
# replica, 5 unavailable, ...; nodeledger --help lists them).
set -euo pipefail
source "$(dirname "$0")/run-env.sh"

# Founders (the cluster file) and members started here later (their pid files).
replica_ids() {
  {
    [ -f "$CLUSTER" ] && "$NODE" -e 'for (const r of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).replicas) console.log(r.id)' "$CLUSTER"
    for f in "$DIR"/pids/replica-*.pid; do if [ -f "$f" ]; then basename "$f" .pid | sed 's/^replica-//'; fi; done
    true
  } | sort -nu
}
known() { replica_ids | grep -qx "$1"; }
pid_of() { local f="$DIR/pids/replica-$1.pid"; [ -f "$f" ] && cat "$f" || true; }
# Alive, and still our replica: a pid file can outlive its process, and its pid be reused by another.
alive() {
  local pid; pid=$(pid_of "$1")
  [ -n "$pid" ] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  local state; state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
  [ "$state" != Z ] && [ "$state" != X ] || return 1
  local cmdline; cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  [[ "$cmdline" == *" authority "*"--id $1 "* && "$cmdline" == *"$CLUSTER"* ]]
}
no_such_replica() { echo "there is no replica $1 here (replicas: $(replica_ids | tr '\n' ' ' | sed 's/ $//'))" >&2; exit 3; }

data_dir_of() { "$NODE" -e 'const path = require("path"); const f = process.argv[1]; const r = JSON.parse(require("fs").readFileSync(f, "utf8")).replicas.find((r) => r.id === Number(process.argv[2])); console.log(r ? path.resolve(path.dirname(f), r.dataDir) : "")' "$CLUSTER" "$1"; }

log_level() { [ -n "${LOG_LEVEL:-}" ] && echo "$LOG_LEVEL" || { [ -f "$DIR/log-level" ] && cat "$DIR/log-level"; } || echo info; }

start_one() {
  local id=$1
  known "$id" || no_such_replica "$id"
  if alive "$id"; then echo "replica $id already running (pid $(pid_of "$id"))"; return; fi
  mkdir -p "$DIR/logs" "$DIR/pids"
  local extra=()
  # A member added later (member replace --start) is not in the file: its own flags were saved.
  if [ -f "$DIR/pids/replica-$id.args" ]; then read -r -a extra <"$DIR/pids/replica-$id.args"; fi
  # A founder that never got past deciding how to start (no replica.json in its data dir: the
  # replica writes it once it joined or created the cluster; one killed while waiting for the other
  # founders has a data dir without it) takes part in creating the cluster; any other start joins
  # what exists. (A founder that ran and lost its dir is refused either way: its peers know.)
  local state=existing
  if [ ${#extra[@]} -eq 0 ]; then [ -f "$(data_dir_of "$id")/replica.json" ] || state=new; fi
  nohup "${CLI[@]}" authority --cluster "$CLUSTER" --id "$id" --initial-cluster-state "$state" --log-level "$(log_level)" "${extra[@]}" >>"$DIR/logs/replica-$id.log" 2>&1 &
  echo $! >"$DIR/pids/replica-$id.pid"
  echo "replica $id started (pid $!, log $DIR/logs/replica-$id.log)"
}

# The replica died: say so with the end of its log (the reason is there), and its exit code when known.
died() {
  local id=$1 code=""
  # Our own child when `up` started it: wait gives its exit code.
  if wait "$(pid_of "$id")" 2>/dev/null; then code=0; else code=$?; fi
  [ "$code" = 127 ] && code=""
  [ -n "$code" ] && [ "$code" != 0 ] && [ -z "${DIED_CODE:-}" ] && DIED_CODE=$code
  echo "replica $id exited${code:+ with code $code} while starting; the end of $DIR/logs/replica-$id.log:" >&2
  tail -n 15 "$DIR/logs/replica-$id.log" | sed 's/^/  /' >&2
}

wait_for_leader() {
  local wait_s=$1 ids started=$SECONDS
  ids=$(replica_ids)
  while [ $((SECONDS - started)) -lt "$wait_s" ]; do
    local dead=0
    for id in $ids; do alive "$id" || { died "$id"; dead=1; }; done
    if [ $dead -ne 0 ]; then
      # Leave nothing half-started behind: a re-run after the fix starts clean.
      for id in $ids; do if alive "$id"; then kill -TERM "$(pid_of "$id")" 2>/dev/null || true; fi; done
      echo "cluster not up: a replica died (see above); stopped the others" >&2
      exit "${DIED_CODE:-5}"
    fi
    if "${CLI[@]}" status --cluster "$CLUSTER" --json --timeout-ms 500 2>/dev/null | grep -q '"role":"leader"'; then
      "${CLI[@]}" status --cluster "$CLUSTER" || true
      return 0
    fi
    sleep 0.2
  done
  echo "no leader after $wait_s s though every replica runs; see $DIR/logs" >&2
  return 5
}

leader_id() {
  "${CLI[@]}" status --cluster "$CLUSTER" --json --timeout-ms 1000 | "$NODE" -e '
    let text = ""; process.stdin.on("data", (d) => (text += d)).on("end", () => {
      const leader = JSON.parse(text).replicas.find((r) => r.role === "leader")
      if (!leader) process.exit(5)
      console.log(leader.id)
    })'
}

# SIGKILL and wait until it is gone, so that a start right after finds it down.
kill_one() {
  local id=$1 pid
  known "$id" || no_such_replica "$id"
  alive "$id" || { echo "replica $id is not running"; rm -f "$DIR/pids/replica-$id.pid"; return 0; }
  pid=$(pid_of "$id")
  kill -9 "$pid"
  for _ in $(seq 1 100); do alive "$id" || break; sleep 0.05; done
  rm -f "$DIR/pids/replica-$id.pid"
  echo "killed replica $id (pid $pid)"
}

command=${1:-}
shift || true
case "$command" in
  up)
    replicas=3
    port=7001
    wait_s=30
    http_args=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --replicas) replicas=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --log-level) LOG_LEVEL=$2; shift 2 ;;
        --wait-s) wait_s=$2; shift 2 ;;
        --http-port) http_args=(--http-port "$2"); shift 2 ;;
        *) echo "unknown option $1 (up takes --replicas, --port, --http-port, --log-level, --wait-s)" >&2; exit 2 ;;
      esac
    done
    mkdir -p "$DIR"
    [ -n "${LOG_LEVEL:-}" ] && echo "$LOG_LEVEL" >"$DIR/log-level"
    [ -f "$CLUSTER" ] || "${CLI[@]}" cluster init --replicas "$replicas" --port "$port" "${http_args[@]}" --dir "$DIR"
    for id in $(replica_ids); do start_one "$id"; done
    wait_for_leader "$wait_s"
    ;;
  down)
    [ -d "$DIR/pids" ] || { echo "nothing running in $DIR"; exit 0; }
    # Workers first, while a leader is there to acknowledge their leave.
    if compgen -G "$DIR/pids/workers-*.pid" >/dev/null; then bash "$ROOT/scripts/workers.sh" down; fi
    for id in $(replica_ids); do if alive "$id"; then kill -TERM "$(pid_of "$id")" 2>/dev/null || true; fi; done
    for _ in $(seq 1 50); do
      running=0
      for id in $(replica_ids); do if alive "$id"; then running=1; fi; done
      [ $running -eq 0 ] && break
      sleep 0.1
    done
    for id in $(replica_ids); do
      if alive "$id"; then echo "replica $id ignored SIGTERM; killing"; kill -9 "$(pid_of "$id")"; fi
      rm -f "$DIR/pids/replica-$id.pid"
    done
    echo "cluster stopped"
    ;;
  status)
    "${CLI[@]}" status --cluster "$CLUSTER" "$@"
    ;;
  kill-leader)
    id=$(leader_id) || { echo "no leader to kill" >&2; exit 5; }
    alive "$id" || { echo "leader $id was not started by this script (no live pid file)" >&2; exit 5; }
    kill_one "$id"
    ;;
  start)
    id=${1:?replica id}
    shift
    while [ $# -gt 0 ]; do
      case "$1" in
        --log-level) LOG_LEVEL=$2; shift 2 ;;
        *) echo "unknown option $1 (start takes --log-level)" >&2; exit 2 ;;
      esac
    done
    start_one "$id"
    ;;
  snapshot)
    id=${1:?replica id}
    known "$id" || no_such_replica "$id"
    alive "$id" || { echo "replica $id is not running" >&2; exit 5; }
    kill -USR2 "$(pid_of "$id")" && echo "replica $id asked to snapshot (see its log)"
    ;;
  kill) kill_one "${1:?replica id}" ;;
  *)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
