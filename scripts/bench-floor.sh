#!/usr/bin/env bash
# The floor under every records read: the throughput of the cheapest
# authenticated, audited request (GET /v1/auth/token/lookup-self: mTLS,
# HTTP/1.1, certificate authentication, one durable audit event, a small
# JSON answer) beside a record get and a blind-index search, on one server,
# in alternating rounds, with the load generator on the same machine.
# A records read can't be faster than this floor; BENCHMARKS.md quotes it
# against the records targets.
#
#   scripts/bench-floor.sh                    # ~50 000 records, 3 rounds of 8 s
#   FILL_SECS=120 ROUNDS=3 scripts/bench-floor.sh   # about 10^6 records
#   SVG=floor.svg scripts/bench-floor.sh             # also a bar chart (scripts/plot-floor.py)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
PORT=${PORT:-18310}
MODE=get
# shellcheck source=scripts/records-fixture.sh
. scripts/records-fixture.sh
GET=("${ARGS[@]}")
SEARCH=(--method POST --path /v1/records/bench/search --body-file "$W/search.json" --rand-max "$REQS" --header "X-Purpose-Of-Use: TREAT")
FLOOR=(--method GET --path /v1/auth/token/lookup-self)
N=$(python3 -c "import sqlite3; print(sqlite3.connect('file:$D/records.db?mode=ro', uri=True).execute('select count(*) from records').fetchone()[0])")
echo "# $N records; 64 connections; ${SECS} s per round; $(nproc) cores shared with the load generator"
run() { # $1 = label; the rest: loadgen flags
  local label=$1; shift
  $LG "${LGA[@]}" "$@" -c 64 -d "$SECS" | python3 -c "
import json, sys
j = json.load(sys.stdin)
assert j['errors'] == 0 and j['non_2xx'] == 0, j
print(f\"$label {j['rps']:.0f}\")"
}
for args in FLOOR GET SEARCH; do declare -n a=$args; run warm-up "${a[@]}" >/dev/null; done
: >"$W/rounds"
for r in $(seq "$ROUNDS"); do
  run floor "${FLOOR[@]}" | tee -a "$W/rounds"
  run get "${GET[@]}" | tee -a "$W/rounds"
  run search "${SEARCH[@]}" | tee -a "$W/rounds"
done
python3 - "$W/rounds" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    rows.setdefault(k, []).append(float(v))
floor = statistics.median(rows["floor"])
for k in ("floor", "get", "search"):
    m = statistics.median(rows[k])
    print(f"{k:7} median {m:8.0f} req/s  ({m / floor:.2f} of the floor)  rounds: {', '.join(f'{v:.0f}' for v in rows[k])}")
PY
if [ -n "${SVG:-}" ]; then
  python3 scripts/plot-floor.py "$W/rounds" "$SVG" "Records reads on $N records, 64 mTLS connections, $(nproc) shared cores ($(date +%F))"
  echo "chart: $SVG"
fi
