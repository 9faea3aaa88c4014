#!/usr/bin/env bash
# The main job on built-in sample data: generate fire data with the original generator, train the
# ensemble into a local /opt/ml tree, start `serve` on it, send sample requests, stop the server.
#   bash scripts/demo.sh            (DEMO_DIR=... keeps the tree there; DEMO_PORT=... picks the port)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --release --locked --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
root=${DEMO_DIR:-$(mktemp -d)}
port=${DEMO_PORT:-8080}
mkdir -p "$root/input/data/train" "$root/input/config"
echo '{"gb_num_round": "100", "rf_num_trees": "100"}' > "$root/input/config/hyperparameters.json"

echo "== generate: 20,000 rows of the original fire generator -> $root/input/data/train/fire.json"
"$bin/train" datagen fire --rows 20000 --seed 7 --out "$root/input/data/train/fire.json"

echo "== train (SAGEMAKER_BASE_DIR=$root)"
SAGEMAKER_BASE_DIR="$root" "$bin/train" | grep -E '^metric: test:[a-z0-9]+=' || true
test -f "$root/model/manifest.json" || { echo "training failed:"; cat "$root/output/failure"; exit 1; }

echo "== serve on port $port"
SAGEMAKER_BASE_DIR="$root" SAGEMAKER_BIND_TO_PORT="$port" "$bin/serve" 2> "$root/serve.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "localhost:$port/ping" >/dev/null && break
  sleep 0.1
done
curl -sf "localhost:$port/ping" >/dev/null || { echo "serve did not become ready:"; cat "$root/serve.log"; exit 1; }
echo "GET /ping -> 200"

echo "== POST /invocations: one reading as JSON (sample-payloads/fire-single.json)"
curl -sf -H 'Content-Type: application/json' --data-binary @sample-payloads/fire-single.json "localhost:$port/invocations"
echo
echo "== POST /invocations: five readings as CSV, answer as CSV (label,probability,member probabilities)"
curl -sf -H 'Content-Type: text/csv' -H 'Accept: text/csv' --data-binary @sample-payloads/fire-batch.csv "localhost:$port/invocations"

kill -TERM $server
wait $server
trap - EXIT
echo "== done: model and outputs in $root"
