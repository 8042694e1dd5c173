#!/usr/bin/env bash
# The PHI scanner's figures for BENCHMARKS.md:
#  1. precision and recall per type on the labelled synthetic corpus
#     (crates/phivault-scan/src/phi/corpus.rs, seed 20240229), scale
#     PHI_CORPUS_SCALE (default 10, about 10 MB);
#  2. throughput of the release `phivault scan phi` over a larger corpus,
#     scale PHI_BENCH_SCALE (default 100, about 100 MB), all cores.
# The corpus is made up; no real PHI is involved.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${PHI_CORPUS_SCALE:-10}
BIG=${PHI_BENCH_SCALE:-100}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo build -q --release -p phivault-cli
echo "== precision and recall (scale $SCALE)"
PHI_CORPUS_SCALE=$SCALE cargo test -q --release -p phivault-scan --test phi_corpus -- \
  --ignored --nocapture full_table 2>&1 | grep -E '^(\||corpus:)'

echo "== throughput (scale $BIG)"
PHI_CORPUS_SCALE=$BIG PHI_CORPUS_DIR="$WORK/corpus" cargo test -q --release -p phivault-scan \
  --test phi_corpus -- --ignored --nocapture full_table 2>&1 | grep -E '^corpus:'
BYTES=$(du -sb "$WORK/corpus" | cut -f1)
# Warm the page cache so the figure is the scanner's, not the disk's.
cat "$WORK"/corpus/* > /dev/null
for run in 1 2 3; do
  T0=$(date +%s.%N)
  set +e
  target/release/phivault -q --json scan phi "$WORK/corpus" > "$WORK/out.json"
  CODE=$?
  set -e
  T1=$(date +%s.%N)
  [ "$CODE" = 10 ] || { echo "expected exit 10 (PHI found), got $CODE"; exit 1; }
  python3 - "$BYTES" "$T0" "$T1" "$WORK/out.json" "$run" <<'PY'
import json, sys
b, t0, t1, out, run = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
r = json.load(open(out))
s = t1 - t0
print(f"run {run}: {b/1e6:.1f} MB in {s:.2f} s = {b/1e6/s:.1f} MB/s; {r['files_scanned']} files, {r['total_hits']} hits")
PY
done
