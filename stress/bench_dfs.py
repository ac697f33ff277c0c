"""DFS speed benchmark: DFS executions/s against random-walk schedules/s, same scenario.

    .venv/bin/python stress/bench_dfs.py [--scenario small] [--executions 3000] [--rounds 5]
        [--json]

Issue 16 asks DFS (with reduction, the default) to run at least 0.8x as many executions per
second as the random walk on ``small``.  Each round times, in this process and in CPU
seconds of the process (wall time on a shared machine mostly measures the neighbours), the
first ``--executions`` executions of a DFS of the scenario's default variant and as many
random-walk schedules (seeds 0, 1, ...), both through the public ``concsim.explore``; the
two alternate, so a slow patch of the machine hits both alike.  It prints the medians of
both rates and of their ratio per round (DFS / random).

The executions of the two differ in length: DFS's default continuation and the branches it
must cover reach paths (the vCPU's GPA fault, HMM's restarts) that random walk's first
schedules rarely take, so each DFS execution of ``small`` is longer.  An untimed pass over
the same executions counts the steps of each, and the ratio of model steps/s (DFS / random)
is printed beside the ratio of executions/s, and so is the fraction of DFS's steps that
replay the previous execution's (a DFS execution replays the path up to the choice that
takes a new option; it reuses the previous execution's records, trace and race analysis of
those steps, but the model still runs them).

To compare with an older tree, run the same file with ``PYTHONPATH=OLD_TREE``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any


def _rate(scenario: str, strategy: str, n: int) -> float:
    import concsim

    t0 = time.process_time()
    r = concsim.explore(
        scenario, strategy=strategy, schedules=n, stop_on_failure=False, shrink_failure=False
    )
    dt = time.process_time() - t0
    return r.executions / dt


def _steps_per_execution(scenario: str, n: int) -> tuple[float, float, float]:
    from concsim.exploration import execute, make_target
    from concsim.strategies import DfsSearch
    from concsim.strategies._random import RandomWalk

    t = make_target(scenario, None, {})
    s = DfsSearch()
    dfs_steps = runs = 0
    while runs < n:
        run = s.new_run()
        ex = execute(t, run, "dfs", None, observer=run)
        dfs_steps += len(ex.steps)
        runs += 1
        if not s.finish_run(ex.steps, pruned=ex.pruned, unfinished=run.unfinished()):
            break
    rnd_steps = sum(len(execute(t, RandomWalk(seed), "random", seed).steps) for seed in range(n))
    shared = getattr(s, "shared_steps", 0) / dfs_steps  # (an older tree has no such count)
    return dfs_steps / runs, rnd_steps / n, shared


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="small")
    ap.add_argument("--executions", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    _rate(a.scenario, "dfs", min(200, a.executions))  # warm-up: imports, caches
    dfs: list[float] = []
    rnd: list[float] = []
    ratio: list[float] = []
    for _ in range(a.rounds):
        d = _rate(a.scenario, "dfs", a.executions)
        r = _rate(a.scenario, "random", a.executions)
        dfs.append(d)
        rnd.append(r)
        ratio.append(d / r)
    dfs_len, rnd_len, shared = _steps_per_execution(a.scenario, a.executions)
    steps_ratio = statistics.median(ratio) * dfs_len / rnd_len
    out: dict[str, Any] = {
        "scenario": a.scenario,
        "executions": a.executions,
        "rounds": a.rounds,
        "dfs_per_s": round(statistics.median(dfs), 1),
        "random_per_s": round(statistics.median(rnd), 1),
        "ratio": round(statistics.median(ratio), 3),
        "ratio_min": round(min(ratio), 3),
        "ratio_max": round(max(ratio), 3),
        "dfs_steps_per_execution": round(dfs_len, 1),
        "random_steps_per_execution": round(rnd_len, 1),
        "steps_ratio": round(steps_ratio, 3),
        "dfs_shared_steps": round(shared, 3),
    }
    if a.json:
        print(json.dumps(out))
    else:
        print(
            f"{a.scenario}: DFS {out['dfs_per_s']} executions/s, random {out['random_per_s']} "
            f"schedules/s, DFS/random {out['ratio']} (min {out['ratio_min']}, max "
            f"{out['ratio_max']}; medians of {a.rounds} rounds of {a.executions}, CPU time)\n"
            f"steps per execution: DFS {out['dfs_steps_per_execution']}, random "
            f"{out['random_steps_per_execution']}; model steps/s DFS/random {out['steps_ratio']}\n"
            f"DFS steps replayed from the previous execution (records and trace reused): "
            f"{out['dfs_shared_steps']:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
