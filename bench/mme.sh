#!/usr/bin/env bash
# Multi-model endpoint figures (bench/mme.py) for the 200 + 200-tree fire ensemble trained on
# 20,000 generated rows (as bench/docker.sh) and on the 251K mix (as bench/serve.sh): load time
# through POST /models, models held in a 1 GiB container, single-record latency with the
# container full next to the single-model endpoint, and a Python worker's cost (the anchors'
# Multi Model Server starts one per model).
#
#   bash bench/mme.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
shared=${SHARED_DIR:-$repo/../shared}
source bench/setup.sh
cargo build --release --locked --bins
image=$(bash docker/build-offline.sh sagemaker-tabular:bench)
bin=${CARGO_TARGET_DIR:-$repo/target}/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

train() { # train NAME DATA_FILE
  mkdir -p "$work/$1/input/data/train" "$work/$1/input/config"
  echo '{}' > "$work/$1/input/config/hyperparameters.json"
  ln -s "$2" "$work/$1/input/data/train/"
  SAGEMAKER_BASE_DIR="$work/$1" "$bin/train" > /dev/null 2>&1
  chmod -R a+rX "$work/$1"
}
"$bin/train" datagen fire --rows 20000 --out "$work/fire20k.json" 2>/dev/null
train small "$work/fire20k.json"
python3 "$shared/bench/gen_fire.py" 200000 "$work/mix.json" --demo 51000 --seed 7 >&2
train mix "$work/mix.json"
python3 bench/mme.py "$bin/serve" "$image" "$work/small/model" "20K-row ensemble"
python3 bench/mme.py "$bin/serve" "$image" "$work/mix/model" "251K-mix ensemble"
