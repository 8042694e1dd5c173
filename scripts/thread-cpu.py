#!/usr/bin/env python3
"""CPU used by each thread name of a process over an interval, in cores
(from /proc/PID/task/*/stat): how BENCHMARKS.md splits the audit trail's
cost between the tokio workers and the audit writer.

    python3 scripts/thread-cpu.py PID SECONDS
"""
import os
import sys
import time

pid, secs = sys.argv[1], float(sys.argv[2])


def snap():
    d = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            s = open(f"/proc/{pid}/task/{t}/stat").read()
            comm = s[s.index("(") + 1 : s.rindex(")")]
            f = s[s.rindex(")") + 2 :].split()
            d[t] = (comm, int(f[11]) + int(f[12]))
        except OSError:
            pass
    return d


a = snap()
time.sleep(secs)
b = snap()
hz = os.sysconf("SC_CLK_TCK")
out = {}
for t, (c, v) in b.items():
    out[c] = out.get(c, 0) + (v - a.get(t, (c, v))[1]) / hz / secs
print(" ".join(f"{k}={v:.2f}" for k, v in sorted(out.items()) if v > 0.005))
