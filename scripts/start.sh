#!/usr/bin/env bash
# `pnpm start`: the main job. Starts a local 3-replica authority cluster in the background (keys,
# cluster file, logs and pids in .run/cluster), then a few worker nodes, and shows them all in
# `nodeledger status`. NODELEDGER_WORKERS sets how many workers (default 5).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${NODELEDGER_RUN_DIR:-$ROOT/.run/cluster}
CLI=("$ROOT/node_modules/.bin/node" "$ROOT/packages/cli/bin/nodeledger.mjs")

echo "nodeledger: starting a 3-replica authority cluster (run dir $DIR)"
# Each replica's HTTP listener (metrics, health, the live cluster page) on its own address at 7101.
bash "$ROOT/scripts/cluster.sh" up --replicas 3 --http-port 7101
operator=$("$ROOT/node_modules/.bin/node" -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).operators[0].peerId)' "$DIR/cluster.json")
echo
echo "writing the operator's own record through the leader:"
"${CLI[@]}" put "$operator" version=0.1.0 isStaked=true --cluster "$DIR/cluster.json"
echo
echo "starting ${NODELEDGER_WORKERS:-5} worker nodes (they join, heartbeat and gossip):"
bash "$ROOT/scripts/workers.sh" "${NODELEDGER_WORKERS:-5}" --capabilities web,twitter
echo
"${CLI[@]}" status --cluster "$DIR/cluster.json"
cat <<TEXT

The cluster and the workers keep running in the background. Try:
  open http://127.0.0.11:7101/            # the live cluster page (any replica's; or: pnpm nodeledger ui --open)
  bash scripts/cluster.sh status          # replicas and nodes again
  bash scripts/cluster.sh kill-leader     # SIGKILL the leader; another takes over in well under a second,
                                          # the workers follow it and stay active (the page shows it; watch
                                          # it on a follower's address, .12 or .13, or through nodeledger ui)
  bash scripts/cluster.sh start ID        # bring a killed replica back; it catches up
  bash scripts/workers.sh 20              # more workers (bash scripts/workers.sh down: they leave)
  pnpm nodeledger get PEER_ID --cluster $DIR/cluster.json
  bash scripts/cluster.sh down            # stop everything (workers leave, then a leader hands over)
Logs (pino JSON, one event per line): $DIR/logs/
TEXT
