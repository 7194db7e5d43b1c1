#!/usr/bin/env python3
"""The CPU budget of issue 15's targets, from one `benches/sidebyside.sh` run (the JSON that
`scimbench run --out` wrote; the script prints its path last).

For each Scimitar target and write phase: its rate, the whole machine's CPU over the phase
(`host_cpu_pct`: the server, Postgres's backends, the driver and anything else), that CPU per
operation, and the rate both cores would give at that cost per operation if nothing else
bounded it (200 % / CPU per op: no single writer, no round trips, no idle core). Beside it,
the issue's target for the phase (a multiple of the best peer of the same run) and how many
times less CPU per operation the target needs than the phase spent. A factor above 1 means
the target is out of reach on this machine at the phase's cost per operation, however the
work is scheduled.

    python3 benches/budget.py /tmp/tmp.XXXX/run.json [--cores 2]
"""

import argparse
import json

# Issue 15's targets: multiples of the best peer's rate in the same run.
TARGETS = {
    "scimitar-sqlite": {"create": 5.0, "patch": 5.0, "delete": 1.0},
    "scimitar-pg": {"create": 2.0, "patch": 2.0, "delete": 0.5},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--cores", type=float, default=2.0)
    a = ap.parse_args()
    run = json.load(open(a.run))
    phases = {t["label"]: {p["phase"]: p for p in t["phases"]} for t in run["targets"]}
    peers = [label for label in phases if label not in TARGETS]
    if not peers:
        raise SystemExit("no peer in this run: the targets are multiples of the best peer")
    print(f"{'target':<16} {'phase':<7} {'ops/s':>8} {'machine %':>10} {'CPU ms/op':>10} "
          f"{'both cores':>11} {'target':>8} {'CPU/op needs':>13}")
    for label, multiples in TARGETS.items():
        if label not in phases:
            continue
        for phase, k in multiples.items():
            p = phases[label].get(phase)
            if not p or not p.get("host_cpu_pct"):
                continue
            best = max(phases[peer][phase]["ops_per_s"] for peer in peers
                       if phase in phases[peer])
            target = k * best
            ms_per_op = p["host_cpu_pct"] * 10.0 / p["ops_per_s"]
            ceiling = a.cores * 1000.0 / ms_per_op
            print(f"{label:<16} {phase:<7} {p['ops_per_s']:>8.1f} {p['host_cpu_pct']:>9.0f}% "
                  f"{ms_per_op:>10.2f} {ceiling:>11.0f} {target:>8.0f} "
                  f"{target / ceiling:>12.2f}x")


if __name__ == "__main__":
    main()
