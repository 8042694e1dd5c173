#!/usr/bin/env python3
"""What one fdatasync costs on this machine's disk: wall time and the CPU
the calling process spends, for appends to a growing file and for
overwrites of a pre-zeroed one. BENCHMARKS.md (audit trail) quotes it.

    python3 scripts/fsync-cost.py [DIR]     # default /var/tmp (a real disk, not tmpfs)
"""
import os
import resource
import sys
import tempfile
import time

d = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp"


def bench(prezero, n=1000, size=40000):
    fd, path = tempfile.mkstemp(dir=d)
    try:
        if prezero:
            os.write(fd, b"\0" * (n * size))
            os.fsync(fd)
            os.lseek(fd, 0, 0)
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
        for _ in range(n):
            os.write(fd, b"x" * size)
            os.fdatasync(fd)
        el, r1 = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        what = "overwrite, pre-zeroed" if prezero else "append"
        print(f"{what:22} {el / n * 1e3:.2f} ms per fdatasync, {cpu / n * 1e6:.0f} us CPU each")
    finally:
        os.close(fd)
        os.unlink(path)


for _ in range(2):
    bench(False)
    bench(True)
