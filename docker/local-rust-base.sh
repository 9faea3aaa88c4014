#!/usr/bin/env bash
# Makes a local stand-in for `rust:1.95-bookworm` on a machine without a registry, so that
# `docker build -f docker/Dockerfile .` (the users' path) can be checked here too: a Debian
# bookworm tree from debootstrap (build-essential, curl, git, ca-certificates) with this host's
# Rust 1.95 toolchain copied into /usr/local/rust and this host's CA bundle (for networks that
# intercept TLS), imported with `docker import`. Package registries must be reachable.
#
#   bash docker/local-rust-base.sh && docker build -f docker/Dockerfile -t sagemaker-tabular .
set -euo pipefail
toolchain=$(rustc +1.95.0 --print sysroot 2>/dev/null || rustc --print sysroot)
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=build-essential,ca-certificates,curl,git,pkg-config \
  bookworm "$root" http://deb.debian.org/debian >&2
mkdir -p "$root/usr/local/rust"
cp -a "$toolchain"/bin "$toolchain"/lib "$toolchain"/libexec "$root/usr/local/rust/"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV CARGO_HOME=/usr/local/cargo' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  - rust:1.95-bookworm
