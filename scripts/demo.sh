#!/usr/bin/env bash
# The main job on built-in sample data: generate data with the original generators, train the fire
# ensemble, the IOPS models, the generic tabular candidates (on datasets/ California housing, and
# on the raw housing.csv with its text column, asked for explanations) and a built-in XGBoost job
# into local /opt/ml trees, serve each, send sample requests.
#   bash scripts/demo.sh            (DEMO_DIR=... keeps the tree there; DEMO_PORT=... picks the port)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --release --locked --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
root=${DEMO_DIR:-$(mktemp -d)}
port=${DEMO_PORT:-8080}

# prepare ROOT HYPERPARAMETERS_JSON: an /opt/ml-like tree with a train channel and hyperparameters.
prepare() {
  mkdir -p "$1/input/data/train" "$1/input/config"
  echo "$2" > "$1/input/config/hyperparameters.json"
}
# train_in ROOT METRIC_REGEX: trains with SAGEMAKER_BASE_DIR=ROOT, shows the metric lines matched.
train_in() {
  SAGEMAKER_BASE_DIR="$1" "$bin/train" | grep -E "$2" || true
  test -f "$1/model/manifest.json" || { echo "training failed:"; cat "$1/output/failure"; exit 1; }
}

prepare "$root" '{"gb_num_round": "100", "rf_num_trees": "100"}'
echo "== generate: 20,000 rows of the original fire generator -> $root/input/data/train/fire.json"
"$bin/train" datagen fire --rows 20000 --seed 7 --out "$root/input/data/train/fire.json"
echo "== train (SAGEMAKER_BASE_DIR=$root)"
train_in "$root" '^metric: test:[a-z0-9]+='

# start_server ROOT: starts serve on ROOT's model, waits for /ping, then runs the requests below.
start_server() {
  SAGEMAKER_BASE_DIR="$1" SAGEMAKER_BIND_TO_PORT="$port" "$bin/serve" 2> "$1/serve.log" &
  server=$!
  trap 'kill -TERM $server 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    curl -sf "localhost:$port/ping" >/dev/null && break
    sleep 0.1
  done
  curl -sf "localhost:$port/ping" >/dev/null || { echo "serve did not become ready:"; cat "$1/serve.log"; exit 1; }
  echo "GET /ping -> 200"
}
stop_server() {
  kill -TERM $server
  wait $server
  trap - EXIT
}
ask() { # ask CONTENT_TYPE ACCEPT FILE
  curl -sf -H "Content-Type: $1" -H "Accept: $2" --data-binary @"sample-payloads/$3" "localhost:$port/invocations"
  echo
}

echo "== serve the fire ensemble on port $port"
start_server "$root"
echo "== POST /invocations: one reading as JSON (sample-payloads/fire-single.json)"
ask application/json application/json fire-single.json
echo "== POST /invocations: five readings as CSV, answer as CSV (label,probability,member probabilities)"
ask text/csv text/csv fire-batch.csv
echo "== the same, asking why (output=contributions: the 18 features' shares of the probability, then the bias)"
curl -sf -H 'Content-Type: text/csv' -H 'X-Amzn-SageMaker-Custom-Attributes: output=contributions,out_of_range' \
  --data-binary @sample-payloads/fire-single.csv "localhost:$port/invocations"
echo
stop_server

iops="$root/iops"
prepare "$iops" '{"model_kind": "iops"}'
echo "== generate: 10,000 insights of the original IOPS generator -> $iops/input/data/train/training-data.json"
"$bin/train" datagen iops --rows 10000 --seed 1 --out "$iops/input/data/train/training-data.json"
echo "== train the IOPS classifier and regressor (SAGEMAKER_BASE_DIR=$iops)"
train_in "$iops" '^metric: test:'
echo "== serve the IOPS models on port $port"
start_server "$iops"
echo "== POST /invocations: one raw insight as JSON (sample-payloads/iops-insight.json)"
ask application/json application/json iops-insight.json
echo "== POST /invocations: eight insights as JSON Lines, answer as CSV (class,level,4 probabilities,score)"
ask application/jsonlines text/csv iops-batch.jsonl
stop_server

tab="$root/tabular"
prepare "$tab" '{"model_kind": "tabular"}'
cp datasets/california_housing_targetfirst.csv.gz "$tab/input/data/train/"
echo "== train generic tabular candidates on California housing (target first, no header) and compare them on RMSE"
train_in "$tab" '^metric: validation:[a-z_]+:rmse='
python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); print("best by", c["criterion"]["metric"], "->", c["best_model"])' \
  "$tab/output/data/model_comparison.json"
echo "== serve the winner on port $port"
start_server "$tab"
echo "== POST /invocations: five block groups as CSV, one with a missing value (sample-payloads/housing-batch.csv)"
ask text/csv application/json housing-batch.csv
stop_server

raw="$root/raw-table"
prepare "$raw" '{"model_kind": "tabular", "label_column": "median_house_value"}'
cp datasets/housing.csv.gz "$raw/input/data/train/"
echo "== train on a raw table as it is: housing.csv with a header, empty fields and the text column ocean_proximity"
train_in "$raw" '^metric: validation:[a-z_]+:rmse='
python3 -c 'import json, sys; print("categories read:", json.load(open(sys.argv[1]))["categories"])' "$raw/model/manifest.json"
echo "== serve it on port $port"
start_server "$raw"
echo "== POST /invocations: rows as the file has them, the last with a category and an income training never saw,"
echo "   asking for explanations and out-of-range flags (output=contributions,out_of_range)"
curl -sf -H 'Content-Type: text/csv' -H 'X-Amzn-SageMaker-Custom-Attributes: output=contributions,out_of_range' \
  --data-binary @sample-payloads/raw-housing-batch.csv "localhost:$port/invocations"
echo
stop_server

xgb="$root/builtin-xgboost"
prepare "$xgb" '{"model_kind": "xgboost", "num_round": "50", "max_depth": "5", "eta": "0.2", "objective": "reg:squarederror", "eval_metric": "rmse,mae"}'
cp datasets/california_housing_targetfirst.csv.gz "$xgb/input/data/train/"
echo "== train with SageMaker's built-in XGBoost hyperparameters (model_kind=xgboost): its round lines, xgboost-model"
train_in "$xgb" '^\[49\]'
ls "$xgb/model"
echo "== serve it on port $port"
start_server "$xgb"
echo "== POST /invocations: five block groups as CSV, answered as the built-in does (CSV)"
ask text/csv text/csv housing-batch.csv
stop_server

mme="$root/multi-model"
mkdir -p "$mme/models"
for kind in fire iops tabular; do
  case $kind in fire) src="$root/model" ;; iops) src="$iops/model" ;; tabular) src="$tab/model" ;; esac
  mkdir -p "$mme/models/$kind" && cp -R "$src" "$mme/models/$kind/model"
done
echo "== serve as a multi-model endpoint (SAGEMAKER_MULTI_MODEL=true): no model until POST /models"
SAGEMAKER_MULTI_MODEL=true SAGEMAKER_BASE_DIR="$mme" SAGEMAKER_BIND_TO_PORT="$port" "$bin/serve" 2> "$mme/serve.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "localhost:$port/ping" >/dev/null && break; sleep 0.1; done
for kind in fire iops tabular; do
  echo "POST /models $kind -> $(curl -s -d "{\"model_name\": \"$kind\", \"url\": \"$mme/models/$kind/model\"}" "localhost:$port/models")"
done
echo "GET /models -> $(curl -s "localhost:$port/models")"
echo "== POST /models/<name>/invoke for each, answer as CSV"
for pair in fire:fire-single.csv iops:iops-single.csv tabular:housing-single.csv; do
  printf '%s: ' "${pair%%:*}"
  curl -sf -H 'Content-Type: text/csv' -H 'Accept: text/csv' --data-binary @"sample-payloads/${pair#*:}" \
    "localhost:$port/models/${pair%%:*}/invoke"
done
echo "DELETE /models/fire -> $(curl -s -X DELETE "localhost:$port/models/fire")"
stop_server

echo "== done: models and outputs in $root (fire), $iops (IOPS), $tab (tabular), $raw (raw table), $xgb (built-in XGBoost), $mme (multi-model)"
