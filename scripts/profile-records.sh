#!/usr/bin/env bash
# Profiles `phivault serve` under one records workload with perf, and
# prints per-thread CPU: how the optimisation notes in BENCHMARKS.md and
# the comments in crates/phivault-store/src/sqlite.rs were measured.
#
#   MODE=get scripts/profile-records.sh       # get | search | create | bulk
#   PERF=0 MODE=create scripts/profile-records.sh   # per-thread CPU only
#   CONFIG='[audit]\\ngroup_commit_delay_us = 2000' PERF_OUT=/tmp/get.perf MODE=get scripts/profile-records.sh
#
# A small collection (about 50 000 records from an 8-second bulk fill),
# 64 mTLS connections, 12 s of load; perf samples the server for 8 s.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-get}
PERF=${PERF:-1}
PORT=${PORT:-18300}
command -v perf >/dev/null || [ "$PERF" = 0 ] || { echo "perf is needed (apt-get install linux-perf), or PERF=0"; exit 2; }
cargo build --release -q -p phivault-cli
cargo build --release -q -p phivault-server --example loadgen
PV=$PWD/target/release/phivault; LG=$PWD/target/release/examples/loadgen
W=$(mktemp -d /var/tmp/pv-profile.XXXXXX); D=$W/data
cleanup() { kill "${PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
CFG=()
if [ -n "${CONFIG:-}" ]; then printf '%b\n' "$CONFIG" >"$W/config.toml"; CFG=(--config "$W/config.toml"); fi
$PV "${CFG[@]}" --data-dir "$D" -q serve --dev --listen 127.0.0.1:$PORT --log warn >/dev/null 2>"$W/err" &
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
  bulk) ARGS=(--method POST --path /v1/records/bench/bulk --body-file "$W/bulk.json" --rand-max 900000) ;;
  *) echo "MODE must be get, search, create or bulk"; exit 2 ;;
esac
$LG "${LGA[@]}" "${ARGS[@]}" -c "${CONNS:-64}" -d 12 >"$W/lg.json" &
LGPID=$!
sleep 2
python3 - "$PID" <<'PY'
import os, sys, time
pid = sys.argv[1]
def snap():
    d = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            s = open(f"/proc/{pid}/task/{t}/stat").read()
            f = s[s.rindex(")") + 2:].split()
            d[t] = (s[s.index("(") + 1:s.rindex(")")], int(f[11]) + int(f[12]))
        except OSError:
            pass
    return d
a = snap(); time.sleep(3); b = snap()
hz = os.sysconf("SC_CLK_TCK")
print("# server threads, % of one core over 3 s:")
for t, (n, v) in sorted(b.items(), key=lambda x: -(x[1][1] - a.get(x[0], ("", 0))[1])):
    dv = v - a.get(t, ("", 0))[1]
    if dv:
        print(f"#   {t:>7} {n:<28} {100 * dv / hz / 3:6.1f}%")
PY
if [ "$PERF" = 1 ]; then
  # shellcheck disable=SC2086
  perf record ${PERF_OPTS:--F 999 -g} -p "$PID" -o "$W/perf.data" -- sleep 6 >/dev/null 2>&1
  [ -z "${PERF_OUT:-}" ] || cp "$W/perf.data" "$PERF_OUT"
fi
wait "$LGPID"
echo "# load: $(cat "$W/lg.json")"
if [ "$PERF" = 1 ]; then
  perf report -i "$W/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -40 | cut -c1-110
fi
