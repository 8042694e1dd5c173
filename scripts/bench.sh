#!/usr/bin/env bash
# Side-by-side benchmark: phivault's stream format against the AES-256-GCM
# ceiling of this machine (`openssl speed`), age and gpg, on the same 1 GiB
# file, in one run. Prints a Markdown table for BENCHMARKS.md.
#
#   scripts/bench.sh            # 1 GiB in /dev/shm, 5 runs each
#   SIZE_MB=256 RUNS=3 scripts/bench.sh
#
# Files live on tmpfs (/dev/shm) so that the disk is not what is measured;
# every tool reads and writes the same way (file in, file out).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-5}
DIR=${BENCH_DIR:-/dev/shm/phivault-bench}
need() { command -v "$1" >/dev/null || { echo "installing $2"; apt-get install -y -qq "$2" >/dev/null; }; }
need hyperfine hyperfine; need age age; need gpg gnupg; need openssl openssl

cargo build --release -q -p phivault-cli
PV="$PWD/target/release/phivault"
rm -rf "$DIR"; mkdir -p "$DIR"; trap 'rm -rf "$DIR"' EXIT
head -c $((SIZE_MB << 20)) /dev/urandom > "$DIR/in"
export PHIVAULT_DATA_DIR="$DIR/data" PHIVAULT_INSECURE_DEV=1
"$PV" -q init >/dev/null; "$PV" -q keys create bench/x >/dev/null
"$PV" -q encrypt -k bench/x "$DIR/in" -o "$DIR/in.pv"
age-keygen -o "$DIR/age.key" 2>/dev/null; AGE_PUB=$(age-keygen -y "$DIR/age.key")
age -r "$AGE_PUB" -o "$DIR/in.age" "$DIR/in"
export GNUPGHOME="$DIR/gnupg"; mkdir -m 700 "$GNUPGHOME"
GPG="gpg --batch --yes --quiet --pinentry-mode loopback --passphrase bench"
$GPG --symmetric --cipher-algo AES256 -z 0 -o "$DIR/in.gpg" "$DIR/in"

# The ceiling: AES-256-GCM on 16 KiB blocks, one core and two.
ceil1=$(openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3 2>/dev/null | awk '/^AES-256-GCM/ {sub("k","",$2); print $2*1000}')
ceil2=$(openssl speed -multi 2 -evp aes-256-gcm -bytes 16384 -seconds 3 2>/dev/null | awk '/^evp|^AES-256-GCM/ {v=$NF} END {sub("k","",v); print v*1000}')

hf() { # name command...
  local name=$1; shift
  hyperfine -N --warmup 1 --runs "$RUNS" --prepare "rm -f $DIR/out" --export-json "$DIR/$name.json" "$*" >/dev/null 2>&1
}
# Two output modes: /dev/null (the tool's own cost: read + crypto) and a
# file on tmpfs (adds the kernel's page allocation and copy, the same for
# every tool; `cp` shows that floor).
for mode in null file; do
  if [ $mode = null ]; then OUT=/dev/null; else OUT="$DIR/out"; fi
  hf ${mode}_pv_enc_1t  taskset -c 0 "$PV" -q encrypt -k bench/x --threads 1 "$DIR/in" -o $OUT
  hf ${mode}_pv_enc_2t  "$PV" -q encrypt -k bench/x --threads 2 "$DIR/in" -o $OUT
  hf ${mode}_pv_dec_1t  taskset -c 0 "$PV" -q decrypt --threads 1 "$DIR/in.pv" -o $OUT
  hf ${mode}_pv_dec_2t  "$PV" -q decrypt --threads 2 "$DIR/in.pv" -o $OUT
  hf ${mode}_age_enc    age -r "$AGE_PUB" -o $OUT "$DIR/in"
  hf ${mode}_age_dec    age -d -i "$DIR/age.key" -o $OUT "$DIR/in.age"
  hf ${mode}_gpg_enc    $GPG --symmetric --cipher-algo AES256 -z 0 -o $OUT "$DIR/in"
  hf ${mode}_gpg_dec    $GPG -d -o $OUT "$DIR/in.gpg"
  hf ${mode}_cp         cp "$DIR/in" $OUT
done
rss_enc=$( { /usr/bin/time -f %M "$PV" -q encrypt -k bench/x "$DIR/in" -o /dev/null; } 2>&1 | tail -1)
rss_dec=$( { /usr/bin/time -f %M "$PV" -q decrypt "$DIR/in.pv" -o /dev/null; } 2>&1 | tail -1)

python3 - "$DIR" "$SIZE_MB" "$ceil1" "$ceil2" "$rss_enc" "$rss_dec" <<'PY'
import json, sys, statistics
d, size_mb, c1, c2, rss_e, rss_d = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
nbytes = size_mb << 20
def med(n): return statistics.median(json.load(open(f"{d}/{n}.json"))["results"][0]["times"])
gbs = lambda t: nbytes / t / 1e9
rows = [("phivault encrypt, 1 core (taskset -c 0)", "pv_enc_1t"), ("phivault decrypt, 1 core (taskset -c 0)", "pv_dec_1t"),
        ("phivault encrypt, 2 threads", "pv_enc_2t"), ("phivault decrypt, 2 threads", "pv_dec_2t"),
        ("age 1.1.1 encrypt (X25519 recipient)", "age_enc"), ("age 1.1.1 decrypt", "age_dec"),
        ("gpg 2.2 --symmetric AES256 -z 0", "gpg_enc"), ("gpg 2.2 decrypt", "gpg_dec"), ("cp (no crypto: the I/O floor)", "cp")]
print(f"AES-256-GCM ceiling, `openssl speed -evp aes-256-gcm -bytes 16384`: {c1/1e9:.2f} GB/s on 1 core, {c2/1e9:.2f} GB/s with -multi 2\n")
for mode, title in [("null", "file → /dev/null"), ("file", "file → file, both on tmpfs")]:
    age = {"enc": gbs(med(f"{mode}_age_enc")), "dec": gbs(med(f"{mode}_age_dec"))}
    print(f"| {size_mb} MiB, {title} | median s | GB/s | × 1-core ceiling | × age |")
    print("|---|---:|---:|---:|---:|")
    for label, key in rows:
        t = med(f"{mode}_{key}"); g = gbs(t)
        kind = "dec" if "dec" in key else "enc"
        vs_age = "" if key == "cp" else f"{g/age[kind]:.2f}"
        print(f"| {label} | {t:.3f} | {g:.2f} | {g/(c1/1e9):.2f} | {vs_age} |")
    print()
print(f"phivault peak RSS (1 GiB-independent: constant buffers): encrypt {rss_e/1024:.1f} MiB, decrypt {rss_d/1024:.1f} MiB")
PY
