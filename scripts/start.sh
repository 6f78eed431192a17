#!/usr/bin/env bash
# `pnpm start`: the main job. Starts a local 3-replica authority cluster in the background (keys,
# cluster file, logs and pids in .run/cluster), writes one record through the leader, reads it back
# from the registry and shows the cluster. Worker nodes join with issue 5.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${NODELEDGER_RUN_DIR:-$ROOT/.run/cluster}
CLI=("$ROOT/node_modules/.bin/node" "$ROOT/packages/cli/src/main.ts")

echo "nodeledger: starting a 3-replica authority cluster (run dir $DIR)"
bash "$ROOT/scripts/cluster.sh" up --replicas 3
operator=$("$ROOT/node_modules/.bin/node" -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).operators[0].peerId)' "$DIR/cluster.json")
echo
echo "writing the operator's own record through the leader:"
"${CLI[@]}" put "$operator" version=0.1.0 isStaked=true --cluster "$DIR/cluster.json"
"${CLI[@]}" ls --cluster "$DIR/cluster.json"
cat <<TEXT

The cluster keeps running in the background. Try:
  bash scripts/cluster.sh status          # the table again
  bash scripts/cluster.sh kill-leader     # SIGKILL the leader; another takes over in well under a second
  bash scripts/cluster.sh start ID        # bring a killed replica back; it catches up
  pnpm nodeledger get PEER_ID --cluster $DIR/cluster.json
  bash scripts/cluster.sh down            # stop everything (a leader hands over first)
Logs (pino JSON, one event per line): $DIR/logs/
TEXT
