#!/usr/bin/env bash
# One-time machine set-up for building and testing; safe to re-run (does nothing when done).
# Installs libclang (bindgen, for the XGBoost bindings) and the XGBoost shared library.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
need_apt=()
dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust 1.95) is required" >&2; exit 1; }
command -v python3 >/dev/null || { echo "setup: python3 with pip is required (to fetch the XGBoost wheel)" >&2; exit 1; }
bash "$here/xgboost-lib.sh" >/dev/null
