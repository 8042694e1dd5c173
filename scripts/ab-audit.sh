#!/usr/bin/env bash
# Audit trail configurations side by side: one `phivault serve --dev` per
# variant (each with its own [audit] TOML lines) plus one with the trail
# off, all up for the whole run, loaded in turn with transit encrypt of
# 1 KiB (the order rotates every round), ROUNDS rounds of SECS at CONNS
# connections; prints each round and, per variant, the median of its
# req/s ÷ the off server's in the same round. How BENCHMARKS.md compares
# audit settings (the journal, group-commit bounds) on this noisy machine.
#
#   scripts/ab-audit.sh 'journal_bytes = 0' ''          # without vs with the journal
#   CONNS=64 ROUNDS=6 SECS=4 scripts/ab-audit.sh 'group_commit_delay_us = 6000' ''
#   PV=/path/to/other/phivault scripts/ab-audit.sh ...  # another build
#   DETAIL=1 scripts/ab-audit.sh ''             # also, per load (on stderr): the
#       # machine's idle share (/proc/stat) and the server's group commits
#       # (phivault_audit_* metrics): entries per commit, commits/s
#   scripts/ab-audit.sh '@/tmp/old/phivault' ''        # two builds, each with the default [audit]
# A variant that starts with @PATH runs that binary (the rest of it, after
# a space, is its [audit] lines); the others and the off server run $PV.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}; ROUNDS=${ROUNDS:-10}; CONNS=${CONNS:-512}
if [ -z "${PV:-}" ]; then cargo build --release -q -p phivault-cli; PV=target/release/phivault; fi
cargo build --release -q -p phivault-server --example loadgen
LG=target/release/examples/loadgen
W=$(mktemp -d /var/tmp/pv-ab-audit.XXXXXX)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
python3 -c "import base64,json,os;print(json.dumps({'plaintext':base64.b64encode(os.urandom(1024)).decode()}))" >"$W/enc1k.json"
NAMES=(); i=0
for v in "$@" "insecure_disable = true"; do
  n=v$i; NAMES+=("$n"); port=$((18400 + i)); i=$((i + 1))
  bin=$PV
  if [[ $v == @* ]]; then bin=${v%% *}; bin=${bin#@}; if [[ $v == *" "* ]]; then v=${v#* }; else v=; fi; fi
  printf '[server]\nmax_connections_per_ip = 4096\n[audit]\n%s\n' "$v" >"$W/$n.toml"
  echo "$n: $bin, [audit] ${v:-(defaults)}"
  $bin --config "$W/$n.toml" --data-dir "$W/$n" -q serve --dev --listen 127.0.0.1:$port --log error >"$W/$n.out" 2>"$W/$n.err" &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf --cacert "$W/$n/ca/ca.pem" "https://127.0.0.1:$port/v1/sys/health" >/dev/null && break; sleep 0.2; done
done
k=${#NAMES[@]}
cpu() { awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; }
commits() { # $1 = index: "entries group_commits" from the server's metrics
  local n=${NAMES[$1]}
  curl -s --cacert "$W/$n/ca/ca.pem" --cert "$W/$n/clients/admin.pem" --key "$W/$n/clients/admin.key" \
    "https://127.0.0.1:$((18400 + $1))/v1/sys/metrics" \
    | awk '/^phivault_audit_entries /{e=$2} /^phivault_audit_group_commits /{g=$2} END{print e + 0, g + 0}'
}
load() { # $1 = index, $2 = conns, $3 = secs
  local n=${NAMES[$1]} c0 m0 rps
  [ -z "${DETAIL:-}" ] || { c0=$(cpu); m0=$(commits "$1"); }
  rps=$($LG --ca "$W/$n/ca/ca.pem" --cert "$W/$n/clients/admin.pem" --key "$W/$n/clients/admin.key" \
    --addr 127.0.0.1:$((18400 + $1)) --path /v1/transit/encrypt/billing --body-file "$W/enc1k.json" -c "$2" -d "$3" \
    | python3 -c "import json,sys;print(round(json.load(sys.stdin)['rps']))")
  if [ -n "${DETAIL:-}" ]; then
    python3 -c "
import sys
i0, t0, i1, t1, e0, g0, e1, g1, secs = map(float, sys.argv[2:11])
g = g1 - g0
print(f'  {sys.argv[1]}: {sys.argv[11]} req/s, machine idle {100 * (i1 - i0) / (t1 - t0):.1f} %' +
      (f', {(e1 - e0) / g:.1f} entries per group commit, {g / secs:.0f} commits/s' if g else ''))" \
      "$n" $c0 $(cpu) $m0 $(commits "$1") "$3" "$rps" >&2
  fi
  echo "$rps"
}
for j in $(seq 0 $((k - 1))); do load "$j" 256 2 >/dev/null; done   # warm-up, not counted
declare -A R
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for j in $(seq 0 $((k - 1))); do x=$(( (j + r) % k )); R[$x,$r]=$(load "$x" "$CONNS" "$SECS"); done
  for j in $(seq 0 $((k - 1))); do line="$line ${NAMES[$j]}=${R[$j,$r]}"; done
  echo "$line"
done
off=$((k - 1))
for j in $(seq 0 $((off - 1))); do
  rs=(); for r in $(seq "$ROUNDS"); do rs+=("${R[$j,$r]}/${R[$off,$r]}"); done
  python3 -c "import statistics,sys;r=sorted(eval(x) for x in sys.argv[2:]);print(f'{sys.argv[1]} ÷ off at $CONNS connections: median {statistics.median(r):.3f} (min {r[0]:.3f}, max {r[-1]:.3f})')" "${NAMES[$j]}" "${rs[@]}"
done
