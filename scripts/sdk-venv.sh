#!/usr/bin/env bash
# Provisions what tests/sdk/local_mode_v2.py needs and prints the Python to run it with.
# Safe to re-run: does nothing when everything is in place.
#
#   - docker-compose (Debian package): SageMaker Python SDK v2's local mode runs
#     `docker compose` when that prints "v2", else the standalone `docker-compose`;
#   - a virtual environment OUTSIDE the clone,
#     ${XDG_CACHE_HOME:-$HOME/.cache}/sagemaker-tabular/sdk-venv (SDK_VENV overrides),
#     holding sagemaker[local]==2.257.7 (the `local` extra only bounds docker<8 and
#     PyYAML<7, which the core package already requires) and scipy (the SDK's sparse RecordIO
#     writer takes a scipy matrix), reused while it holds them.
#
# stdout: only the venv's python path. Progress and pip's output go to stderr.
# Works non-interactively (CI=true, no stdin). Needs python3 (3.9+) with the venv module; for
# Debian's /usr/bin/python3 that is the python3-venv package, installed here when missing.
set -euo pipefail

SDK_SPEC="sagemaker[local]==2.257.7"
SDK_VERSION="2.257.7"
EXTRAS="scipy"
venv="${SDK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sagemaker-tabular/sdk-venv}"
py="$venv/bin/python"
marker="$venv/.sdk-spec"   # written last: a venv without it is incomplete and is rebuilt

log() { echo "sdk-venv: $*" >&2; }

# --- Debian packages: docker-compose; python3-venv when python3 has no venv/ensurepip --------
need_apt=()
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1 \
   && [ "$(command -v python3)" = /usr/bin/python3 ]; then
  need_apt+=(python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} (Debian packages)"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq </dev/null >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" </dev/null >/dev/null
  command -v docker-compose >/dev/null 2>&1 || { log "docker-compose is still missing after apt-get install"; exit 1; }
fi

# --- the virtual environment ----------------------------------------------------------------
venv_ok() {
  [ -x "$py" ] && [ "$(cat "$marker" 2>/dev/null)" = "$SDK_SPEC $EXTRAS" ] &&
    [ "$("$py" -c 'import importlib.metadata as m; print(m.version("sagemaker"))' 2>/dev/null)" = "$SDK_VERSION" ]
}

mkdir -p "$(dirname "$venv")"
# One installer at a time (two CI steps, or a developer and CI, sharing the cache directory).
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 900 9 || { log "timed out waiting for $venv.lock"; exit 1; }
fi

if venv_ok; then
  log "reusing $venv ($SDK_SPEC)"
else
  command -v python3 >/dev/null 2>&1 || { log "python3 is required"; exit 1; }
  log "creating $venv with $SDK_SPEC (takes a minute or two)"
  start=$(date +%s)
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 || {
    log "python3 -m venv failed (on Debian: apt-get install python3-venv)"; exit 1; }
  # --no-cache-dir: the venv itself is what is kept, so pip's wheel cache would be a second copy.
  "$py" -m pip install --quiet --no-cache-dir --disable-pip-version-check --no-input \
    "$SDK_SPEC" $EXTRAS </dev/null >&2
  venv_ok_version=$("$py" -c 'import importlib.metadata as m; print(m.version("sagemaker"))')
  [ "$venv_ok_version" = "$SDK_VERSION" ] || { log "installed sagemaker $venv_ok_version, expected $SDK_VERSION"; exit 1; }
  printf '%s\n' "$SDK_SPEC $EXTRAS" >"$marker"
  log "ready in $(( $(date +%s) - start )) s: $("$py" --version 2>&1), $(du -sh "$venv" | cut -f1)"
fi

echo "$py"
