#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS (default 60) each, starting
# from the committed seeds (fuzz/seeds/<target>). The toolchain here is
# stable, so RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags, and the
# targets run without a sanitizer (-s none): our code is
# #![forbid(unsafe_code)], so what we look for are panics, hangs and OOMs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O -s none
for t in $(cargo fuzz list); do
  mkdir -p "corpus/$t"
  echo "== fuzz $t for ${SECS}s"
  cargo fuzz run -O -s none "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 2>&1 | grep -E "^Done|ERROR|panicked|SUMMARY" || true
  # A crash leaves an artifact and a non-zero exit; fail loudly.
  if ls "artifacts/$t"/crash-* "artifacts/$t"/oom-* "artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "fuzz target $t found a failing input: fuzz/artifacts/$t"; exit 1
  fi
done
