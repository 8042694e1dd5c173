#!/usr/bin/env bash
# Audit trail benchmarks, for BENCHMARKS.md, in one run:
#  1. durable appends/s with group commit, and verification MB/s
#     (crates/phivault-audit/examples/audit_load.rs);
#  2. the server's transit encrypt throughput with the trail on and off
#     (audit.insecure_disable): two servers of the same build, both up for
#     the whole run, warmed up by one uncounted round each, then loaded
#     in turn (on, off, on, off, ...), ROUNDS times
#     at each of CONNS (connection counts); the median of the on/off
#     ratios per count is printed, because single runs on this shared
#     machine swing by ±10 %.
#
#   scripts/bench-audit.sh                 # ~5 min
#   SECS=8 ROUNDS=7 CONNS="256 512" scripts/bench-audit.sh
#   APPENDS=0 CONNS=512 scripts/bench-audit.sh   # the on/off rounds only
#   APPENDS=0 CPU=1 CONNS=512 scripts/bench-audit.sh
#       # and per round, µs per request: the machine busy and idle (from
#       # /proc/stat), the server's CPU and its voluntary thread switches
#   PERF_DIR=/tmp/p APPENDS=0 ...  # perf record -g of the server in each round
#   LG_EXTRA="--http2 --streams 64" CONNS=8 ...  # HTTP/2 instead
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-6}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64 256 512}
PORT_ON=${PORT_ON:-18210}
PORT_OFF=${PORT_OFF:-18211}
cargo build --release -q -p phivault-cli
cargo build --release -q -p phivault-server --example loadgen
cargo build --release -q -p phivault-audit --example audit_load
PV=target/release/phivault
LG=target/release/examples/loadgen

if [ "${APPENDS:-1}" = 1 ]; then
echo "== appends and verification"
AL=$(mktemp -d /var/tmp/pv-audit-load.XXXXXX)
AL64=$(mktemp -d /var/tmp/pv-audit-load64.XXXXXX)
target/release/examples/audit_load "$SECS" 2048 "$AL"
target/release/examples/audit_load "$SECS" 64 "$AL64"
rm -rf "$AL64"
# Verification from disk, not the page cache (needs root to drop caches).
if sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
  echo "verify, cold cache (phivault audit verify):"
  $PV --json audit verify --audit-dir "$AL" | python3 -c "import json,sys;r=json.load(sys.stdin);print(f\"{r['entries']} entries, {r['bytes']/1e6:.0f} MB in {r['seconds']:.2f}s = {r['bytes']/1e6/r['seconds']:.0f} MB/s, ok={r['ok']}\")"
fi
rm -rf "$AL"
fi

WORK=$(mktemp -d /var/tmp/pv-bench-audit.XXXXXX)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
python3 -c "import base64,json,os;print(json.dumps({'plaintext':base64.b64encode(os.urandom(1024)).decode()}))" >"$WORK/enc1k.json"

serve() { # $1 = on|off, $2 = port. The data dirs are on the real disk.
  local d=$WORK/data-$1
  cat >"$WORK/$1.toml" <<TOML
[server]
max_connections_per_ip = 4096
[audit]
insecure_disable = $([ "$1" = off ] && echo true || echo false)
TOML
  $PV --config "$WORK/$1.toml" --data-dir "$d" -q serve --dev --listen 127.0.0.1:$2 --log error >"$WORK/$1.out" 2>"$WORK/$1.err" &
  PIDS+=($!)
  SPID[$1]=$!
  for _ in $(seq 100); do curl -sf --cacert "$d/ca/ca.pem" "https://127.0.0.1:$2/v1/sys/health" >/dev/null && break; sleep 0.2; done
}
declare -A SPID
serve on "$PORT_ON"
serve off "$PORT_OFF"

# Jiffies: machine busy, machine idle (+ iowait), server CPU; and the
# server's voluntary thread switches.
counters() {
  awk 'NR==1{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat
  awk '{print $14+$15}' "/proc/$1/stat"
  cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/{s+=$2} END{print s}'
}

measure() { # $1 = on|off, $2 = connections; prints req/s
  local d=$WORK/data-$1 port before after rps perf_pid=
  if [ "$1" = on ]; then port=$PORT_ON; else port=$PORT_OFF; fi
  before=$(counters "${SPID[$1]}" | tr '\n' ' ')
  if [ -n "${PERF_DIR:-}" ]; then
    mkdir -p "$PERF_DIR"
    perf record -q -g -F 1999 -p "${SPID[$1]}" -o "$PERF_DIR/$1-$2-$(date +%s).data" -- sleep $((SECS - 1)) >/dev/null 2>&1 &
    perf_pid=$!
  fi
  # shellcheck disable=SC2086
  rps=$("$LG" --ca "$d/ca/ca.pem" --cert "$d/clients/admin.pem" --key "$d/clients/admin.key" \
    --addr 127.0.0.1:$port --path /v1/transit/encrypt/billing --body-file "$WORK/enc1k.json" -c "$2" -d "$SECS" ${LG_EXTRA:-} \
    | tee -a "$WORK/runs.jsonl" | python3 -c "import json,sys;print(round(json.load(sys.stdin)['rps']))")
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  after=$(counters "${SPID[$1]}" | tr '\n' ' ')
  if [ "${CPU:-0}" = 1 ]; then
    python3 - "$1" "$rps" "$SECS" "$(getconf CLK_TCK)" $before $after >&2 <<'PY'
import sys
mode, rps, secs, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
b = list(map(float, sys.argv[5:9])); a = list(map(float, sys.argv[9:13]))
n = rps * secs
us = lambda i: (a[i] - b[i]) / hz * 1e6 / n
print(f"    {mode:3} {rps:7.0f} req/s: machine busy {us(0):.1f} µs/req, idle {us(1):.1f}; server {us(2):.1f}; {(a[3] - b[3]) / n:.3f} voluntary switches/req")
PY
  fi
  echo "$rps"
}

# One round on each server first, not counted: the first seconds of a
# fresh server (connection set-up, allocator and page-cache warm-up, the
# trail's first segment blocks) run measurably slower than the rest.
for m in on off; do measure $m 256 >/dev/null; done

echo "== transit encrypt 1 KiB, audit on vs off ($ROUNDS alternating rounds of ${SECS}s per connection count)"
for c in $CONNS; do
  ratios=()
  for r in $(seq "$ROUNDS"); do
    on=$(measure on "$c"); off=$(measure off "$c")
    ratio=$(python3 -c "print(f'{$on/$off:.3f}')")
    ratios+=("$ratio")
    echo "  $c connections, round $r: on $on, off $off req/s, ratio $ratio"
  done
  python3 -c "import statistics,sys;r=sorted(map(float,sys.argv[1:]));print(f'  {$c} connections: median on/off {statistics.median(r):.3f} (min {r[0]:.3f}, max {r[-1]:.3f})')" "${ratios[@]}"
done
