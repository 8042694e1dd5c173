#!/usr/bin/env python3
"""Which B-trees a records workload writes: reads the WAL files of a data
dir left by a killed server (every frame since the WAL's last reset) and
counts frames per table or index, per commit and per record.
BENCHMARKS.md (records) quotes it; scripts/wal-frames.sh runs it.

    python3 scripts/wal-frames.py DATA_DIR

The server's checkpointer resets a WAL now and then, so a WAL holds the
frames of its last few hundred commits, not of the whole run. The records
those commits wrote are counted from the frames themselves: the `records`
table's rowids only grow, so each commit's new rows are the rise in the
largest rowid on its `records` leaf pages (the first commit only sets the
base). `subject-keys.db` commits in the same groups, one key per record,
so its frames are divided by the same records-per-commit.

The WAL is read by hand (32-byte header, then 24-byte frame headers each
followed by a page; a frame belongs to this WAL generation when its salts
match the header's; a commit frame has a non-zero database size): Python's
sqlite3 reads pages through the WAL but does not list its frames. Pages are
named with SQLite's dbstat table after the WAL is read.
"""
import collections
import sqlite3
import struct
import sys

data = sys.argv[1]


def varint(b, i):
    """SQLite's big-endian varint at b[i]: (value, next index)."""
    v = 0
    for k in range(8):
        v = (v << 7) | (b[i + k] & 0x7F)
        if b[i + k] < 0x80:
            return v, i + k + 1
    return (v << 8) | b[i + 8], i + 9


def max_rowid(page):
    """The largest rowid on a table leaf page (type 13), or None."""
    if page[0] != 13:
        return None
    n = struct.unpack(">H", page[3:5])[0]
    best = None
    for c in range(n):
        off = struct.unpack(">H", page[8 + 2 * c : 10 + 2 * c])[0]
        _size, i = varint(page, off)
        rowid, _ = varint(page, i)
        best = rowid if best is None else max(best, rowid)
    return best


def frames(wal):
    """(page number, is a commit, page bytes) for each frame of the current
    generation."""
    with open(wal, "rb") as f:
        hdr = f.read(32)
        if len(hdr) < 32:
            return []
        _magic, _ver, page_size, _seq, s1, s2, _c1, _c2 = struct.unpack(">8I", hdr)
        out = []
        while True:
            fh = f.read(24)
            if len(fh) < 24:
                break
            pgno, db_size, f1, f2, _k1, _k2 = struct.unpack(">6I", fh)
            if (f1, f2) != (s1, s2):
                break
            out.append((pgno, db_size != 0, f.read(page_size)))
        return out


per_commit = {}
trees = {}
for name in ("records.db", "subject-keys.db"):
    fr = frames(f"{data}/{name}-wal")
    db = sqlite3.connect(f"file:{data}/{name}?mode=ro", uri=True)
    owner = dict(db.execute("SELECT pageno, name FROM dbstat"))
    # Whole commits only: from the first commit's end to the last one's.
    ends = [i for i, (_, c, _) in enumerate(fr) if c]
    if len(ends) < 2:
        sys.exit(f"{name}: fewer than two commits in its WAL; run longer")
    body = fr[ends[0] + 1 : ends[-1] + 1]
    commits = len(ends) - 1
    per_tree = collections.Counter(owner.get(pg, "(freelist or header)") for pg, _, _ in body)
    trees[name] = per_tree
    per_commit[name] = len(body) / commits
    if name == "records.db":
        top = None
        rows = 0
        for i, (pg, commit, page) in enumerate(fr[: ends[-1] + 1]):
            if owner.get(pg) == "records":
                r = max_rowid(page)
                if r is not None and (top is None or r > top):
                    if top is not None and i > ends[0]:
                        rows += r - top
                    top = r
        records_per_commit = rows / commits
    print(f"{name}: {commits} whole commits, {per_commit[name]:.1f} frames a commit")
print(f"records.db: {records_per_commit:.1f} records a commit (rowid rise)")
total = sum(per_commit.values()) / records_per_commit
print(f"frames a record, both files: {total:.2f}")
for name, per_tree in trees.items():
    commits = sum(per_tree.values()) / per_commit[name]
    for tree, n in per_tree.most_common():
        print(f"  {name + ': ' + tree:45} {n / commits / records_per_commit:5.2f} a record")
