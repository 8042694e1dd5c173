#!/usr/bin/env bash
# phivault in one minute, on the embedded default, in dev mode: create a
# throwaway keystore, a key ring, encrypt a file, look at its header,
# decrypt it and compare. Nothing here is for real PHI (dev mode keeps the
# unseal key beside the data); production starts with `phivault init`
# (Shamir 3-of-5) and `phivault unseal`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p phivault-cli
PV="$PWD/target/release/phivault"
WORK=$(mktemp -d /tmp/phivault-quickstart.XXXXXX)
export PHIVAULT_DATA_DIR="$WORK/data" PHIVAULT_INSECURE_DEV=1
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$PV" status || true
step "$PV" init
step "$PV" keys create demo/records --max-age-days 90
printf 'patient,dob,diagnosis\nJane Doe,1970-01-01,J45.909\n' > "$WORK/sample.csv"
step "$PV" encrypt -k demo/records "$WORK/sample.csv" -o "$WORK/sample.csv.pv"
step "$PV" inspect "$WORK/sample.csv.pv"
step "$PV" decrypt "$WORK/sample.csv.pv" -o "$WORK/roundtrip.csv"
step cmp "$WORK/sample.csv" "$WORK/roundtrip.csv"
step "$PV" keys rotate demo/records
step "$PV" keys list --all
echo; echo "OK: encrypted, inspected and decrypted in $WORK"
