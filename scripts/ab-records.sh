#!/usr/bin/env bash
# One records workload against one phivault binary, fresh data each time:
# how BENCHMARKS.md compares two builds through the server (run it with the
# old and the new binary in turn, a few rounds each, and compare the rps).
#
#   scripts/ab-records.sh /path/to/phivault get      # get | search | create | bulk
#   CONFIG='[audit]\\ninsecure_disable = true' scripts/ab-records.sh BINARY get
#
# About 50 000 records from an 8-second bulk fill, 64 mTLS connections,
# SECS (10) of load (CONNS: another connection count); prints "rps non_2xx
# errors". Needs the loadgen example built
# (cargo build --release -p phivault-server --example loadgen).
set -euo pipefail
PV=$(realpath "$1"); MODE=$2; PORT=${PORT:-18350}
cd "$(dirname "$0")/.."
LG=$PWD/target/release/examples/loadgen
# shellcheck source=scripts/records-fixture.sh
. scripts/records-fixture.sh
$LG "${LGA[@]}" "${ARGS[@]}" -c "${CONNS:-64}" -d "${SECS:-10}" | python3 -c "import json,sys;r=json.load(sys.stdin);print(round(r['rps']), r['non_2xx'], r['errors'])"
