#!/usr/bin/env bash
# Proves the OTLP and LiteLLM ingest paths with the real OpenTelemetry SDK and the real litellm
# package: starts `modelshare serve` on a fresh lake with an ingest key and an admin key, runs
# scripts/otel_check.py against it, and fails on any mismatch. The venv is cached under the
# cargo target dir; the first run pip-installs (~1-2 min), later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/modelshare-target}"
VENV="$TARGET/otel-venv"
BIN="${MODELSHARE_BIN:-$TARGET/debug/modelshare}"
[ -x "$BIN" ] || cargo build --quiet
if ! "$VENV/bin/python" -c "import opentelemetry.exporter.otlp.proto.http" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
  # litellm is optional: the check skips it (and says so) when it does not install.
  "$VENV/bin/pip" install --quiet litellm || echo "litellm did not install; its check is skipped"
fi
LAKE="$(mktemp -d)"
LOG="$LAKE.log"
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$LAKE" "$LOG"; }
trap cleanup EXIT
INGEST_KEY="$("$BIN" keys --data-dir "$LAKE" create --app otel-app 2>/dev/null)"
ADMIN_KEY="$("$BIN" keys --data-dir "$LAKE" create --app ops --admin 2>/dev/null)"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$LAKE" >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q "listening on" "$LOG" && break; sleep 0.1; done
URL="$(grep -o 'http://[0-9.:]*' "$LOG" | head -1)"
[ -n "$URL" ] || { cat "$LOG"; exit 1; }
# No network: litellm must use its bundled model cost map.
export LITELLM_LOCAL_MODEL_COST_MAP=True
"$VENV/bin/python" scripts/otel_check.py "$URL" "$INGEST_KEY" "$ADMIN_KEY"
