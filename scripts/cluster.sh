#!/usr/bin/env bash
# Run a local authority cluster in the background, with logs and pids in a run dir.
#
#   scripts/cluster.sh up [--replicas 3|5]   init (if needed) and start every replica, wait for a leader
#   scripts/cluster.sh down                  stop the workers (they leave), then SIGTERM every replica
#                                            (a leader hands over first), then wait
#   scripts/cluster.sh status                the status table
#   scripts/cluster.sh kill-leader           SIGKILL the current leader (and say which)
#   scripts/cluster.sh start ID | kill ID    one replica
#   scripts/cluster.sh snapshot ID           snapshot and compact that replica's log now (SIGUSR2)
#
# The run dir is $NODELEDGER_RUN_DIR, default .run/cluster in the repo. Logs: $DIR/logs/replica-N.log
# (pino JSON, one event per line). Exit codes follow the CLI's (0 ok, 5 unavailable, ...).
set -euo pipefail
source "$(dirname "$0")/run-env.sh"

replica_ids() { "$NODE" -e 'for (const r of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).replicas) console.log(r.id)' "$CLUSTER"; }
pid_of() { local f="$DIR/pids/replica-$1.pid"; [ -f "$f" ] && cat "$f" || true; }
alive() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

data_dir_of() { "$NODE" -e 'const path = require("path"); const f = process.argv[1]; const r = JSON.parse(require("fs").readFileSync(f, "utf8")).replicas.find((r) => r.id === Number(process.argv[2])); console.log(r ? path.resolve(path.dirname(f), r.dataDir) : "")' "$CLUSTER" "$1"; }

start_one() {
  local id=$1
  if alive "$id"; then echo "replica $id already running (pid $(pid_of "$id"))"; return; fi
  mkdir -p "$DIR/logs" "$DIR/pids"
  # A founder whose data dir was never created takes part in creating the cluster; any other start
  # joins what exists. (A founder that ran and lost its dir is refused either way: its peers know.)
  local state=existing
  [ -d "$(data_dir_of "$id")" ] || state=new
  nohup "${CLI[@]}" authority --cluster "$CLUSTER" --id "$id" --initial-cluster-state "$state" >>"$DIR/logs/replica-$id.log" 2>&1 &
  echo $! >"$DIR/pids/replica-$id.pid"
  echo "replica $id started (pid $!, log $DIR/logs/replica-$id.log)"
}

wait_for_leader() {
  for _ in $(seq 1 100); do
    if "${CLI[@]}" status --cluster "$CLUSTER" --json --timeout-ms 500 2>/dev/null | grep -q '"role":"leader"'; then
      "${CLI[@]}" status --cluster "$CLUSTER"
      return 0
    fi
    sleep 0.2
  done
  echo "no leader after 20 s; see $DIR/logs" >&2
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

command=${1:-}
shift || true
case "$command" in
  up)
    replicas=3
    while [ $# -gt 0 ]; do
      case "$1" in
        --replicas) replicas=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
      esac
    done
    [ -f "$CLUSTER" ] || "${CLI[@]}" cluster init --replicas "$replicas" --dir "$DIR"
    for id in $(replica_ids); do start_one "$id"; done
    wait_for_leader
    ;;
  down)
    [ -d "$DIR/pids" ] || { echo "nothing running in $DIR"; exit 0; }
    # Workers first, while a leader is there to acknowledge their leave.
    if compgen -G "$DIR/pids/workers-*.pid" >/dev/null; then bash "$ROOT/scripts/workers.sh" down; fi
    for id in $(replica_ids); do alive "$id" && kill -TERM "$(pid_of "$id")" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
      running=0
      for id in $(replica_ids); do alive "$id" && running=1; done
      [ $running -eq 0 ] && break
      sleep 0.1
    done
    for id in $(replica_ids); do alive "$id" && { echo "replica $id ignored SIGTERM; killing"; kill -9 "$(pid_of "$id")"; }; rm -f "$DIR/pids/replica-$id.pid"; done
    echo "cluster stopped"
    ;;
  status)
    "${CLI[@]}" status --cluster "$CLUSTER" "$@"
    ;;
  kill-leader)
    id=$(leader_id) || { echo "no leader to kill" >&2; exit 5; }
    pid=$(pid_of "$id")
    [ -n "$pid" ] || { echo "leader $id was not started by this script (no pid file)" >&2; exit 5; }
    kill -9 "$pid"
    echo "killed leader: replica $id (pid $pid)"
    ;;
  start) start_one "${1:?replica id}" ;;
  snapshot) kill -USR2 "$(pid_of "${1:?replica id}")" && echo "replica $1 asked to snapshot (see its log)" ;;
  kill) kill -9 "$(pid_of "${1:?replica id}")" && echo "killed replica $1" ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
