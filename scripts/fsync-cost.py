#!/usr/bin/env python3
"""What one durable write costs on this machine's disk: wall time, the CPU
the calling process spends and the disk's write and flush requests, for
32 KB appends + fdatasync to a growing file, overwrites of a pre-zeroed one
+ fdatasync, and O_DIRECT | O_DSYNC overwrites (the audit trail's
group-commit journal). BENCHMARKS.md (audit trail) quotes it.

    python3 scripts/fsync-cost.py [DIR]     # default /var/tmp (a real disk, not tmpfs)
    python3 scripts/fsync-cost.py --settle [DIR]
    python3 scripts/fsync-cost.py --parallel [DIR]

--parallel asks whether overlapping group commits would shorten a
request's wait: 16 KB pwrite + fdatasync to one file from 1, 2 and 4
threads at once, 3 s each, commits per second and their p50/p99 latency
(if two commits in flight take little longer than one, a second writer
would pay off).

--settle asks whether a disk still busy with a large write slows the next
fsyncs (as `scripts/bench-audit.sh`'s on/off rounds follow its append test):
the latency of 300 appends of 20 KB, each fdatasync'd, when idle, then 0, 2,
5, 10 and 20 s after writing 1 GiB (fdatasync'd), dropping the page cache
(as root) and deleting it.
"""
import mmap
import os
import resource
import sys
import tempfile
import time

settle = "--settle" in sys.argv[1:]
parallel = "--parallel" in sys.argv[1:]
args = [a for a in sys.argv[1:] if a not in ("--settle", "--parallel")]
d = args[0] if args else "/var/tmp"


def dev_stat():
    """(write requests, flush requests) of the disk holding d, or None."""
    try:
        st = os.stat(d)
        name = os.path.basename(os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"))
        f = open(f"/sys/class/block/{name}/stat").read().split()
        return int(f[4]), int(f[15]) if len(f) > 15 else 0
    except OSError:
        return None


def bench(mode, n=1000, size=32768):
    """mode: append (+ fdatasync), prezero (overwrite written zeros +
    fdatasync), direct (O_DIRECT | O_DSYNC overwrite of written zeros, as
    the audit trail's group-commit journal does)."""
    fd, path = tempfile.mkstemp(dir=d)
    try:
        if mode != "append":
            os.write(fd, b"\0" * (n * size))
            os.fsync(fd)
            os.lseek(fd, 0, 0)
        if mode == "direct":
            os.close(fd)
            fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)
            buf = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT needs
            buf.write(b"x" * size)
        io0, r0, t0 = dev_stat(), resource.getrusage(resource.RUSAGE_SELF), time.time()
        for i in range(n):
            if mode == "direct":
                os.pwritev(fd, [buf], i * size)
            else:
                os.write(fd, b"x" * size)
                os.fdatasync(fd)
        el, r1, io1 = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF), dev_stat()
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        what = {"append": "append", "prezero": "overwrite, pre-zeroed", "direct": "O_DIRECT|O_DSYNC"}[mode]
        ios = ""
        if io0 and io1:
            ios = f", {(io1[0] - io0[0]) / n:.2f} writes + {(io1[1] - io0[1]) / n:.2f} flushes on the device"
        print(f"{what:22} {el / n * 1e3:.2f} ms per durable write, {cpu / n * 1e6:.0f} us CPU each{ios}")
    finally:
        os.close(fd)
        os.unlink(path)


def latency(n=300, size=20000):
    """ms per append + fdatasync, over n appends to a fresh file."""
    fd, path = tempfile.mkstemp(dir=d)
    try:
        t0 = time.time()
        for _ in range(n):
            os.write(fd, b"x" * size)
            os.fdatasync(fd)
        return (time.time() - t0) / n * 1e3
    finally:
        os.close(fd)
        os.unlink(path)


def overlapping(threads, secs=3, size=16384):
    """Commits/s and p50/p99 ms of pwrite + fdatasync from `threads` at once."""
    import threading

    fd, path = tempfile.mkstemp(dir=d)
    span = 256 << 20
    os.ftruncate(fd, span)
    os.fsync(fd)
    lock, state, lat = threading.Lock(), {"off": 0, "n": 0}, []
    stop = time.time() + secs
    buf = b"x" * size

    def writer():
        while time.time() < stop:
            with lock:
                off = state["off"] % (span - size)
                state["off"] += size
            t = time.perf_counter()
            os.pwrite(fd, buf, off)
            os.fdatasync(fd)
            dt = time.perf_counter() - t
            with lock:
                lat.append(dt)
                state["n"] += 1

    try:
        ts = [threading.Thread(target=writer) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    print(
        f"{threads} writer(s): {state['n'] / secs:.0f} commits/s, "
        f"p50 {lat[len(lat) // 2] * 1e3:.3f} ms, p99 {lat[int(len(lat) * 0.99)] * 1e3:.3f} ms"
    )


if parallel:
    for t in (1, 2, 4, 1, 2):
        overlapping(t)
elif settle:
    import shutil
    import subprocess

    print(f"idle: {latency():.3f} ms per 20 KB append + fdatasync")
    big = tempfile.mkdtemp(dir=d)
    for i in range(16):
        with open(f"{big}/f{i}", "wb") as f:
            for _ in range(64):
                f.write(os.urandom(1 << 20))
            f.flush()
            os.fdatasync(f.fileno())
    subprocess.run(["sync"], check=False)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
    except OSError:
        print("(not root: the page cache was not dropped)")
    shutil.rmtree(big)
    waited = 0
    for at in (0, 2, 5, 10, 20):
        time.sleep(at - waited)
        waited = at
        print(f"{at:2d} s after writing and deleting 1 GiB: {latency():.3f} ms")
else:
    for _ in range(2):
        for m in ("append", "prezero", "direct"):
            bench(m)
