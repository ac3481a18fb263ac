#!/usr/bin/env bash
# Runs the benchmark programs in a release build, with DuckDB (from PyPI) as the reference
# engine. Figures are printed and appended to target/bench-*.txt.
#   scripts/bench.sh            # ingest + query (10 M events)
#   EVENTS=2000000 scripts/bench.sh query
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/modelshare-target}"
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet duckdb
fi
# The benchmark programs live in their own crate; the ingest benchmark starts the product binary.
cargo build --release -p modelshare -p modelshare-bench
bin="$CARGO_TARGET_DIR/release/modelshare-bench"
what="${1:-all}"
if [ "$what" = all ] || [ "$what" = ingest ]; then
  "$bin" ingest --events "${INGEST_EVENTS:-2000000}" --single-requests "${SINGLE_REQUESTS:-200000}"
fi
if [ "$what" = all ] || [ "$what" = query ]; then
  "$bin" query --events "${EVENTS:-10000000}" --python "$venv/bin/python"
fi
