#!/usr/bin/env bash
# Cross-checks weekly snapshots with tools from outside the project: generates a small lake,
# serves it twice (the default privacy threshold, and --min-apps 1 on a copy so every cell counts),
# downloads each server's snapshot of the last closed week through the API, opens it with pyarrow
# and DuckDB (installed from PyPI into a venv under the target dir), and checks its figures
# against /v1/leaderboard. Exits non-zero on any mismatch.
#   scripts/check-snapshot.sh                 # 200,000 events, 14 days
#   EVENTS=1000000 scripts/check-snapshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/modelshare-target}"
venv="$CARGO_TARGET_DIR/snapshot-check-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pyarrow, duckdb' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet pyarrow duckdb
fi
"$venv/bin/python" -c 'import pyarrow, duckdb; print(f"pyarrow {pyarrow.__version__}, duckdb {duckdb.__version__}")'
bin="${MODELSHARE_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --quiet
  bin="$CARGO_TARGET_DIR/debug/modelshare"
fi
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" generate --data-dir "$work/lake" --events "${EVENTS:-200000}" --apps "${APPS:-400}" \
  --days 14 --seed 7 >/dev/null
cp -r "$work/lake" "$work/lake1"

start() { # lake, min-apps, port file
  MODELSHARE_LOG=warn "$bin" serve --data-dir "$1" --listen 127.0.0.1:0 --min-apps "$2" \
    --snapshot-interval-secs 1 >"$3" &
  pids+=($!)
}
start "$work/lake" 5 "$work/a.out"
start "$work/lake1" 1 "$work/b.out"
url_of() {
  for _ in $(seq 100); do
    if grep -q 'listening on' "$1" 2>/dev/null; then
      grep -o 'http://[0-9.:]*' "$1"; return
    fi
    sleep 0.1
  done
  echo "server did not start" >&2; exit 1
}
A="$(url_of "$work/a.out")"
B="$(url_of "$work/b.out")"

"$venv/bin/python" - "$A" "$B" "$work" <<'PY'
import hashlib, json, sys, time, urllib.request
import duckdb, pyarrow.parquet as pq

a_url, b_url, work = sys.argv[1:4]

def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()

def listing(base):
    return json.loads(get(base + "/v1/snapshots")[2])["snapshots"]

def wait_for_weeks(base, n=2):
    for _ in range(300):
        snaps = listing(base)
        if len({s["week"] for s in snaps}) >= n:
            return snaps
        time.sleep(0.2)
    sys.exit(f"{base}: fewer than {n} weeks of snapshots after 60 s: {listing(base)}")

failures = []
def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)

def download(base, snaps):
    s = max(snaps, key=lambda s: (s["week"], s["revision"]))
    status, headers, body = get(base + s["url"])
    path = f"{work}/{s['name']}.{base.rsplit(':', 1)[1]}.parquet"
    open(path, "wb").write(body)
    check(status == 200 and len(body) == s["bytes"], f"{s['name']}: 200, {s['bytes']} bytes")
    check(hashlib.sha256(body).hexdigest() == s["sha256"], f"{s['name']}: sha256 matches the listing")
    check(headers.get("etag") == f"\"{s['sha256']}\"", f"{s['name']}: ETag is the sha256")
    st, h, part = get(base + s["url"], {"Range": "bytes=-8"})
    check(st == 206 and part == body[-8:], f"{s['name']}: Range bytes=-8 gives the last 8 bytes")
    return s, path

a_snaps = wait_for_weeks(a_url)
b_snaps = wait_for_weeks(b_url)
a, a_path = download(a_url, a_snaps)
b, b_path = download(b_url, b_snaps)

# pyarrow: schema, metadata, rows.
f = pq.ParquetFile(a_path)
kv = {k.decode(): v.decode() for k, v in f.metadata.metadata.items() if k.startswith(b"modelshare.")}
table = pq.read_table(a_path)
print(f"pyarrow: {a['name']}: {table.num_rows} rows, columns {table.column_names}")
print(f"pyarrow: metadata {json.dumps(kv, sort_keys=True)}")
check(kv["modelshare.snapshot.week"] == a["week"], "metadata week")
check(int(kv["modelshare.snapshot.rows"]) == table.num_rows == a["rows"], "metadata rows = file rows = listing rows")
check(kv["modelshare.snapshot.content_sha256"] == a["content_sha256"], "metadata content hash = listing")
check(kv["modelshare.snapshot.min_apps"] == "5", "min_apps 5 recorded")
check(str(table.schema.field("cost_usd").type) == "decimal128(18, 6)", "cost_usd is decimal(18,6)")
week_start = kv["modelshare.snapshot.week_start"]

# DuckDB on the same file.
con = duckdb.connect()
q = lambda sql, p: con.execute(sql.replace("$T", f"read_parquet('{p}')")).fetchall()
tokens, requests, spend = q("SELECT sum(input_tokens + output_tokens), sum(requests), sum(cost_usd) FROM $T", a_path)[0]
print(f"duckdb: {a['name']}: tokens {tokens}, requests {requests}, spend {spend}")
lb = json.loads(get(f"{a_url}/v1/leaderboard?period=week&date={week_start}&limit=1000")[2])
t = lb["totals"]
check(tokens == t["tokens"], f"week tokens {tokens} = leaderboard totals {t['tokens']}")
check(requests == t["requests"], f"week requests {requests} = leaderboard totals {t['requests']}")
check(abs(float(spend) - t["cost_usd"]) < 1e-6, f"week spend {spend} = leaderboard totals {t['cost_usd']}")
small = q("SELECT count(*) FROM $T WHERE requests > 0 AND apps < 5", a_path)[0][0]
check(small == 0, "every row with ok requests has >= 5 apps (it is a sum of cells of >= 5)")
other = q("SELECT count(*) FROM $T WHERE model = 'other'", a_path)[0][0]
check(other == 0, "no folded `other` rows")

# Per model: the public snapshot and the leaderboard are sums over the same publishable cells, so
# they agree exactly; the snapshot of the same lake with --min-apps 1 (every cell) is never below.
public = dict(q("SELECT model, sum(input_tokens + output_tokens) FROM $T GROUP BY model", a_path))
everything = dict(q("SELECT model, sum(input_tokens + output_tokens) FROM $T GROUP BY model", b_path))
models = [m for m in lb["models"] if m["rank"] is not None]
exact = sum(1 for m in models if public.get(m["model"]) == m["tokens"])
check(exact == len(models) == len(public), f"per-model tokens: {exact}/{len(models)} leaderboard models equal the public snapshot ({len(public)} models)")
under = [m["model"] for m in models if everything.get(m["model"], 0) < m["tokens"]]
check(not under, "no model has fewer tokens in the --min-apps 1 snapshot than in the leaderboard")
withheld = sum(everything.values()) - sum(public.values())
print(f"duckdb: {withheld} tokens of the week are in cells of fewer than 5 apps (published nowhere)")
top = models[0]
print(f"top model {top['model']}: leaderboard {top['tokens']} tokens, public snapshot {public.get(top['model'])}, every cell {everything.get(top['model'])}")
p50, p95 = q("SELECT min(latency_p50_ms), max(latency_p95_ms) FROM $T WHERE latency_p50_ms > latency_p95_ms", a_path)[0]
check(p50 is None, "p50 <= p95 in every row")

if failures:
    sys.exit(f"{len(failures)} checks failed")
print("all snapshot checks passed")
PY
