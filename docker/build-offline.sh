#!/usr/bin/env bash
# Builds the runtime image without a registry: release binaries built on this host, the same file
# tree docker/Dockerfile collects (docker/collect-rootfs.sh), and docker/Dockerfile's runtime
# stage copied verbatim, so the two images cannot drift. Prints the image tag.
#
# usage: bash docker/build-offline.sh [TAG]      (default sagemaker-tabular:local)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tag=${1:-sagemaker-tabular:local}
source scripts/env.sh
cargo build --release --locked --bins >&2
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
bash docker/collect-rootfs.sh "$bin" "$XGBOOST_LIB_DIR" "$ctx/rootfs"
{
  echo "FROM scratch AS rootfs"
  echo "COPY rootfs/ /rootfs/"
  sed -n '/^# ---- runtime stage/,$p' docker/Dockerfile
} > "$ctx/Dockerfile"
grep -q '^FROM scratch AS runtime' "$ctx/Dockerfile" || { echo "runtime stage not found in docker/Dockerfile" >&2; exit 1; }
docker build -q -t "$tag" "$ctx" >&2
echo "$tag"
