# shellcheck shell=bash
# Sourced by scripts/ab-records.sh, scripts/profile-records.sh,
# scripts/bench-floor.sh and scripts/wal-frames.sh: a fresh
# `phivault serve --dev` (binary $PV, port $PORT, optional TOML in $CONFIG)
# with the bench collection (benches/records-bench.schema.json) filled for
# $FILL_SECS (default 8) seconds by 100-record bulk requests (about 50 000
# records in 8 s; 120 s gave 833 100 on 2026-12-05), then the
# loadgen arguments for one workload, $MODE: get | search | create | bulk.
#
# Needs PORT and MODE, and the working directory at the repository's top;
# builds and uses the release phivault and loadgen unless PV / LG name
# binaries. Sets W (work dir, removed on exit), D (data dir), PID (the
# server), LGA (loadgen's connection flags) and ARGS (the workload's flags).
if [ -z "${PV:-}" ]; then
  cargo build --release -q -p phivault-cli
  PV=$PWD/target/release/phivault
fi
if [ -z "${LG:-}" ]; then
  cargo build --release -q -p phivault-server --example loadgen
  LG=$PWD/target/release/examples/loadgen
fi
W=$(mktemp -d /var/tmp/pv-rec.XXXXXX); D=$W/data
cleanup() { kill "${PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
CFG=()
if [ -n "${CONFIG:-}" ]; then printf '%b\n' "$CONFIG" >"$W/config.toml"; CFG=(--config "$W/config.toml"); fi
$PV "${CFG[@]}" --data-dir "$D" -q serve --dev --listen "127.0.0.1:$PORT" --log warn >/dev/null 2>"$W/err" &
PID=$!
for _ in $(seq 100); do curl -sf --cacert "$D/ca/ca.pem" "https://127.0.0.1:$PORT/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.2; done
$PV --data-dir "$D" -q records --addr "127.0.0.1:$PORT" apply bench benches/records-bench.schema.json >/dev/null
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
LGA=(--addr "127.0.0.1:$PORT" --ca "$D/ca/ca.pem" --cert "$D/clients/admin.pem" --key "$D/clients/admin.key" --threads 1)
FILL=$($LG "${LGA[@]}" --method POST --path /v1/records/bench/bulk --body-file "$W/bulk.json" --rand-max 900000 -c 4 -d "${FILL_SECS:-8}")
# Reads start from a warm page cache (this VM's DAMON pages out file pages
# unused for a minute; BENCHMARKS.md).
cat "$D"/*.db* >/dev/null
REQS=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['requests'])" "$FILL")
python3 -c "
import sqlite3; c = sqlite3.connect('file:$D/records.db?mode=ro', uri=True)
open('$W/paths.txt', 'w').write(''.join(f'/v1/records/bench/{r[0]}\n' for r in c.execute('select id from records order by random() limit 20000')))"
case $MODE in
  get) ARGS=(--method GET --paths-file "$W/paths.txt" --header "X-Purpose-Of-Use: TREAT") ;;
  search) ARGS=(--method POST --path /v1/records/bench/search --body-file "$W/search.json" --rand-max "$REQS" --header "X-Purpose-Of-Use: TREAT") ;;
  create) ARGS=(--method POST --path /v1/records/bench --body-file "$W/create.json" --rand-max 900000) ;;
  bulk) ARGS=(--method POST --path /v1/records/bench/bulk --body-file "$W/bulk.json" --rand-max 900000) ;;
  *) echo "MODE must be get, search, create or bulk"; exit 2 ;;
esac
