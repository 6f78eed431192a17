#!/usr/bin/env bash
# Run worker nodes (NodeEventTrackers) against the local cluster, in the background.
#
#   scripts/workers.sh N [--per-process K] [--capabilities web,twitter]
#                                 start N workers, K per process (default 25), and wait until the
#                                 registry holds them all active
#   scripts/workers.sh N --http-base PORT [--capabilities web,twitter]
#                                 start N workers, one process each, each with its HTTP gateway
#                                 (docs/HTTP.md) on 127.0.0.1:PORT, PORT+1, ... (worker http-I on PORT+I-1)
#   scripts/workers.sh down       SIGTERM every worker process: each worker leaves gracefully
#   scripts/workers.sh status     the cluster's status table, with the nodes
#
# Same run dir as scripts/cluster.sh ($NODELEDGER_RUN_DIR, default .run/cluster): data and keys in
# $DIR/workers/group-G/worker-I/, logs in $DIR/logs/workers-G.log, pids in $DIR/pids/workers-G.pid.
# Starting again adds new groups; a group's data dir survives `down`, and starting a group with
# the same number comes back with its cache. With --http-base: $DIR/workers/http-I/, workers-http-I.log
# and .pid; a gateway is one node's, so those workers run one per process (`nodeledger worker --http`).
set -euo pipefail
source "$(dirname "$0")/run-env.sh"
case "${1:-}" in ''|-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ -f "$CLUSTER" ] || { echo "no cluster at $CLUSTER: run 'bash scripts/cluster.sh up' first" >&2; exit 2; }

group_alive() { local f="$DIR/pids/workers-$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

# Active nodes in the registry (0 when the cluster cannot say right now).
active_count() {
  { "${CLI[@]}" status --json --cluster "$CLUSTER" 2>/dev/null || true; } | "$NODE" -e '
    let text = ""; process.stdin.on("data", (d) => (text += d)).on("end", () => {
      try { console.log(JSON.parse(text).nodes.active) } catch { console.log(0) }
    })'
}

command=${1:-}
case "$command" in
  ''|-h|--help)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  down)
    for pidfile in "$DIR"/pids/workers-*.pid; do
      [ -f "$pidfile" ] || continue
      pid=$(cat "$pidfile")
      if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; echo "stopping $(basename "$pidfile" .pid) (pid $pid): its workers leave"; fi
    done
    for pidfile in "$DIR"/pids/workers-*.pid; do
      [ -f "$pidfile" ] || continue
      pid=$(cat "$pidfile")
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$pidfile"
    done
    ;;
  status)
    "${CLI[@]}" status --cluster "$CLUSTER"
    ;;
  *)
    [[ "$command" =~ ^[0-9]+$ ]] && [ "$command" -ge 1 ] || { echo "usage: scripts/workers.sh N | down | status" >&2; exit 2; }
    count=$command
    shift
    per_process=25
    http_base=''
    extra=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --per-process) per_process=$2; shift 2 ;;
        --http-base) http_base=$2; shift 2 ;;
        *) extra+=("$1"); shift ;;
      esac
    done
    [ -z "$http_base" ] || [[ "$http_base" =~ ^[0-9]+$ ]] || { echo "--http-base must be a port number" >&2; exit 2; }
    mkdir -p "$DIR/logs" "$DIR/pids" "$DIR/workers"
    before=$(active_count)
    group=1
    left=$count
    slot=1
    while [ -n "$http_base" ] && [ "$left" -gt 0 ]; do
      # The lowest slot not running: its port is http_base + slot - 1, its dir comes back with its cache.
      while pidfile="$DIR/pids/workers-http-$slot.pid"; [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; do slot=$((slot + 1)); done
      port=$((http_base + slot - 1))
      nohup "${CLI[@]}" worker --data "$DIR/workers/http-$slot/data" --cluster "$CLUSTER" --staked --http "127.0.0.1:$port" "${extra[@]}" >>"$DIR/logs/workers-http-$slot.log" 2>&1 &
      echo $! >"$DIR/pids/workers-http-$slot.pid"
      echo "worker http-$slot: gateway http://127.0.0.1:$port/v1/status (pid $!, log $DIR/logs/workers-http-$slot.log)"
      left=$((left - 1))
      slot=$((slot + 1))
    done
    while [ "$left" -gt 0 ]; do
      # The lowest group not running: a stopped group's dirs are reused, its workers come back with their caches.
      while group_alive "$group"; do group=$((group + 1)); done
      n=$(( left < per_process ? left : per_process ))
      nohup "${CLI[@]}" workers --count "$n" --data "$DIR/workers/group-$group" --cluster "$CLUSTER" --staked "${extra[@]}" >>"$DIR/logs/workers-$group.log" 2>&1 &
      echo $! >"$DIR/pids/workers-$group.pid"
      echo "worker group $group: $n workers (pid $!, log $DIR/logs/workers-$group.log)"
      left=$((left - n))
      group=$((group + 1))
    done
    want=$((before + count))
    for _ in $(seq 1 300); do
      have=$(active_count)
      if [ "$have" -ge "$want" ]; then echo "$have nodes active"; exit 0; fi
      sleep 0.2
    done
    echo "only $(active_count) of $want nodes active after 60 s; see $DIR/logs/workers-*.log" >&2
    exit 5
    ;;
esac
