#!/usr/bin/env bash
# Provides the XGBoost shared library the `xgb` crate links against, and prints its directory.
#
# Source: the PyPI wheel xgboost-cpu==3.2.0 (CPU-only libxgboost.so + the libgomp it was built with),
# unpacked once into a cache outside the clone ($XGB_CACHE, default ~/.cache/sagemaker-tabular) and
# reused by every later build. The wheel's layout is kept as it is, so the library's own RPATH
# ($ORIGIN/../../xgboost_cpu.libs) finds its libgomp without LD_LIBRARY_PATH.
#
# usage: XGBOOST_LIB_DIR=$(bash scripts/xgboost-lib.sh)
set -euo pipefail
version=3.2.0
cache=${XGB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sagemaker-tabular}
root="$cache/xgboost-cpu-$version"
lib="$root/xgboost/lib"
if [ ! -f "$lib/libxgboost.so" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version 3.11 -d "$tmp" "xgboost-cpu==$version" >&2
  mkdir -p "$root.part"
  python3 -m zipfile -e "$tmp"/xgboost_cpu-"$version"-*.whl "$root.part" >&2
  rm -rf "$root" && mv "$root.part" "$root"
fi
echo "$lib"
