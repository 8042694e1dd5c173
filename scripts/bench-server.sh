#!/usr/bin/env bash
# Side-by-side HTTPS benchmarks: phivault serve vs nginx (Debian package),
# both under the same TLS profile (TLS 1.3/1.2, AES-GCM, P-256/P-384, mTLS
# with the same CA and server certificate), measured in one run by the same
# load generator (examples/loadgen.rs; wrk cannot present a client
# certificate). nginx returns a fixed 200: the ceiling for HTTPS request
# handling on this machine.
#
#   scripts/bench-server.sh            # all measurements, ~2 min + memory run
#   MEM_SECS=600 scripts/bench-server.sh   # the 10-minute flat-RSS run
#
# Prints JSON lines and a Markdown summary (paste into BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
CONNS=${CONNS:-64}
MEM_SECS=${MEM_SECS:-60}
PV_PORT=${PV_PORT:-18200}
NG_PORT=${NG_PORT:-18443}

command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null || apt-get install -y -qq nginx >/dev/null; }
cargo build --release -q -p phivault-cli
cargo build --release -q -p phivault-server --example loadgen
PV=target/release/phivault
LG=target/release/examples/loadgen

WORK=$(mktemp -d /tmp/pv-bench.XXXXXX)
cleanup() { kill "${PV_PID:-}" 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; }
trap cleanup EXIT
D=$WORK/data
$PV --data-dir "$D" -q serve --dev --listen 127.0.0.1:$PV_PORT --log warn >"$WORK/pv.out" 2>"$WORK/pv.err" &
PV_PID=$!
for _ in $(seq 50); do curl -sf --cacert "$D/ca/ca.pem" "https://127.0.0.1:$PV_PORT/v1/sys/health" >/dev/null && break; sleep 0.2; done

cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$NG_PORT ssl;
    ssl_certificate $D/tls/server.pem;
    ssl_certificate_key $D/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256;
    ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256;
    ssl_ecdh_curve prime256v1:secp384r1;
    ssl_client_certificate $D/ca/ca.pem;
    ssl_verify_client on;
    ssl_session_tickets on;
    add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
    location / { return 200 "ok"; }
  }
}
EOF
nginx -c "$WORK/nginx.conf"
sleep 0.5

C=(--ca "$D/ca/ca.pem" --cert "$D/clients/admin.pem" --key "$D/clients/admin.key")
python3 -c "import base64,json,os;print(json.dumps({'plaintext':base64.b64encode(os.urandom(1024)).decode()}))" >"$WORK/enc1k.json"
python3 -c "import base64,json,os;print(json.dumps({'batch_input':[{'plaintext':base64.b64encode(os.urandom(64)).decode()} for _ in range(1000)]}))" >"$WORK/batch.json"

run() { "$LG" "${C[@]}" "$@"; }
field() { python3 -c "import json,sys;print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

NG=$(run --addr 127.0.0.1:$NG_PORT --path / -c "$CONNS" -d "$SECS"); echo "nginx fixed 200:        $NG"
PVE=$(run --addr 127.0.0.1:$PV_PORT --path /v1/transit/encrypt/billing --body-file "$WORK/enc1k.json" -c "$CONNS" -d "$SECS"); echo "phivault encrypt 1 KiB: $PVE"
MAX=$(field "$PVE" rps)
HALF=$(python3 -c "print($MAX/2)")
PVH=$(run --addr 127.0.0.1:$PV_PORT --path /v1/transit/encrypt/billing --body-file "$WORK/enc1k.json" -c "$CONNS" -d "$SECS" --rate "$HALF"); echo "phivault at half load:  $PVH"
PVB=$(run --addr 127.0.0.1:$PV_PORT --path /v1/transit/encrypt/billing --body-file "$WORK/batch.json" -c 4 -d "$SECS"); echo "phivault batch x1000:   $PVB"
NGH=$(run --addr 127.0.0.1:$NG_PORT --path / -c 16 -d "$SECS" --handshakes); echo "nginx handshakes:       $NGH"
PVHS=$(run --addr 127.0.0.1:$PV_PORT --path /v1/sys/health -c 16 -d "$SECS" --handshakes); echo "phivault handshakes:    $PVHS"

rss() { awk '/VmRSS/{print $2}' /proc/$PV_PID/status; }
RATE80=$(python3 -c "print($MAX*0.8)")
R0=$(rss)
run --addr 127.0.0.1:$PV_PORT --path /v1/transit/encrypt/billing --body-file "$WORK/enc1k.json" -c "$CONNS" -d "$MEM_SECS" --rate "$RATE80" >"$WORK/mem.json" &
LGP=$!
RSS_SAMPLES=()
for _ in $(seq $((MEM_SECS / 5))); do sleep 5; RSS_SAMPLES+=("$(rss)"); done
wait $LGP
echo "memory run: $(cat "$WORK/mem.json")"
echo "RSS kB before: $R0; samples every 5 s: ${RSS_SAMPLES[*]}"

python3 - "$NG" "$PVE" "$PVH" "$PVB" "$NGH" "$PVHS" "$R0" "${RSS_SAMPLES[*]}" "$MEM_SECS" <<'EOF'
import json, sys
ng, pve, pvh, pvb, ngh, pvhs = (json.loads(x) for x in sys.argv[1:7])
r0 = int(sys.argv[7]); samples = [int(x) for x in sys.argv[8].split()]; mem_secs = sys.argv[9]
first, last = samples[len(samples)//10] if samples else r0, samples[-1] if samples else r0
print()
print("| measurement | phivault | nginx | ratio | target |")
print("|---|---|---|---|---|")
print(f"| encrypt 1 KiB vs fixed 200, req/s | {pve['rps']:.0f} | {ng['rps']:.0f} | {pve['rps']/ng['rps']:.2f}x | >= 0.6x |")
print(f"| encrypt 1 KiB p99 at half load ({pvh['rate']:.0f} req/s) | {pvh['p99_ms']:.2f} ms | | | < 5 ms |")
print(f"| batch encrypt, items/s (1000/request) | {pvb['rps']*1000:.0f} | | | >= 500000 |")
print(f"| full handshakes/s (mTLS, no resumption) | {pvhs['rps']:.0f} | {ngh['rps']:.0f} | {pvhs['rps']/ngh['rps']:.2f}x | >= 0.8x |")
print(f"| RSS over {mem_secs} s at 80% load (kB): start, 10% in, end, max | {r0}, {first}, {last}, {max(samples or [r0])} | | | flat |")
EOF
