#!/usr/bin/env bash
# Audit trail benchmarks, for BENCHMARKS.md, in one run:
#  1. durable appends/s with group commit, and verification MB/s
#     (crates/phivault-audit/examples/audit_load.rs);
#  2. the server's transit encrypt throughput with the trail on and off
#     (audit.insecure_disable), same build, same machine, alternating
#     runs, at 64 connections and at CONNS_HIGH connections.
#
#   scripts/bench-audit.sh                 # ~2 min
#   SECS=20 ROUNDS=3 scripts/bench-audit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-2}
CONNS_HIGH=${CONNS_HIGH:-512}
PORT_ON=${PORT_ON:-18210}
PORT_OFF=${PORT_OFF:-18211}
cargo build --release -q -p phivault-cli
cargo build --release -q -p phivault-server --example loadgen
cargo build --release -q -p phivault-audit --example audit_load
PV=target/release/phivault
LG=target/release/examples/loadgen

echo "== appends and verification"
AL=$(mktemp -d /var/tmp/pv-audit-load.XXXXXX)
target/release/examples/audit_load "$SECS" 2048 "$AL"
target/release/examples/audit_load "$SECS" 64 "$(mktemp -d /var/tmp/pv-audit-load64.XXXXXX)"
# Verification from disk, not the page cache (needs root to drop caches).
if sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
  echo "verify, cold cache (phivault audit verify):"
  $PV --json audit verify --audit-dir "$AL" | python3 -c "import json,sys;r=json.load(sys.stdin);print(f\"{r['entries']} entries, {r['bytes']/1e6:.0f} MB in {r['seconds']:.2f}s = {r['bytes']/1e6/r['seconds']:.0f} MB/s, ok={r['ok']}\")"
fi
rm -rf "$AL"

WORK=$(mktemp -d /tmp/pv-bench-audit.XXXXXX)
cleanup() { kill "${PID:-}" 2>/dev/null || true; }
trap cleanup EXIT
python3 -c "import base64,json,os;print(json.dumps({'plaintext':base64.b64encode(os.urandom(1024)).decode()}))" >"$WORK/enc1k.json"

serve() { # $1 = on|off; sets D, PORT, PID
  D=$WORK/data-$1
  if [ "$1" = on ]; then PORT=$PORT_ON; else PORT=$PORT_OFF; fi
  cat >"$WORK/$1.toml" <<TOML
[server]
max_connections_per_ip = 4096
[audit]
insecure_disable = $([ "$1" = off ] && echo true || echo false)
TOML
  $PV --config "$WORK/$1.toml" --data-dir "$D" -q serve --dev --listen 127.0.0.1:$PORT --log error >"$WORK/$1.out" 2>"$WORK/$1.err" &
  PID=$!
  for _ in $(seq 100); do curl -sf --cacert "$D/ca/ca.pem" "https://127.0.0.1:$PORT/v1/sys/health" >/dev/null && break; sleep 0.2; done
}

measure() { # $1 = on|off, $2 = connections
  serve "$1"
  R=$("$LG" --ca "$D/ca/ca.pem" --cert "$D/clients/admin.pem" --key "$D/clients/admin.key" \
      --addr 127.0.0.1:$PORT --path /v1/transit/encrypt/billing --body-file "$WORK/enc1k.json" -c "$2" -d "$SECS")
  kill "$PID"; wait "$PID" 2>/dev/null || true
  echo "audit $1, $2 connections: $R"
}

echo "== transit encrypt 1 KiB, audit on vs off"
for r in $(seq "$ROUNDS"); do
  for c in 64 "$CONNS_HIGH"; do
    measure on "$c"
    measure off "$c"
  done
done
