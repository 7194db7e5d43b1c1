#!/usr/bin/env python3
"""Drives the write path of a running `scimitar serve` for profiling: N creates of a user
document shaped like shared/bench's, N PATCHes (active=false and title, as shared/bench sends), N
deletes, from C client threads. Prints each phase's ops/s and the server's CPU per op (from
/proc/PID/stat, when --pid is given) and the bytes it wrote per op (/proc/PID/io), and the writes per commit (/metrics). With --callgrind, runs `callgrind_control --dump` after
each phase and prints the instructions per op of that phase (the server started under
`valgrind --tool=callgrind`), in all and inside `Writer::write` (the write itself): the
latter does not move with the machine's load (the total also counts background threads,
whose work grows with the phase's wall time).

    python3 benches/writepath.py --url http://127.0.0.1:18190/scim/v2 --token T -n 300 \
        [--pid PID] [--callgrind | --perf PREFIX] [-c 1]
"""

import argparse
import glob
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user(run, i, manager):
    seq = f"{i:06d}"
    uname = f"ada.lovelace.{seq}@{run}.example.com"
    doc = {
        "schemas": [CORE, ENT],
        "userName": uname,
        "externalId": f"ext-{run}-{seq}",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
        "displayName": "Ada Lovelace",
        "title": "Engineer",
        "active": True,
        "emails": [
            {"value": uname, "type": "work", "primary": True},
            {"value": f"adalovelace{seq}@home.example.org", "type": "home"},
        ],
        "phoneNumbers": [{"value": f"+1 555 {i:07d}", "type": "work"}],
        ENT: {
            "employeeNumber": str(100000 + i),
            "costCenter": f"CC-{100 + i % 900}",
            "organization": "Example Corp",
            "division": "Engineering",
            "department": "Engineering Platform",
        },
    }
    if manager:
        doc[ENT]["manager"] = {"value": manager}
    return doc


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def bytes_written(pid):
    """Bytes the server handed to write(2) and friends so far (SQLite's WAL and database file
    writes; /proc/PID/io `wchar`)."""
    with open(f"/proc/{pid}/io") as f:
        return int(next(line for line in f if line.startswith("wchar:")).split()[1])


def batches(url):
    """(requests, commits) of the server's write batches so far, from its /metrics."""
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    got = {}
    for line in text.splitlines():
        for key in ("scimitar_write_batch_requests_sum", "scimitar_write_batch_requests_count"):
            if line.startswith(key + " "):
                got[key] = float(line.split()[1])
    return got.get("scimitar_write_batch_requests_sum", 0), got.get(
        "scimitar_write_batch_requests_count", 0)


def callgrind_total(pid, label):
    """Dumps the server's counters and returns the Ir of that dump."""
    before = set(glob.glob(f"callgrind.out.{pid}*"))
    subprocess.run(["callgrind_control", "--dump=" + label, str(pid)], check=True,
                   capture_output=True)
    for _ in range(600):
        new = set(glob.glob(f"callgrind.out.{pid}*")) - before
        if new:
            break
        time.sleep(0.1)
    path = sorted(new)[-1]
    for _ in range(100):
        with open(path) as f:
            text = f.read()
        m = re.search(r"^totals: (\d+)", text, re.M) or re.search(r"^summary: (\d+)", text, re.M)
        if m:
            return int(m.group(1)), path
        time.sleep(0.1)
    raise SystemExit(f"no totals in {path}")


def in_writer(path):
    """The instructions of a dump spent inside Writer::write (the write itself: its savepoint,
    the change, the commit), which background threads and the machine's load do not move."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", path], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "scimitar::provisioning::writer::Writer::write [" in line:
            return int(line.split()[0].replace(",", ""))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("-c", type=int, default=1)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--perf", metavar="PREFIX",
                    help="record each phase with `perf record -g` into PREFIX.PHASE.data")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    base = u.path.rstrip("/")
    headers = {"Authorization": f"Bearer {a.token}", "Content-Type": "application/scim+json"}
    run = f"r{int(time.time())}"
    ids = [None] * a.n
    local = threading.local()

    def request(method, path, body=None):
        if not hasattr(local, "c"):
            local.c = http.client.HTTPConnection(u.hostname, u.port)
        data = json.dumps(body) if body is not None else None
        local.c.request(method, base + path, body=data, headers=headers)
        r = local.c.getresponse()
        out = r.read()
        return r.status, out

    def create(i):
        manager = ids[i // 2] if i > 0 else None
        st, out = request("POST", "/Users", user(run, i, manager))
        assert st == 201, (st, out)
        ids[i] = json.loads(out)["id"]

    def patch(i):
        body = {"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "active", "value": False},
            {"op": "replace", "path": "title", "value": "Engineer (patched)"},
        ]}
        st, out = request("PATCH", f"/Users/{ids[i]}", body)
        assert st == 200, (st, out)

    def delete(i):
        st, out = request("DELETE", f"/Users/{ids[i]}")
        assert st == 204, (st, out)

    if a.callgrind:
        callgrind_total(a.pid, "start")
    for name, op in (("create", create), ("patch", patch), ("delete", delete)):
        rec = None
        if a.perf:
            rec = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(a.pid), "-o",
                                    f"{a.perf}.{name}.data"], stderr=subprocess.DEVNULL)
            time.sleep(1)
        t0, c0 = time.time(), cpu_ticks(a.pid) if a.pid else 0
        w0 = bytes_written(a.pid) if a.pid else 0
        b0 = batches(a.url)
        nxt = iter(range(a.n))
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    i = next(nxt, None)
                if i is None:
                    return
                op(i)

        ts = [threading.Thread(target=worker) for _ in range(a.c)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        dt = time.time() - t0
        if rec:
            rec.send_signal(signal.SIGINT)
            rec.wait()
        line = f"{name:7} {a.n / dt:9.1f} ops/s"
        b1 = batches(a.url)
        if b1[1] > b0[1]:
            line += f"  {(b1[0] - b0[0]) / (b1[1] - b0[1]):5.1f} per commit"
        if a.pid:
            ms = (cpu_ticks(a.pid) - c0) * 1000 / os.sysconf("SC_CLK_TCK") / a.n
            line += f"  server CPU {ms:6.2f} ms/op"
            kib = (bytes_written(a.pid) - w0) / 1024 / a.n
            line += f"  written {kib:6.1f} KiB/op"
        if a.callgrind:
            ir, path = callgrind_total(a.pid, name)
            line += (f"  {ir / a.n / 1e6:6.3f} M instructions/op, "
                     f"{in_writer(path) / a.n / 1e6:6.3f} M in Writer::write ({path})")
        print(line, flush=True)


if __name__ == "__main__":
    main()
