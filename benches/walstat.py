#!/usr/bin/env python3
"""Which b-trees a SQLite write-ahead log holds pages of: reads the frames of a copy of
`DB-wal` (those of its current generation: the salt of its header) and names each frame's
page by `dbstat` on a copy of the database with that log beside it. Prints frames per commit
for each table and index: where a write's pages (and so its bytes and its share of the
checkpoint) go. Copy both files while the server runs, or after `kill -9` (a clean stop
checkpoints the log away):

    cp s.db /tmp/w/copy.db && cp s.db-wal /tmp/w/copy.db-wal
    python3 benches/walstat.py /tmp/w/copy.db-wal /tmp/w/copy.db

Pages freed since (their b-tree emptied) show as `?`.
"""

import collections
import sqlite3
import struct
import sys


def main():
    wal, db = sys.argv[1], sys.argv[2]
    data = open(wal, "rb").read()
    _magic, _ver, psz, _ckpt, salt1, salt2, _c1, _c2 = struct.unpack(">IIIIIIII", data[:32])
    off, frames, commits = 32, [], 0
    while off + 24 + psz <= len(data):
        pg, commit, s1, s2, _, _ = struct.unpack(">IIIIII", data[off:off + 24])
        if (s1, s2) != (salt1, salt2):
            break
        frames.append(pg)
        if commit:
            commits += 1
        off += 24 + psz
    owner = dict(sqlite3.connect(db).execute("SELECT pageno, name FROM dbstat"))
    count = collections.Counter(owner.get(p, "?") for p in frames)
    per = max(commits, 1)
    print(f"{len(frames)} frames, {commits} commits, {len(frames) / per:.1f} frames per commit")
    for name, n in count.most_common(30):
        print(f"{n:7d} {n / per:7.2f} per commit  {name}")


if __name__ == "__main__":
    main()
