#!/usr/bin/env bash
# The test command (README quick start; `.ci/run` calls exactly this). On a fresh machine it
# first installs what the suite needs beyond a Rust toolchain: cargo-nextest, Debian's chromium
# and chromedriver (browser test), fiu-utils (fault-injection matrix) and moto from PyPI (an S3
# API server for the bucket tests). Then the whole suite, and the cluster tests in a build with
# the `ballista` feature. Extra arguments go to nextest instead (one run, the default build),
# e.g. `scripts/test.sh --test faults`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v fiu-run >/dev/null || missing+=(fiu-utils)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from Debian" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
# An S3 API server for the tests of lakes in a bucket (tests/s3.rs): moto, in a venv cached
# under the cargo target dir (the first run pip-installs it, ~1 min).
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/modelshare-target}"
S3_VENV="$TARGET/s3-venv"
if [ ! -x "$S3_VENV/bin/moto_server" ]; then
  echo "installing moto (an S3 API server for the bucket tests) from PyPI" >&2
  python3 -m venv "$S3_VENV"
  "$S3_VENV/bin/pip" install --quiet 'moto[server]>=5,<6'
fi
export MODELSHARE_MOTO_SERVER="$S3_VENV/bin/moto_server"
if (($#)); then
  exec cargo nextest run --workspace --locked --no-fail-fast "$@"
fi
cargo nextest run --workspace --locked --no-fail-fast
# Queries on a Ballista cluster (feature `ballista`: the Ballista crates over the same DataFusion
# build, see crates/workspace-hack): a scheduler and executors as processes over a bucket.
cargo nextest run --locked --no-fail-fast --features modelshare/ballista \
  -p modelshare -p modelshare-query --test ballista --lib
