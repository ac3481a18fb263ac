#!/usr/bin/env bash
# Fuzzes the running HTTP API from its own OpenAPI document with schemathesis (PyPI): starts
# `modelshare serve` on a lake holding a few events, with an admin key (so /v1/sql and the ingest
# endpoints are exercised past auth) and rate limiting off, then runs every operation with
# generated valid and invalid inputs. Fails when any response is a 5xx.
#   scripts/fuzz-api.sh [MAX_EXAMPLES_PER_OPERATION]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/modelshare-target}"
VENV="$TARGET/otel-venv"
BIN="${MODELSHARE_BIN:-$TARGET/debug/modelshare}"
N="${1:-100}"
[ -x "$BIN" ] || cargo build --quiet
if ! [ -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet schemathesis
fi
LAKE="$(mktemp -d)"
LOG="$LAKE.log"
REPORT="$TARGET/fuzz-api"
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$LAKE" "$LOG"; }
trap cleanup EXIT
ADMIN_KEY="$("$BIN" keys --data-dir "$LAKE" create --app fuzz --admin 2>/dev/null)"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$LAKE" --rate-limit-rps 0 --min-apps 1 >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q "listening on" "$LOG" && break; sleep 0.1; done
URL="$(grep -o 'http://[0-9.:]*' "$LOG" | head -1)"
[ -n "$URL" ] || { cat "$LOG"; exit 1; }
for i in 1 2 3; do
  printf '{"event_id":"seed-%s","ts":"2026-11-20T10:00:00Z","app_id":"fuzz","task":"programming","model":"openai/gpt-4o","provider":"openai","input_tokens":%s,"output_tokens":5,"status":"ok"}\n' "$i" "$((i * 100))"
done | curl -sf "$URL/v1/events" -H "authorization: Bearer $ADMIN_KEY" \
  -H 'content-type: application/x-ndjson' --data-binary @- >/dev/null
mkdir -p "$REPORT"
set +e
"$VENV/bin/schemathesis" run "$URL/v1/openapi.json" \
  --checks not_a_server_error --phases examples,fuzzing \
  --header "Authorization: Bearer $ADMIN_KEY" \
  --max-examples "$N" --seed 7 --workers 2 \
  --report junit --report-junit-path "$REPORT/junit.xml" \
  --suppress-health-check all \
  --no-color 2>&1 | tee "$REPORT/output.txt" | tail -40
rc=${PIPESTATUS[0]}
set -e
echo "schemathesis exit code: $rc (report: $REPORT/output.txt)"
# The coverage phase is left out: under CPython 3.11.7 it trips a hypothesis AST error (a tool bug,
# not a server answer) on /v1/leaderboard.
if ! kill -0 "$PID" 2>/dev/null; then echo "the server died during the run"; cat "$LOG"; exit 1; fi
exit "$rc"
