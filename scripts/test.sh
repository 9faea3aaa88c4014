#!/usr/bin/env bash
# All tests: lints (rustfmt, clippy, rustdoc), unit tests of every crate, the end-to-end tests
# (real binaries, real XGBoost), and the image tests on the real Docker engine (the image is built
# offline from this host's binaries by
# docker/build-offline.sh), including the real SageMaker Python SDK in local mode
# (scripts/sdk-venv.sh). Without Docker the image tests are skipped, except under CI=true, where
# a missing Docker engine fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --workspace --bins --locked
# Lints: formatting, clippy and rustdoc warnings fail the run (the toolchain is pinned, so a new
# compiler's lints cannot break CI unannounced).
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
# Python XGBoost 1.7.6 writes the older built-in algorithm's artifacts for tests/xgboost_e2e.rs.
XGBOOST1_PYTHON=$(bash scripts/xgboost1-venv.sh)
export XGBOOST1_PYTHON
if docker info >/dev/null 2>&1; then
  TEST_IMAGE=$(bash docker/build-offline.sh sagemaker-tabular:test)
  # The real SageMaker Python SDK (v2, local mode) in a virtual environment outside the clone.
  SDK_PYTHON=$(bash scripts/sdk-venv.sh)
  export TEST_IMAGE SDK_PYTHON
elif [ "${CI:-}" = "true" ]; then
  echo "test.sh: CI=true but no usable Docker engine (docker info failed): the image tests must run" >&2
  exit 1
else
  echo "test.sh: no usable Docker engine: the image tests will be skipped" >&2
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (cargo prints one summary per binary).
awk '/^test result:/ {p += $4; f += $6} END {printf "tests: %d passed, %d failed\n", p, f}' "$log"
exit "$status"
