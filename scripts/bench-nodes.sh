#!/usr/bin/env bash
# phivault on PostgreSQL: records create/get with 1 and 2 nodes, beside the
# do-it-yourself peer (PostgreSQL 15 + pgcrypto, scripts/bench-records-pg.sh)
# in the same run, and backup/restore throughput in MB/s beside the
# `openssl speed` AES-256-GCM ceiling.
#
#   scripts/bench-nodes.sh                      # ROWS=50000 SECS=10, ~5 min on 2 cores (after the build)
#   ROWS=20000 SECS=5 PGCRYPTO=0 scripts/bench-nodes.sh   # quick check, no pgcrypto peer
#
# Knobs: SECS (10) per loadgen run, CONNS (64; 2 nodes get CONNS/2 each),
# ROWS (50000) records before the gets, PORT_A/PORT_B (18230/18231),
# PG_TLS_PORT (15442, phivault's cluster), PG_PORT (15443, the pgcrypto
# peer's own cluster), PGCRYPTO (1), KEEP=1 keeps the work dir,
# PHIVAULT_BIN (target/release/phivault: another build to compare).
#
# phivault's cluster: a throwaway PostgreSQL 15 (the machine's binaries),
# data on the real disk under /var/tmp, fsync/synchronous_commit on,
# TLS with a server certificate from phivault's CA, scram-sha-256, hostssl
# only, max_connections 200; phivault connects with verify-full.
# Workload and loadgen runs as in scripts/bench-records.sh.
# Prints JSON lines and a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
CONNS=${CONNS:-64}
ROWS=${ROWS:-50000}
PORT_A=${PORT_A:-18230}
PORT_B=${PORT_B:-18231}
PG_TLS_PORT=${PG_TLS_PORT:-15442}
PG_PORT=${PG_PORT:-15443}
PGCRYPTO=${PGCRYPTO:-1}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
HALF=$((CONNS / 2))
T_START=$(date +%s)

CARGO=(cargo)
command -v flock >/dev/null && CARGO=(flock /tmp/phivault-cargo.lock cargo)
"${CARGO[@]}" build --release -q -p phivault-cli
"${CARGO[@]}" build --release -q -p phivault-server --example loadgen
# On the real disk, not tmpfs: fsync must cost what it costs.
WORK=$(mktemp -d /var/tmp/pv-nodes-bench.XXXXXX)
chmod 755 "$WORK"
# Private copies: a build by someone else mid-run must not swap the binary
# between the measurements.
mkdir "$WORK/bin"
cp "${PHIVAULT_BIN:-target/release/phivault}" "$WORK/bin/phivault"
cp target/release/examples/loadgen "$WORK/bin/"
PV=$WORK/bin/phivault
LG=$WORK/bin/loadgen
PGW=$WORK/pg
PGD=$PGW/data
RUN=()
[ "$(id -u)" = 0 ] && RUN=(runuser -u nobody --)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -f "$PGD/postmaster.pid" ]; then
    (cd "$PGW" && "${RUN[@]}" "$PGBIN/pg_ctl" -D "$PGD" -m immediate -w stop >/dev/null 2>&1) || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { date +%s.%N; }
# 1-minute load average after a run: > ~2 + loadgen/server means someone else was busy.
la() { cut -d' ' -f1 /proc/loadavg; }
A=$WORK/a
B=$WORK/b

# --- node A's first start (SQLite) bootstraps the dev keystore and the CA,
# which issues PostgreSQL's server certificate.
wait_up() { # $1 port, $2 data dir, $3 pid
  for _ in $(seq 150); do
    curl -sf --cacert "$2/ca/ca.pem" "https://127.0.0.1:$1/v1/sys/health" >/dev/null 2>&1 && return 0
    kill -0 "$3" 2>/dev/null || { echo "server on $1 died" >&2; cat "$WORK"/*.err >&2 || true; exit 1; }
    sleep 0.2
  done
  echo "server on $1 did not come up" >&2; exit 1
}
$PV --data-dir "$A" -q serve --dev --listen 127.0.0.1:$PORT_A --log warn >"$WORK/boot.out" 2>"$WORK/boot.err" &
P=$!; PIDS+=("$P")
wait_up "$PORT_A" "$A" "$P"
kill "$P"; wait "$P" 2>/dev/null || true
rm -f "$A"/records.db* "$A"/subject-keys.db*
mkdir -p "$PGW"
$PV --data-dir "$A" -q --insecure-dev ca issue server --name db.phivault.test --san 127.0.0.1 \
  --cert "$PGW/server.crt" --key "$PGW/server.key" >/dev/null

# --- PostgreSQL 15, TLS only, scram-sha-256.
PGPW=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s' "$PGPW" >"$PGW/pwfile"
chmod 600 "$PGW/server.key"
[ "$(id -u)" = 0 ] && chown -R nobody "$PGW"
(cd "$PGW" && "${RUN[@]}" "$PGBIN/initdb" -D "$PGD" -U postgres --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
  --pwfile="$PGW/pwfile" -E UTF8 --locale=C >"$PGW/initdb.log" 2>&1) || { cat "$PGW/initdb.log" >&2; exit 1; }
printf 'local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 0.0.0.0/0 reject\n' >"$PGD/pg_hba.conf"
cat >>"$PGD/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_TLS_PORT
unix_socket_directories = '$PGW'
max_connections = 200
shared_buffers = 1GB
fsync = on
synchronous_commit = on
full_page_writes = on
ssl = on
ssl_cert_file = '$PGW/server.crt'
ssl_key_file = '$PGW/server.key'
CONF
[ "$(id -u)" = 0 ] && chown nobody "$PGD/pg_hba.conf"
(cd "$PGW" && "${RUN[@]}" "$PGBIN/pg_ctl" -D "$PGD" -l "$PGW/server.log" -w -t 60 start >/dev/null) \
  || { cat "$PGW/server.log" >&2; exit 1; }
psql_() { (cd "$PGW" && PGPASSWORD=$PGPW "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PGW" -p "$PG_TLS_PORT" -U postgres "$@"); }
psql_ -d postgres -c "CREATE DATABASE phivault" -c "CREATE DATABASE restored"
URL="postgres://postgres:$PGPW@127.0.0.1:$PG_TLS_PORT"
# One config per node: the same database, distinct audit node names (both
# nodes run on one host, whose name is the default).
for n in a b; do
  printf '[storage]\nca_file = "%s"\n[audit]\nnode = "bench-node-%s"\n' "$A/ca/ca.pem" "$n" >"$WORK/pg-$n.toml"
done
cp "$WORK/pg-a.toml" "$WORK/pg.toml"

start_node() { # $1 data dir, $2 port, $3 name; sets NODE_PID
  PHIVAULT_STORAGE_URL="$URL/phivault" $PV --config "$WORK/pg-${3#node-}.toml" --data-dir "$1" -q serve --dev \
    --listen 127.0.0.1:"$2" --log warn >"$WORK/$3.out" 2>"$WORK/$3.err" &
  NODE_PID=$!; PIDS+=("$NODE_PID")
  wait_up "$2" "$1" "$NODE_PID"
}
start_node "$A" "$PORT_A" node-a; PA=$NODE_PID
[ ! -e "$A/keystore.json" ] || { echo "keystore.json still in node A's data dir" >&2; exit 1; }
[ "$(psql_ -d phivault -c 'SELECT count(*) FROM pv_keystore')" = 1 ] || { echo "keystore not in PostgreSQL" >&2; exit 1; }
$PV --data-dir "$A" -q records --addr 127.0.0.1:$PORT_A apply bench benches/records-bench.schema.json >/dev/null

# The same ~1.7 KiB Patient as scripts/bench-records.sh.
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
for tag in ["A", "B", "C"]:   # loadgen's __N__ restarts per run: a prefix per run keeps ids distinct
    open(f"{work}/create-{tag}.json", "w").write(json.dumps(patient(f"{tag}__N__")))
open(f"{work}/bulk500.tmpl", "w").write(json.dumps({"records": [patient(f"F__N__-{k}") for k in range(500)]}))
PY

lg() { # $1 port, $2 data dir, rest: loadgen args
  local port=$1 d=$2; shift 2
  $LG --addr 127.0.0.1:"$port" --ca "$d/ca/ca.pem" --cert "$d/clients/admin.pem" --key "$d/clients/admin.key" --threads 1 "$@"
}
rows() { psql_ -d phivault -c "SELECT count(*) FROM pv_records WHERE collection = 'bench'"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
check() { # loadgen result: no errors, no non-2xx
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r['errors']==0 and r['non_2xx']==0 and r['requests']>0 else 1)" "$1" \
    || { echo "loadgen reported failures: $1" >&2; exit 1; }
}
declare -A RPS P99
PG_VER=$("$PGBIN/postgres" -V | awk '{print $3}')
echo "# phivault nodes on PostgreSQL $PG_VER (TLS), $(nproc) cores, $(date -u +%F), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo " + uncommitted changes in crates/: $(git diff --shortstat HEAD -- crates)")"

# --- 1 node: create, fill, get.
R=$(lg "$PORT_A" "$A" --method POST --path /v1/records/bench --body-file "$WORK/create-A.json" --rand-max 900000 -c "$CONNS" -d "$SECS")
check "$R"; echo "{\"nodes\":1,\"op\":\"create\",\"loadavg\":$(la),\"result\":$R}"
RPS[create1]=$(field "$R" rps); P99[create1]=$(field "$R" p99_ms)

T0=$(now); GEN=0
while [ "$(rows)" -lt "$ROWS" ]; do
  GEN=$((GEN + 1))
  sed "s/__N__/G${GEN}x__N__/g" "$WORK/bulk500.tmpl" >"$WORK/bulk500.json"
  F=$(lg "$PORT_A" "$A" --method POST --path /v1/records/bench/bulk --body-file "$WORK/bulk500.json" --rand-max 900000 -c 4 -d 5)
  check "$F"
  echo "# filled to $(rows) rows" >&2
done
N=$(rows)
echo "{\"op\":\"fill\",\"rows\":$N,\"seconds\":$(awk -v a="$T0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')}"

psql_ -d phivault -c "SELECT '/v1/records/bench/' || id FROM pv_records WHERE collection = 'bench' ORDER BY random() LIMIT 20000" >"$WORK/paths.txt"
psql_ -d phivault -c "VACUUM ANALYZE" -c "CHECKPOINT"
R=$(lg "$PORT_A" "$A" --method GET --paths-file "$WORK/paths.txt" --header "X-Purpose-Of-Use: TREAT" -c "$CONNS" -d "$SECS")
check "$R"; echo "{\"nodes\":1,\"op\":\"get\",\"rows\":$N,\"loadavg\":$(la),\"result\":$R}"
RPS[get1]=$(field "$R" rps); P99[get1]=$(field "$R" p99_ms)

# --- node B: its own data dir with only the dev unseal key and the TLS/CA
# files; keystore, records and subject keys come from PostgreSQL.
mkdir -p "$B"
cp "$A/dev-unseal.key" "$B/"
cp -a "$A/ca" "$A/clients" "$A/tls" "$B/"
start_node "$B" "$PORT_B" node-b; PB=$NODE_PID
[ ! -e "$B/keystore.json" ] && [ ! -e "$B/records.db" ] || { echo "node B has local store files" >&2; exit 1; }
# Node B reads what node A wrote.
ID=$(head -1 "$WORK/paths.txt")
curl -sf --cacert "$B/ca/ca.pem" --cert "$B/clients/admin.pem" --key "$B/clients/admin.key" -H 'X-Purpose-Of-Use: TREAT' \
  "https://127.0.0.1:$PORT_B$ID" | python3 -c "import json,sys; assert json.load(sys.stdin)['data']['resourceType']=='Patient'" \
  || { echo "node B could not read a record written by node A" >&2; exit 1; }
echo "# node B reads node A's records" >&2

two() { # op; rest: loadgen args (without --body-file for create)
  local op=$1 ra rb; shift
  if [ "$op" = create ]; then
    lg "$PORT_A" "$A" "$@" --body-file "$WORK/create-B.json" -c "$HALF" -d "$SECS" >"$WORK/2a.json" &
    local la=$!; PIDS+=("$la")
    lg "$PORT_B" "$B" "$@" --body-file "$WORK/create-C.json" -c "$HALF" -d "$SECS" >"$WORK/2b.json" &
  else
    lg "$PORT_A" "$A" "$@" -c "$HALF" -d "$SECS" >"$WORK/2a.json" &
    local la=$!; PIDS+=("$la")
    lg "$PORT_B" "$B" "$@" -c "$HALF" -d "$SECS" >"$WORK/2b.json" &
  fi
  local lb=$!; PIDS+=("$lb")
  wait "$la"; wait "$lb"
  ra=$(cat "$WORK/2a.json"); rb=$(cat "$WORK/2b.json")
  check "$ra"; check "$rb"
  echo "{\"nodes\":2,\"op\":\"$op\",\"loadavg\":$(la),\"node_a\":$ra,\"node_b\":$rb}"
  RPS[${op}2]=$(awk -v a="$(field "$ra" rps)" -v b="$(field "$rb" rps)" 'BEGIN{print a+b}')
  P99[${op}2]=$(awk -v a="$(field "$ra" p99_ms)" -v b="$(field "$rb" p99_ms)" 'BEGIN{print (a>b)?a:b}')
}
two create --method POST --path /v1/records/bench --rand-max 900000
two get --method GET --paths-file "$WORK/paths.txt" --header "X-Purpose-Of-Use: TREAT"
N2=$(rows)
DBSIZE=$(psql_ -d phivault -c "SELECT pg_size_pretty(pg_database_size('phivault'))")
echo "# database phivault: $N2 records, $DBSIZE" >&2

kill "$PB" "$PA"; wait "$PB" "$PA" 2>/dev/null || true

# --- Backup and restore (nodes stopped; node A's config: PostgreSQL).
$PV --data-dir "$WORK" -q backup keygen --out "$WORK/bk.key" --public "$WORK/bk.pub" >/dev/null
T0=$(now)
BC=$(PHIVAULT_STORAGE_URL="$URL/phivault" $PV --config "$WORK/pg.toml" --data-dir "$A" -q --insecure-dev --json \
  backup create --recipient "$WORK/bk.pub" --out "$WORK/full.pvb")
BC_WALL=$(awk -v a="$T0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}')
echo "{\"op\":\"backup-create\",\"from\":\"postgres\",\"wall_s\":$BC_WALL,\"result\":$BC}"
BYTES=$(stat -c %s "$WORK/full.pvb")
BC_S=$(field "$BC" seconds)

restore() { # $1 name, $2 data dir, rest: env (VAR=value)
  local name=$1 d=$2 t0 out wall; shift 2
  mkdir -p "$d"; cp "$A/dev-unseal.key" "$d/"; cp -a "$A/ca" "$A/clients" "$A/tls" "$d/"
  t0=$(now)
  out=$(env "$@" $PV --data-dir "$d" -q --json backup restore "$WORK/full.pvb" --key "$WORK/bk.key" \
    --signer "$(field "$BC" signer)")
  wall=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}')
  echo "{\"op\":\"backup-restore\",\"into\":\"$name\",\"wall_s\":$wall,\"result\":$out}"
  RS[$name]=$(field "$out" seconds)
}
declare -A RS
restore sqlite "$WORK/r-sqlite"
restore postgres "$WORK/r-pg" PHIVAULT_STORAGE_URL="$URL/restored" PHIVAULT_CONFIG="$WORK/pg.toml"
[ "$(psql_ -d restored -c "SELECT count(*) FROM pv_records WHERE collection = 'bench'")" = "$N2" ] \
  || { echo "restored PostgreSQL record count differs" >&2; exit 1; }
[ ! -e "$WORK/r-pg/records.db" ] || { echo "PostgreSQL restore wrote records.db" >&2; exit 1; }
SSL=$(openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3 2>/dev/null | awk '/^(AES-256-GCM|aes-256-gcm)/{print $NF}')
SSL_MBS=$(awk -v k="${SSL%k}" 'BEGIN{printf "%.0f", k*1000/1e6}')
echo "{\"op\":\"openssl-speed\",\"cipher\":\"aes-256-gcm\",\"bytes\":16384,\"MB_s\":$SSL_MBS}"
mbs() { awk -v b="$BYTES" -v s="$1" 'BEGIN{printf "%.1f", b/1e6/s}'; }

(cd "$PGW" && "${RUN[@]}" "$PGBIN/pg_ctl" -D "$PGD" -m immediate -w stop >/dev/null)

# --- The pgcrypto peer: its own cluster (Unix socket, no TLS), same SECS/CONNS/ROWS.
if [ "$PGCRYPTO" = 1 ]; then
  ROWS=$ROWS SECS=$SECS CONNS=$CONNS PG_PORT=$PG_PORT scripts/bench-records-pg.sh | tee "$WORK/pg.txt"
fi
pgc() { # peer op -> tx/s
  [ -f "$WORK/pg.txt" ] || { echo "-"; return; }
  python3 - "$WORK/pg.txt" "$1" "$2" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    if l.startswith('{'):
        r = json.loads(l)
        if r.get("peer") == sys.argv[2] and r.get("op") == sys.argv[3]:
            print(f'{r["per_s"]:.0f}'); break
else:
    print("-")
PY
}

# --- Markdown.
r0() { printf '%.0f' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 > 0) printf "%.2f×", a/b; else print "-" }'; }
DI=$(pgc pgcrypto-default insert); TI=$(pgc pgcrypto-tuned insert)
DG=$(pgc pgcrypto-default get); TG=$(pgc pgcrypto-tuned get)
echo
echo "phivault on PostgreSQL $PG_VER (TLS verify-full, mTLS+HTTP/1.1 clients), $N-$N2 records, SECS=$SECS; pgcrypto peer pgbench -M prepared -c $CONNS over a Unix socket, $ROWS rows"
echo
echo "| per second | 1 node ($CONNS conns) | 2 nodes ($HALF+$HALF conns) | 2 / 1 | pgcrypto-default | pgcrypto-tuned | 1 node / tuned |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| create, durable | $(r0 "${RPS[create1]}") (p99 ${P99[create1]} ms) | $(r0 "${RPS[create2]}") (p99 ${P99[create2]} ms) | $(ratio "${RPS[create2]}" "${RPS[create1]}") | $DI | $TI | $(ratio "${RPS[create1]}" "$TI") |"
echo "| get by id | $(r0 "${RPS[get1]}") (p99 ${P99[get1]} ms) | $(r0 "${RPS[get2]}") (p99 ${P99[get2]} ms) | $(ratio "${RPS[get2]}" "${RPS[get1]}") | $DG | $TG | $(ratio "${RPS[get1]}" "$TG") |"
echo
echo "| backup, $N2 records, $(awk -v b="$BYTES" 'BEGIN{printf "%.1f", b/1e6}') MB file | seconds | MB/s | / openssl ceiling |"
echo "|---|---:|---:|---:|"
echo "| create (from PostgreSQL) | $(printf '%.2f' "$BC_S") | $(mbs "$BC_S") | $(awk -v a="$(mbs "$BC_S")" -v b="$SSL_MBS" 'BEGIN{printf "%.3f", a/b}') |"
echo "| restore into empty SQLite | $(printf '%.2f' "${RS[sqlite]}") | $(mbs "${RS[sqlite]}") | $(awk -v a="$(mbs "${RS[sqlite]}")" -v b="$SSL_MBS" 'BEGIN{printf "%.3f", a/b}') |"
echo "| restore into empty PostgreSQL | $(printf '%.2f' "${RS[postgres]}") | $(mbs "${RS[postgres]}") | $(awk -v a="$(mbs "${RS[postgres]}")" -v b="$SSL_MBS" 'BEGIN{printf "%.3f", a/b}') |"
echo "| openssl speed -evp aes-256-gcm -bytes 16384 (1 core) | | $SSL_MBS | 1 |"
echo
echo "# total $(( $(date +%s) - T_START )) s"
