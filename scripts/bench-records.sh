#!/usr/bin/env bash
# The records API under load, over mTLS, on this machine, beside the
# do-it-yourself baseline (PostgreSQL 15 + pgcrypto, pgbench) in the same run.
#
# Workload (issue #4): a FHIR-like Patient of ~2 KiB with 8 PHI fields,
# 2 blind indexes and 1 FF1 token (benches/records-bench.schema.json).
#   create   POST /v1/records/bench           one record per request, durable (fsync'd WAL, group commit)
#   bulk     POST /v1/records/bench/bulk      100 records per request
#   get      GET  /v1/records/bench/{id}      random ids
#   bulk-get POST /v1/records/bench/bulk-get  100 random ids per request
#   search   POST /v1/records/bench/search    exact match on the mrn blind index, on ROWS records
#
#   scripts/bench-records.sh                 # ROWS=1000000 (about 10 min, ~4 GB of disk)
#   ROWS=100000 SECS=5 scripts/bench-records.sh
#   AUDIT=off PG=0 scripts/bench-records.sh  # without the audit trail
#   AB="OLD NEW" PG=0 scripts/bench-records.sh  # also two builds' get and search on the same records
#
# Prints JSON lines and a Markdown table (paste into BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
CONNS=${CONNS:-64}
ROWS=${ROWS:-1000000}
PORT=${PORT:-18210}
PG=${PG:-1}

cargo build --release -q -p phivault-cli
cargo build --release -q -p phivault-server --example loadgen
PV=$PWD/target/release/phivault
LG=$PWD/target/release/examples/loadgen

# On the real disk, not tmpfs: fsync must cost what it costs.
WORK=$(mktemp -d /var/tmp/pv-records-bench.XXXXXX)
cleanup() { kill "${PV_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
D=$WORK/data
# AUDIT=off measures without the audit trail (audit.insecure_disable), to
# see what it costs; the default is the product: every request audited.
CFG=()
if [ "${AUDIT:-on}" = off ]; then
  printf '[audit]\ninsecure_disable = true\n' >"$WORK/audit-off.toml"
  CFG=(--config "$WORK/audit-off.toml")
fi
$PV "${CFG[@]}" --data-dir "$D" -q serve --dev --listen 127.0.0.1:$PORT --log warn >"$WORK/pv.out" 2>"$WORK/pv.err" &
PV_PID=$!
for _ in $(seq 100); do curl -sf --cacert "$D/ca/ca.pem" "https://127.0.0.1:$PORT/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.2; done
$PV --data-dir "$D" -q records --addr 127.0.0.1:$PORT apply bench benches/records-bench.schema.json >/dev/null

python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def patient(tag):
    return {
        "resourceType": "Patient",
        "patient_id": f"P-{tag}",
        "mrn": f"MRN-{tag}",
        "ssn": "55-__R__-1234",
        "name": {"use": "official", "family": "Rivera-Delgado", "given": ["Ana", "Lucia"], "prefix": ["Ms."]},
        "birth_date": "1984-07-19",
        "telecom": {"phone": "+1 617 555 0100", "mobile": "+1 617 555 0199", "email": "ana.rivera@example.org"},
        "address": {"use": "home", "line": ["12 Elm Street", "Apartment 4B"], "city": "Boston", "district": "Suffolk", "state": "MA", "postal_code": "02139", "country": "US"},
        "contact": {"relationship": "emergency", "name": "Jorge Rivera", "phone": "+1 617 555 0142", "address": "44 Oak Avenue, Cambridge, MA 02138"},
        "note": ("Synthetic patient for benchmarking; not a real person. History: seasonal allergies, "
                 "appendectomy in 2003, no known drug allergies. Medications: cetirizine 10 mg daily as needed. "
                 "Social: non-smoker, occasional alcohol, works as a schoolteacher, lives with partner and one child. "
                 "Family history: father with type 2 diabetes, mother with hypertension. Immunizations up to date "
                 "including influenza (this season) and tetanus booster (2019). Last visit: routine annual physical, "
                 "blood pressure 118/76, BMI 23.4, fasting glucose 88 mg/dL, lipid panel within normal limits. "
                 "Plan: continue current medications, follow up in twelve months or sooner if symptoms change. "
                 "Patient counseled on sun protection, exercise (150 minutes per week) and sleep hygiene. "
                 "Care team: primary care physician, nurse practitioner, front-desk coordinator. Preferred "
                 "language English; also speaks Spanish. Consent on file for electronic communication."),
        "gender": "female", "active": True, "managing_org": "org-17",
        "meta": {"version_id": "1", "last_updated": "2026-12-04T10:00:00Z", "source": "bench"},
    }
one = patient("C__N__")
open(f"{work}/create.json", "w").write(json.dumps(one))
print("record plaintext bytes:", len(json.dumps(one)), file=sys.stderr)
open(f"{work}/bulk100.json", "w").write(json.dumps({"records": [patient(f"B__N__-{k}") for k in range(100)]}))
open(f"{work}/bulk500.tmpl", "w").write(json.dumps({"records": [patient(f"F__N__-{k}") for k in range(500)]}))
PY

LGA=(--addr 127.0.0.1:$PORT --ca "$D/ca/ca.pem" --cert "$D/clients/admin.pem" --key "$D/clients/admin.key" --threads 1)
run() { $LG "${LGA[@]}" "$@"; }
rows() { python3 -c "import sqlite3,sys; c=sqlite3.connect('file:$D/records.db?mode=ro', uri=True); print(c.execute('select count(*) from records').fetchone()[0])"; }

echo "# phivault records, $(nproc) cores, $(date -u +%F)"
CREATE=$(run --method POST --path /v1/records/bench --body-file "$WORK/create.json" --rand-max 900000 -c "$CONNS" -d "$SECS")
echo "{\"op\":\"create\",\"result\":$CREATE}"
BULK=$(run --method POST --path /v1/records/bench/bulk --body-file "$WORK/bulk100.json" --rand-max 900000 -c 8 -d "$SECS")
echo "{\"op\":\"bulk100\",\"result\":$BULK}"

# Fill to ROWS with 500-record bulk requests. loadgen's counter restarts
# every run, so each run gets its own tag prefix (G<gen>x).
T0=$(date +%s)
GEN=0
# At least one run: search needs the last run's MRNs (also when ROWS is
# already reached by the create measurements).
while :; do
  GEN=$((GEN + 1))
  sed "s/__N__/G${GEN}x__N__/g" "$WORK/bulk500.tmpl" >"$WORK/bulk500.json"
  run --method POST --path /v1/records/bench/bulk --body-file "$WORK/bulk500.json" --rand-max 900000 -c 4 -d 20 >"$WORK/fill.json"
  echo "# filled to $(rows) rows" >&2
  [ "$(rows)" -lt "$ROWS" ] || break
done
echo "{\"op\":\"fill\",\"rows\":$(rows),\"seconds\":$(( $(date +%s) - T0 ))}"
LAST_REQS=$(python3 -c "import json;print(json.load(open('$WORK/fill.json'))['requests'])")

# Random ids for GET; random existing MRNs (of the last fill run) for search.
python3 - "$D" "$WORK" <<'PY'
import sqlite3, sys
d, work = sys.argv[1], sys.argv[2]
c = sqlite3.connect(f"file:{d}/records.db?mode=ro", uri=True)
ids = [r[0] for r in c.execute("select id from records where collection='bench' order by random() limit 20000")]
open(f"{work}/paths.txt", "w").write("".join(f"/v1/records/bench/{i}\n" for i in ids))
import json, random
open(f"{work}/bulkget.txt", "w").write("".join(json.dumps({"ids": random.sample(ids, 100)}) + "\n" for _ in range(500)))
PY
# Reads are measured from a warm page cache, like PostgreSQL's
# (scripts/bench-records-pg.sh): this VM runs DAMON, which pages out file
# pages left unused for a minute (kdamond, scheme "pageout", min age 12 x
# 5 s), so rows written early in the fill would otherwise be read from disk.
cat "$D"/*.db >/dev/null
GET=$(run --method GET --paths-file "$WORK/paths.txt" --header "X-Purpose-Of-Use: TREAT" -c "$CONNS" -d "$SECS")
echo "{\"op\":\"get\",\"rows\":$(rows),\"result\":$GET}"
BULKGET=$(run --method POST --path /v1/records/bench/bulk-get --bodies-file "$WORK/bulkget.txt" --header "X-Purpose-Of-Use: TREAT" -c 8 -d "$SECS")
echo "{\"op\":\"bulk_get100\",\"rows\":$(rows),\"result\":$BULKGET}"
# A bulk get must return every record it asked for: spot-check one.
head -1 "$WORK/bulkget.txt" | curl -sS --http1.1 --cacert "$D/ca/ca.pem" --cert "$D/clients/admin.pem" --key "$D/clients/admin.key" \
  -H 'X-Purpose-Of-Use: TREAT' "https://127.0.0.1:$PORT/v1/records/bench/bulk-get" --data-binary @- \
  | python3 -c "import json,sys; r=json.load(sys.stdin)['records']; assert len(r)==100 and all('data' in x for x in r), r[:2]; print('# bulk get spot check: 100 records', file=sys.stderr)"
echo "{\"index\":\"mrn\",\"value\":\"MRN-FG${GEN}x__R__-7\"}" >"$WORK/search.json"
SEARCH=$(run --method POST --path /v1/records/bench/search --body-file "$WORK/search.json" --header "X-Purpose-Of-Use: TREAT" --rand-max "$LAST_REQS" -c "$CONNS" -d "$SECS")
echo "{\"op\":\"search\",\"rows\":$(rows),\"result\":$SEARCH}"
# A search must find its record: spot-check one.
curl -sS --http1.1 --cacert "$D/ca/ca.pem" --cert "$D/clients/admin.pem" --key "$D/clients/admin.key" \
  -H 'X-Purpose-Of-Use: TREAT' "https://127.0.0.1:$PORT/v1/records/bench/search" \
  -d "{\"index\":\"mrn\",\"value\":\"MRN-FG${GEN}x1-7\"}" | python3 -c "import json,sys; r=json.load(sys.stdin)['records']; assert len(r)==1, r; print('# search spot check: 1 hit', file=sys.stderr)"
du -sh "$D" | sed 's/^/# data dir: /' >&2
kill "$PV_PID"; wait "$PV_PID" 2>/dev/null || true; PV_PID=

# AB="/path/to/old/phivault /path/to/new/phivault": two builds on the same
# records. After the fill, each binary in turn serves the same data dir
# (AB_ROUNDS rounds, 2 by default, alternating), its page cache warmed the
# same way, and get and search are measured again: "get search" req/s.
for r in $(seq "${AB_ROUNDS:-2}"); do
  for b in ${AB:-}; do
    "$b" "${CFG[@]}" --data-dir "$D" -q serve --dev --listen 127.0.0.1:$PORT --log warn >>"$WORK/pv.out" 2>>"$WORK/pv.err" &
    PV_PID=$!
    for _ in $(seq 100); do curl -sf --cacert "$D/ca/ca.pem" "https://127.0.0.1:$PORT/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.2; done
    cat "$D"/*.db >/dev/null
    G=$(run --method GET --paths-file "$WORK/paths.txt" --header "X-Purpose-Of-Use: TREAT" -c "$CONNS" -d "$SECS")
    S=$(run --method POST --path /v1/records/bench/search --body-file "$WORK/search.json" --header "X-Purpose-Of-Use: TREAT" --rand-max "$LAST_REQS" -c "$CONNS" -d "$SECS")
    echo "{\"op\":\"ab\",\"round\":$r,\"binary\":\"$b\",\"rows\":$(rows),\"get\":$G,\"search\":$S}"
    kill "$PV_PID"; wait "$PV_PID" 2>/dev/null || true; PV_PID=
  done
done

if [ "$PG" = 1 ]; then
  ROWS=$ROWS SECS=$SECS CONNS=$CONNS scripts/bench-records-pg.sh | tee "$WORK/pg.txt"
fi
