#!/usr/bin/env bash
# Profiles `phivault serve` under one records workload with perf, and
# prints per-thread CPU: how the optimisation notes in BENCHMARKS.md and
# the comments in crates/phivault-store/src/sqlite.rs were measured.
#
#   MODE=get scripts/profile-records.sh       # get | search | create | bulk
#   PERF=0 MODE=create scripts/profile-records.sh   # per-thread CPU only
#   CONFIG='[audit]\\ngroup_commit_delay_us = 2000' PERF_OUT=/tmp/get.perf MODE=get scripts/profile-records.sh
#
# A small collection (about 50 000 records from an 8-second bulk fill),
# 64 mTLS connections, 12 s of load; perf samples the server for 8 s.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-get}
PERF=${PERF:-1}
PORT=${PORT:-18300}
command -v perf >/dev/null || [ "$PERF" = 0 ] || { echo "perf is needed (apt-get install linux-perf), or PERF=0"; exit 2; }
# shellcheck source=scripts/records-fixture.sh
. scripts/records-fixture.sh
$LG "${LGA[@]}" "${ARGS[@]}" -c "${CONNS:-64}" -d 12 >"$W/lg.json" &
LGPID=$!
sleep 2
python3 - "$PID" <<'PY'
import os, sys, time
pid = sys.argv[1]
def snap():
    d = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            s = open(f"/proc/{pid}/task/{t}/stat").read()
            f = s[s.rindex(")") + 2:].split()
            d[t] = (s[s.index("(") + 1:s.rindex(")")], int(f[11]) + int(f[12]))
        except OSError:
            pass
    return d
a = snap(); time.sleep(3); b = snap()
hz = os.sysconf("SC_CLK_TCK")
print("# server threads, % of one core over 3 s:")
for t, (n, v) in sorted(b.items(), key=lambda x: -(x[1][1] - a.get(x[0], ("", 0))[1])):
    dv = v - a.get(t, ("", 0))[1]
    if dv:
        print(f"#   {t:>7} {n:<28} {100 * dv / hz / 3:6.1f}%")
PY
if [ "$PERF" = 1 ]; then
  # shellcheck disable=SC2086
  perf record ${PERF_OPTS:--F 999 -g} -p "$PID" -o "$W/perf.data" -- sleep 6 >/dev/null 2>&1
  [ -z "${PERF_OUT:-}" ] || cp "$W/perf.data" "$PERF_OUT"
fi
wait "$LGPID"
echo "# load: $(cat "$W/lg.json")"
if [ "$PERF" = 1 ]; then
  perf report -i "$W/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -40 | cut -c1-110
fi
