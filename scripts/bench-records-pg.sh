#!/usr/bin/env bash
# DIY baseline for encrypted patient records: PostgreSQL 15 + pgcrypto,
# one pgp_sym_encrypt() per sensitive field and HMAC-SHA256 "blind indexes"
# for exact-match search, driven by a stock client (pgbench, custom scripts).
#
#   scripts/bench-records-pg.sh                          # defaults, ~2 min
#   SECS=3 ROWS=20000 CONNS=16 scripts/bench-records-pg.sh   # quick check
#
# Knobs: SECS (10) seconds per pgbench run, CONNS (64) client connections,
# ROWS (100000) rows pre-populated for get/search, PG_PORT (15432),
# POOL (2000) distinct default-mode ciphertexts per field (see below).
#
# Two peers, same schema and SQL, different pgp_sym_encrypt options:
#   pgcrypto-default  pgp_sym_encrypt(v, key)  -- what teams usually write.
#       Defaults: AES-128, s2k-mode=3 (iterated+salted SHA-1) with a random
#       s2k-count of 65536..253952, so EVERY encrypt and EVERY decrypt runs
#       the passphrase KDF (~0.1 ms/call on this 2-core box when idle, ~0.3 ms
#       with a parallel build; the script prints the per-call cost). Options such as
#       'cipher-algo=aes256' or 's2k-mode=0' / 's2k-mode=1' change that.
#   pgcrypto-tuned    pgp_sym_encrypt(v, key, 'cipher-algo=aes256, s2k-mode=1')
#       AES-256, single salted S2K hash: the fair "tuned DIY" setup.
# Decrypt cost is decided by the S2K parameters stored in each message, so
# each peer's get/search runs against rows encrypted with that peer's options.
# To keep the default run short, the default peer encrypts POOL distinct rows
# (8 fields each) and reuses those ciphertexts cyclically for ROWS rows; the
# blind indexes stay unique per row ('P' || id), so lookups hit one row and
# decrypt exactly the same kind of message. POOL=0 encrypts all ROWS (slow:
# ROWS*8*~0.1 ms of CPU).
#
# Durable defaults are left on (fsync, synchronous_commit, full_page_writes);
# every insert is its own committed transaction. Prints JSON lines and a
# Markdown table.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
CONNS=${CONNS:-64}
ROWS=${ROWS:-100000}
PG_PORT=${PG_PORT:-15432}
POOL=${POOL:-2000}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
TUNED_OPTS='cipher-algo=aes256, s2k-mode=1'

for b in initdb pg_ctl postgres psql pgbench; do
  [ -x "$PGBIN/$b" ] || { echo "missing $PGBIN/$b (PostgreSQL 15 server/client binaries required)" >&2; exit 1; }
done
[ -f "$("$PGBIN/pg_config" --sharedir 2>/dev/null || echo /usr/share/postgresql/15)/extension/pgcrypto.control" ] \
  || { echo "pgcrypto extension not installed" >&2; exit 1; }
if [ "$POOL" -le 0 ] || [ "$POOL" -gt "$ROWS" ]; then POOL=$ROWS; fi

WORK=$(mktemp -d /tmp/pv-pg.XXXXXX)
chmod 755 "$WORK"
RUN=()
if [ "$(id -u)" = 0 ]; then
  id pvbench >/dev/null 2>&1 || useradd -r -M -d /nonexistent -s /usr/sbin/nologin pvbench
  chown pvbench: "$WORK"
  RUN=(runuser -u pvbench --)
fi
PGDATA_DIR=$WORK/data
cleanup() {
  if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
    (cd "$WORK" && "${RUN[@]}" "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1) || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Throwaway cluster: trust auth, reachable only via 127.0.0.1 and a socket in $WORK.
(cd "$WORK" && "${RUN[@]}" "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1) \
  || { cat "$WORK/initdb.log" >&2; exit 1; }
(cd "$WORK" && "${RUN[@]}" "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$WORK/postgres.log" -w -t 60 start -o \
  "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK -c unix_socket_permissions=0777 \
   -c shared_buffers=1GB -c max_connections=200 \
   -c fsync=on -c synchronous_commit=on -c full_page_writes=on" >/dev/null) \
  || { cat "$WORK/postgres.log" >&2; exit 1; }

CONN=(-h "$WORK" -p "$PG_PORT" -U postgres)
KEY=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')    # pgp passphrase
BKEY=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')   # blind-index HMAC key
psql_() { "$PGBIN/psql" "${CONN[@]}" -X -q -v ON_ERROR_STOP=1 -v key="$KEY" -v bkey="$BKEY" "$@" postgres; }
now() { date +%s.%N; }

psql_ <<'SQL'
CREATE EXTENSION pgcrypto;
CREATE TABLE patients (
  id bigserial PRIMARY KEY,
  gender text,
  active bool,
  patient_id_enc bytea,
  family_enc bytea,
  given_enc bytea,
  birth_date_enc bytea,
  ssn_enc bytea,
  phone_enc bytea,
  address_enc bytea,
  note_enc bytea,
  patient_id_bidx bytea,   -- hmac(lower(patient_id), bkey, 'sha256')
  family_bidx bytea        -- hmac(lower(family), bkey, 'sha256')
);
CREATE INDEX patients_patient_id_bidx ON patients (patient_id_bidx);
CREATE INDEX patients_family_bidx ON patients (family_bidx);
SQL

# Plaintext for row g (~2 KiB): address ~200 B, clinical note ~1.7 KiB of
# md5 words; family names from 5000 distinct values. Used by the population.
plain_sql() { # $1 = row count
  cat <<SQL
SELECT g,
  (ARRAY['male','female','other','unknown'])[1 + g % 4] AS gender,
  g % 10 <> 0 AS active,
  'P' || g AS pid,
  'Family' || lpad((g % 5000)::text, 4, '0') AS fam,
  (ARRAY['Anna','Ben','Chloe','David','Emma','Farid','Grace','Hiro','Ines','Jonas'])[1 + g % 10] AS given,
  (date '1930-01-01' + (random() * 32000)::int)::text AS bd,
  lpad((random() * 999)::int::text, 3, '0') || '-' || lpad((random() * 99)::int::text, 2, '0') || '-' || lpad((random() * 9999)::int::text, 4, '0') AS ssn,
  '+1-555-' || lpad((random() * 9999999)::int::text, 7, '0') AS phone,
  (1 + (random() * 9998)::int) || ' ' || (SELECT string_agg(md5(random()::text || g || s), ' ') FROM generate_series(1, 5) s) || ' Street, Springfield, IL 62701' AS addr,
  (SELECT string_agg(md5(random()::text || g || s), ' ') FROM generate_series(1, 52) s) AS note
FROM generate_series(1, $1) g
SQL
}
enc_cols() { # $1 = ", 'options'" or ""
  local o=$1
  echo "pgp_sym_encrypt(v.pid, :'key'$o) AS patient_id_enc, pgp_sym_encrypt(v.fam, :'key'$o) AS family_enc,
  pgp_sym_encrypt(v.given, :'key'$o) AS given_enc, pgp_sym_encrypt(v.bd, :'key'$o) AS birth_date_enc,
  pgp_sym_encrypt(v.ssn, :'key'$o) AS ssn_enc, pgp_sym_encrypt(v.phone, :'key'$o) AS phone_enc,
  pgp_sym_encrypt(v.addr, :'key'$o) AS address_enc, pgp_sym_encrypt(v.note, :'key'$o) AS note_enc"
}
ENC="patient_id_enc, family_enc, given_enc, birth_date_enc, ssn_enc, phone_enc, address_enc, note_enc"
COLS="id, gender, active, $ENC, patient_id_bidx, family_bidx"

# Populate ROWS rows (ids 1..ROWS) with the peer's options; prints elapsed s.
populate() { # $1 = peer
  local peer=$1 t0 t1
  psql_ -c "TRUNCATE patients RESTART IDENTITY"
  t0=$(now)
  if [ "$peer" = pgcrypto-tuned ]; then
    psql_ <<SQL
INSERT INTO patients ($COLS)
SELECT v.g, v.gender, v.active, $(enc_cols ", '$TUNED_OPTS'"),
  hmac(lower(v.pid), :'bkey', 'sha256'), hmac(lower(v.fam), :'bkey', 'sha256')
FROM ($(plain_sql "$ROWS")) v;
SQL
  else
    psql_ <<SQL
CREATE UNLOGGED TABLE pool AS
SELECT v.g AS n, $(enc_cols "")
FROM ($(plain_sql "$POOL")) v;
INSERT INTO patients ($COLS)
SELECT g, (ARRAY['male','female','other','unknown'])[1 + g % 4], g % 10 <> 0, $ENC,
  hmac(lower('P' || g), :'bkey', 'sha256'),
  hmac(lower('Family' || lpad((g % 5000)::text, 4, '0')), :'bkey', 'sha256')
FROM generate_series(1, $ROWS) g JOIN pool ON pool.n = (g - 1) % $POOL + 1;
DROP TABLE pool;
SQL
  fi
  psql_ -c "SELECT setval('patients_id_seq', $ROWS)" >/dev/null
  t1=$(now)
  psql_ -c "VACUUM ANALYZE patients" -c "CHECKPOINT"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }'
}

# pgbench scripts. -M prepared: :key/:bkey/:id are bind parameters, as an
# application would send them. The key is a pgbench variable (-D).
write_scripts() { # $1 = ", 'options'" or ""
  local o=$1
  cat >"$WORK/insert.sql" <<SQL
\set n random(1, 2000000000)
\set f random(0, 4999)
\set gi random(1, 4)
\set a random(0, 9)
INSERT INTO patients (gender, active, $ENC, patient_id_bidx, family_bidx)
SELECT v.gender, v.active,
  pgp_sym_encrypt(v.pid, :key$o), pgp_sym_encrypt(v.fam, :key$o), pgp_sym_encrypt(v.given, :key$o),
  pgp_sym_encrypt(v.bd, :key$o), pgp_sym_encrypt(v.ssn, :key$o), pgp_sym_encrypt(v.phone, :key$o),
  pgp_sym_encrypt(v.addr, :key$o), pgp_sym_encrypt(v.note, :key$o),
  hmac(lower(v.pid), :bkey, 'sha256'), hmac(lower(v.fam), :bkey, 'sha256')
FROM (SELECT
  (ARRAY['male','female','other','unknown'])[:gi::int] AS gender,
  :a::int <> 0 AS active,
  'N' || :n::text || '-' || substr(md5(random()::text), 1, 8) AS pid,
  'Family' || lpad(:f::text, 4, '0') AS fam,
  initcap(substr(md5(random()::text), 1, 7)) AS given,
  (date '1930-01-01' + (random() * 32000)::int)::text AS bd,
  lpad((random() * 999)::int::text, 3, '0') || '-' || lpad((random() * 99)::int::text, 2, '0') || '-' || lpad((random() * 9999)::int::text, 4, '0') AS ssn,
  '+1-555-' || lpad((random() * 9999999)::int::text, 7, '0') AS phone,
  (1 + (random() * 9998)::int) || ' ' || (SELECT string_agg(md5(random()::text), ' ') FROM generate_series(1, 5)) || ' Street, Springfield, IL 62701' AS addr,
  (SELECT string_agg(md5(random()::text), ' ') FROM generate_series(1, 52)) AS note) v;
SQL
  local dec="id, gender, active,
  pgp_sym_decrypt(patient_id_enc, :key), pgp_sym_decrypt(family_enc, :key), pgp_sym_decrypt(given_enc, :key),
  pgp_sym_decrypt(birth_date_enc, :key), pgp_sym_decrypt(ssn_enc, :key), pgp_sym_decrypt(phone_enc, :key),
  pgp_sym_decrypt(address_enc, :key), pgp_sym_decrypt(note_enc, :key)"
  cat >"$WORK/get.sql" <<SQL
\set id random(1, $ROWS)
SELECT $dec
FROM patients WHERE id = :id::bigint;
SQL
  cat >"$WORK/search.sql" <<SQL
\set id random(1, $ROWS)
SELECT $dec
FROM patients WHERE patient_id_bidx = hmac(lower('P' || :id::text), :bkey, 'sha256');
SQL
}

RESULTS=()
run_pgbench() { # $1 = peer, $2 = op
  local peer=$1 op=$2 out tps lat fail
  if ! out=$("$PGBIN/pgbench" "${CONN[@]}" -n -M prepared -c "$CONNS" -j 2 -T "$SECS" \
      -D key="$KEY" -D bkey="$BKEY" -f "$WORK/$op.sql" postgres 2>&1); then
    echo "pgbench $peer/$op failed:" >&2; echo "$out" >&2; exit 1
  fi
  tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' <<<"$out")
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$out")
  fail=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  [ -n "$tps" ] || { echo "could not parse pgbench output for $peer/$op:" >&2; echo "$out" >&2; exit 1; }
  if [ "${fail:-0}" != 0 ]; then echo "pgbench $peer/$op: $fail failed transactions" >&2; echo "$out" >&2; exit 1; fi
  printf '{"peer":"%s","op":"%s","per_s":%.1f,"lat_ms":%s,"conns":%d,"secs":%d,"rows":%d}\n' \
    "$peer" "$op" "$tps" "${lat:-null}" "$CONNS" "$SECS" "$ROWS"
  RESULTS+=("$peer $op $tps $lat")
}

# Per-call cost, one session, short values: how much of a transaction is KDF.
percall() {
  psql_ -At <<'SQL'
SELECT set_config('pv.key', :'key', false) \g /dev/null
CREATE TEMP TABLE cost (mode text, op text, us float8);
DO $$
DECLARE t timestamptz; o text; m text; i int; n int := 400; msgs bytea[]; k text := current_setting('pv.key');
BEGIN
  FOREACH o IN ARRAY ARRAY['', 'cipher-algo=aes256, s2k-mode=1'] LOOP
    m := CASE o WHEN '' THEN 'pgcrypto-default' ELSE 'pgcrypto-tuned' END;
    msgs := '{}';
    t := clock_timestamp();
    FOR i IN 1..n LOOP msgs := msgs || pgp_sym_encrypt(md5(i::text), k, o); END LOOP;
    INSERT INTO cost VALUES (m, 'pgp_sym_encrypt', extract(epoch FROM clock_timestamp() - t) * 1e6 / n);
    t := clock_timestamp();
    FOR i IN 1..n LOOP PERFORM pgp_sym_decrypt(msgs[i], k); END LOOP;
    INSERT INTO cost VALUES (m, 'pgp_sym_decrypt', extract(epoch FROM clock_timestamp() - t) * 1e6 / n);
  END LOOP;
  t := clock_timestamp();
  FOR i IN 1..n LOOP PERFORM hmac(md5(i::text), k, 'sha256'); END LOOP;
  INSERT INTO cost VALUES ('both', 'hmac-sha256', extract(epoch FROM clock_timestamp() - t) * 1e6 / n);
END $$;
SELECT format('# per-call (1 session, 32-byte value): %s %s %s us', mode, op, round(us::numeric, 1)) FROM cost;
SQL
}
percall

declare -A POP
for peer in pgcrypto-default pgcrypto-tuned; do
  pop=$(populate "$peer")
  POP[$peer]=$pop
  if [ "$peer" = pgcrypto-tuned ]; then
    echo "# $peer: populated $ROWS rows (8 x pgp_sym_encrypt + 2 x hmac each, 1 session) in ${pop} s"
    write_scripts ", '$TUNED_OPTS'"
  else
    echo "# $peer: populated $ROWS rows in ${pop} s ($POOL distinct default-mode ciphertext sets reused cyclically)"
    write_scripts ""
  fi
  # Sanity: a blind-index lookup finds exactly one row and decrypts it.
  chk=$(psql_ -At <<<"SELECT count(*), min(octet_length(pgp_sym_decrypt(note_enc, :'key'))) FROM patients
        WHERE patient_id_bidx = hmac(lower('P' || $(( (ROWS + 1) / 2 ))), :'bkey', 'sha256')")
  [ "${chk%%|*}" = 1 ] || { echo "sanity check failed for $peer: $chk" >&2; exit 1; }
  if [ "$peer" = pgcrypto-default ]; then
    echo "# plaintext per row: $(psql_ -At <<<"SELECT round(avg(
      octet_length(pgp_sym_decrypt(patient_id_enc, :'key')) + octet_length(pgp_sym_decrypt(family_enc, :'key')) +
      octet_length(pgp_sym_decrypt(given_enc, :'key')) + octet_length(pgp_sym_decrypt(birth_date_enc, :'key')) +
      octet_length(pgp_sym_decrypt(ssn_enc, :'key')) + octet_length(pgp_sym_decrypt(phone_enc, :'key')) +
      octet_length(pgp_sym_decrypt(address_enc, :'key')) + octet_length(pgp_sym_decrypt(note_enc, :'key'))))
      FROM patients WHERE id <= 50") bytes avg in 8 encrypted fields;" \
      "table+toast+indexes $(psql_ -At -c "SELECT pg_size_pretty(pg_total_relation_size('patients'))")"
  fi
  # Reads are measured from a warm page cache, as phivault's are
  # (scripts/bench-records.sh): this VM's DAMON pages out file pages left
  # unused for a minute, so a table populated minutes ago is partly on disk.
  find "$PGDATA_DIR" -type f -exec cat {} + >/dev/null
  for op in get search insert; do run_pgbench "$peer" "$op"; done
done

# Markdown summary.
echo
echo "PostgreSQL $("$PGBIN/postgres" -V | awk '{print $3}') + pgcrypto, pgbench -M prepared -c $CONNS -j 2 -T $SECS, $ROWS pre-populated rows, fsync/synchronous_commit on"
echo
echo "| op | pgcrypto-default (tx/s) | pgcrypto-tuned (tx/s) |"
echo "|---|---:|---:|"
for op in insert get search; do
  d=""; t=""
  for r in "${RESULTS[@]}"; do
    read -r p o tps lat <<<"$r"
    [ "$o" = "$op" ] || continue
    cell=$(printf '%.0f (%.1f ms)' "$tps" "$lat")
    if [ "$p" = pgcrypto-default ]; then d=$cell; else t=$cell; fi
  done
  echo "| $op | $d | $t |"
done
echo "| populate $ROWS rows | ${POP[pgcrypto-default]} s (pool of $POOL) | ${POP[pgcrypto-tuned]} s |"
