#!/usr/bin/env bash
# Frames written to the WALs per record created, by B-tree: fills the bench
# collection (scripts/records-fixture.sh, FILL_SECS), creates one record per
# request for SECS seconds on 64 mTLS connections, kills the server with
# SIGKILL so that its WALs keep their frames, and counts them
# (scripts/wal-frames.py). For BENCHMARKS.md's notes on where a create's
# writes go.
#
#   FILL_SECS=110 scripts/wal-frames.sh     # about 750 000 records first
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-2}
PORT=${PORT:-18360}
MODE=create
# shellcheck source=scripts/records-fixture.sh
. scripts/records-fixture.sh
echo "# $(python3 -c "import sqlite3; print(sqlite3.connect('file:$D/records.db?mode=ro', uri=True).execute('select count(*) from records').fetchone()[0])") records after the fill"
# A clean restart: the fill's frames are checkpointed away, so the WALs
# start empty.
kill "$PID"; wait "$PID" 2>/dev/null || true
$PV --data-dir "$D" -q serve --dev --listen "127.0.0.1:$PORT" --log warn >/dev/null 2>>"$W/err" &
PID=$!
for _ in $(seq 150); do curl -sf --cacert "$D/ca/ca.pem" "https://127.0.0.1:$PORT/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.2; done
OUT=$($LG "${LGA[@]}" "${ARGS[@]}" -c 64 -d "$SECS")
echo "# load: $OUT"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true
python3 scripts/wal-frames.py "$D"
