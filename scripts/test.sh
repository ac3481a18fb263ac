#!/usr/bin/env bash
# The test command (README quick start; `.ci/run` calls exactly this). On a fresh machine it
# first installs what the suite needs beyond a Rust toolchain: cargo-nextest, Debian's chromium
# and chromedriver (browser test) and fiu-utils (fault-injection matrix). Extra arguments go to
# nextest, e.g. `scripts/test.sh --test faults`.
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
exec cargo nextest run --workspace --locked --no-fail-fast "$@"
