#!/usr/bin/env bash
# The image's figures: size, and container start to the first 200 on /ping with the 200+200-tree
# fire ensemble (trained here on 20,000 generated rows), next to the same binary started directly
# on the host (bench/cold_start.py) in the same run.
#
#   bash bench/docker.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
bash scripts/setup.sh
image=$(bash docker/build-offline.sh sagemaker-tabular:bench)
bin=${CARGO_TARGET_DIR:-$repo/target}/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/input/data/train" "$work/input/config"
echo '{}' > "$work/input/config/hyperparameters.json"
"$bin/train" datagen fire --rows 20000 --out "$work/input/data/train/fire.json" 2>/dev/null
SAGEMAKER_BASE_DIR="$work" "$bin/train" > /dev/null 2>&1
chmod -R a+rX "$work"
size=$(docker image inspect -f '{{.Size}}' "$image")
awk -v s="$size" 'BEGIN {printf "image size: %.1f MB (goal: <= 60 MB)\n", s / 1e6}'
python3 bench/cold_start.py --docker "$image" "$work/model" 18130 5
python3 bench/cold_start.py "$bin/serve" "$work" 18131
