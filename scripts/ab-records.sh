#!/usr/bin/env bash
# One records workload against one phivault binary, fresh data each time:
# how BENCHMARKS.md compares two builds through the server (run it with the
# old and the new binary in turn, a few rounds each, and compare the rps).
#
#   scripts/ab-records.sh /path/to/phivault get      # get | search | create
#
# About 50 000 records from an 8-second bulk fill, 64 mTLS connections,
# SECS (10) of load; prints "rps non_2xx errors". Needs the loadgen example
# built (cargo build --release -p phivault-server --example loadgen).
set -euo pipefail
PV=$(realpath "$1"); MODE=$2; PORT=${PORT:-18350}
cd "$(dirname "$0")/.."
LG=$PWD/target/release/examples/loadgen
W=$(mktemp -d /var/tmp/pv-rec.XXXXXX); D=$W/data
cleanup() { kill "${PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
$PV --data-dir "$D" -q serve --dev --listen 127.0.0.1:$PORT --log warn >/dev/null 2>"$W/err" &
PID=$!
for _ in $(seq 100); do curl -sf --cacert "$D/ca/ca.pem" "https://127.0.0.1:$PORT/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.2; done
$PV --data-dir "$D" -q records --addr 127.0.0.1:$PORT apply bench benches/records-bench.schema.json >/dev/null
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
p = {"resourceType": "Patient", "patient_id": "P-__N__", "mrn": "MRN-__N__", "ssn": "55-__R__-1234",
     "name": {"family": "Rivera", "given": ["Ana"]}, "birth_date": "1984-07-19",
     "telecom": {"phone": "+1 617 555 0100"}, "address": {"line": ["12 Elm"], "city": "Boston"},
     "contact": {"name": "Jorge"}, "note": "x" * 1300, "gender": "female", "active": True,
     "managing_org": "org-17", "meta": {"v": "1"}}
open(f"{w}/create.json", "w").write(json.dumps(p))
open(f"{w}/bulk.json", "w").write(json.dumps({"records": [json.loads(json.dumps(p).replace("__N__", f"__N__-{k}")) for k in range(100)]}))
open(f"{w}/search.json", "w").write('{"index":"mrn","value":"MRN-__R__-7"}')
PY
LGA=(--addr 127.0.0.1:$PORT --ca "$D/ca/ca.pem" --cert "$D/clients/admin.pem" --key "$D/clients/admin.key" --threads 1)
FILL=$($LG "${LGA[@]}" --method POST --path /v1/records/bench/bulk --body-file "$W/bulk.json" --rand-max 900000 -c 4 -d 8)
REQS=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['requests'])" "$FILL")
python3 -c "
import sqlite3; c = sqlite3.connect('file:$D/records.db?mode=ro', uri=True)
open('$W/paths.txt', 'w').write(''.join(f'/v1/records/bench/{r[0]}\n' for r in c.execute('select id from records order by random() limit 20000')))"
case $MODE in
  get) ARGS=(--method GET --paths-file "$W/paths.txt" --header "X-Purpose-Of-Use: TREAT") ;;
  search) ARGS=(--method POST --path /v1/records/bench/search --body-file "$W/search.json" --rand-max "$REQS" --header "X-Purpose-Of-Use: TREAT") ;;
  create) ARGS=(--method POST --path /v1/records/bench --body-file "$W/create.json" --rand-max 900000) ;;
  *) echo "MODE must be get, search or create"; exit 2 ;;
esac
$LG "${LGA[@]}" "${ARGS[@]}" -c 64 -d ${SECS:-10} | python3 -c "import json,sys;r=json.load(sys.stdin);print(round(r['rps']), r['non_2xx'], r['errors'])"
