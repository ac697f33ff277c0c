"""Scaling benchmark: campaign schedules/s with 1 and 2 workers, local and Dask LocalCluster.

    .venv/bin/python stress/bench_scaling.py [--seconds 8] [--repeats 3] [--json]

The same as ``concsim stress --bench``; see concsim/campaign/_bench.py for the method.
"""

from __future__ import annotations

import argparse

from concsim.campaign._bench import print_bench, scaling_bench


def main() -> None:
    ap = argparse.ArgumentParser(description="campaign schedules/s, 1 and 2 workers")
    ap.add_argument("--scenario", default="counter")
    ap.add_argument("--variant", default=None)
    ap.add_argument("--seconds", type=float, default=8.0, help="time budget of each run")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = scaling_bench(a.scenario, a.variant, seconds=a.seconds, repeats=a.repeats)
    print_bench(r, as_json=a.json)


if __name__ == "__main__":
    main()
