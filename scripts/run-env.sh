# Sourced by cluster.sh and workers.sh: where things are, and the real Node 24 binary.
# Sets ROOT, DIR (the run dir: $NODELEDGER_RUN_DIR, default .run/cluster), NODE, CLI and CLUSTER.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${NODELEDGER_RUN_DIR:-$ROOT/.run/cluster}
WRAPPER="$ROOT/node_modules/.bin/node"
[ -x "$WRAPPER" ] || { echo "Node 24 is not provisioned yet: run 'npx --yes pnpm@10.34.8 install' first" >&2; exit 2; }
# node_modules/.bin/node is a shell wrapper that does not exec: a signal sent to its pid would reach
# the shell, not the process it runs. Run the real binary so pid files name the processes themselves.
NODE=$("$WRAPPER" -e 'process.stdout.write(process.execPath)')
CLI=("$NODE" "$ROOT/packages/cli/bin/nodeledger.mjs")
CLUSTER="$DIR/cluster.json"
