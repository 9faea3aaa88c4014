#!/usr/bin/env bash
# Collects the runtime image's whole file tree: the stripped `train` and `serve`, the XGBoost
# library and its libgomp, every shared library they load (at the paths the build machine's
# loader found them), a passwd entry for the non-root user, and a world-writable /tmp.
# Used by docker/Dockerfile's build stage and by docker/build-offline.sh, so both images hold
# the same files.
#
# usage: collect-rootfs.sh BIN_DIR XGBOOST_LIB_DIR OUT_DIR
set -euo pipefail
bin=$1 xgb=$2 out=$3
rm -rf "$out"
mkdir -p "$out/usr/local/bin" "$out/usr/local/lib" "$out/etc" "$out/tmp"
for b in train serve; do
  strip --strip-unneeded -o "$out/usr/local/bin/$b" "$bin/$b"
done
cp "$xgb/libxgboost.so" "$out/usr/local/lib/"
cp "$xgb"/../../xgboost_cpu.libs/libgomp-*.so* "$out/usr/local/lib/"
for f in "$out"/usr/local/bin/* "$out"/usr/local/lib/*; do
  LD_LIBRARY_PATH="$out/usr/local/lib" ldd "$f"
done | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u |
  while read -r lib; do
    case $lib in "$out"/*) continue ;; esac
    mkdir -p "$out$(dirname "$lib")"
    cp -L "$lib" "$out$lib"
  done
printf 'root:x:0:0:root:/root:/sbin/nologin\nsagemaker:x:10001:10001:sagemaker:/tmp:/sbin/nologin\n' > "$out/etc/passwd"
printf 'root:x:0:\nsagemaker:x:10001:\n' > "$out/etc/group"
chmod 1777 "$out/tmp"
