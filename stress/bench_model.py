"""Model speed benchmark: schedules/s and model steps/s per scenario, against the floor.

    .venv/bin/python stress/bench_model.py [--schedules 300] [--repeats 3] [--json]
    .venv/bin/python stress/bench_model.py --against /path/to/old/tree [--rounds 5]

For each world (default, small, a 4,096-page region, pinned regions, every primary-MMU
event) it runs random-walk schedules of the default variant in one process, untraced, as a
stress worker does, and prints schedules/s, steps per schedule, model steps/s and the
engine floor (``concsim bench``'s bare coroutine loop) measured in the same run, with their
ratio (``concsim bench --model`` is the first line).

``--against TREE`` measures this tree and another checkout of concsim (a worktree of an
older commit) side by side: rounds alternate between the two, each in a fresh process
(``PYTHONPATH=TREE``), timing the same public call (``concsim.run(..., trace=False)``) in
CPU seconds of the process (on a shared machine wall time mostly measures the neighbours),
so a slow patch of the machine hits both alike; it prints the medians and new/old, each
tree's steps per schedule (more scheduling points make longer schedules), the speedup in
model steps/s, and each tree's model steps/s against the floor measured (in CPU time) in
the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ALL_EVENTS = "migrate,reclaim,munmap,oom,madvise,mprotect,numa,ksm,thp,exit,straddle"

#: (label, scenario, params, schedules per round relative to --schedules)
WORLDS: list[tuple[str, str, dict[str, object], float]] = [
    ("default", "default", {}, 1.0),
    ("small", "small", {}, 1.0),
    ("4096-pages", "default", {"pages": 4096}, 0.05),
    ("pinned", "default", {"pinned": True}, 1.0),
    ("all-events", "default", {"events": ALL_EVENTS}, 1.0),
]

HERE = Path(__file__).resolve().parent.parent


def _time_public_run(scenario: str, params: dict[str, object], schedules: int) -> dict[str, Any]:
    """Only the public API, so an older tree can run it too."""
    import concsim

    steps = 0
    t0 = time.process_time()
    for s in range(schedules):
        steps += concsim.run(scenario, seed=s, params=params, trace=False).steps
    dt = time.process_time() - t0
    return {"schedules_per_s": schedules / dt, "steps": steps, "schedules": schedules}


def _one_round(args: argparse.Namespace) -> None:
    out = {}
    for label, scenario, params, rel in WORLDS:
        if args.only and label not in args.only:
            continue
        n = max(1, int(args.schedules * rel))
        out[label] = _time_public_run(scenario, params, n)
    print(json.dumps(out))


def _against(args: argparse.Namespace) -> None:
    trees = {"new": str(HERE), "old": str(Path(args.against).resolve())}
    rates: dict[str, dict[str, list[float]]] = {"new": {}, "old": {}}
    steps: dict[str, dict[str, float]] = {"new": {}, "old": {}}  # per schedule (seeded: fixed)
    floor: list[float] = []  # the engine floor (bench --model's), CPU time, once a round
    for r in range(args.rounds):
        sys.path.insert(0, str(HERE))
        from concsim._bench import _floor_once

        n, dt = _floor_once(4, 50_000, r, time.process_time)
        floor.append(n / dt)
        for name in ("old", "new"):
            cmd = [sys.executable, __file__, "--round", "--schedules", str(args.schedules)]
            for o in args.only or []:
                cmd += ["--only", o]
            env = dict(os.environ, PYTHONPATH=trees[name])
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            for label, r in json.loads(p.stdout.strip().splitlines()[-1]).items():
                rates[name].setdefault(label, []).append(r["schedules_per_s"])
                steps[name][label] = r["steps"] / r["schedules"]
    rows = []
    fl = statistics.median(floor)
    for label in rates["new"]:
        new = statistics.median(rates["new"][label])
        old = statistics.median(rates["old"][label])
        old_steps, new_steps = steps["old"][label], steps["new"][label]
        rows.append(
            {
                "world": label,
                "old_schedules_per_s": round(old, 1),
                "new_schedules_per_s": round(new, 1),
                "speedup": round(new / old, 2),
                # The trees may differ in what a schedule is (more scheduling points make
                # longer schedules): steps per schedule and model steps/s say so.
                "old_steps_per_schedule": round(old_steps, 1),
                "new_steps_per_schedule": round(new_steps, 1),
                "steps_per_s_speedup": round(new * new_steps / (old * old_steps), 2),
                # model steps/s against the floor measured in the same rounds
                "old_ratio": round(old * old_steps / fl, 4),
                "new_ratio": round(new * new_steps / fl, 4),
            }
        )
    if args.json:
        out = {"benchmark": "model-against", "rounds": args.rounds, "floor_steps_per_s": round(fl)}
        print(json.dumps({**out, "rows": rows}))
        return
    for r in rows:
        print(
            f"{r['world']:>12}: old {r['old_schedules_per_s']:>8,} schedules/s   new "
            f"{r['new_schedules_per_s']:>8,} schedules/s   x{r['speedup']}   (steps per "
            f"schedule {r['old_steps_per_schedule']} -> {r['new_steps_per_schedule']}; "
            f"steps/s x{r['steps_per_s_speedup']}; ratio to the floor {r['old_ratio']} -> "
            f"{r['new_ratio']})"
        )
    print(
        f"(CPU-time rates, medians of {args.rounds} alternating rounds, "
        f"{args.schedules} schedules each; floor {round(fl):,} steps/s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description="model schedules/s and steps/s per scenario")
    ap.add_argument("--schedules", type=int, default=300, help="schedules per round")
    ap.add_argument("--repeats", type=int, default=3, help="rounds (median)")
    ap.add_argument("--against", metavar="TREE", help="another concsim checkout to compare")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds for --against")
    ap.add_argument("--only", action="append", help="only this world (repeatable)")
    ap.add_argument("--round", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.round:
        _one_round(a)
        return
    if a.against:
        _against(a)
        return
    from concsim._bench import bench_model, model_line

    results = []
    for label, scenario, params, rel in WORLDS:
        if a.only and label not in a.only:
            continue
        n = max(1, int(a.schedules * rel))
        r = bench_model(scenario, dict(params), schedules=n, repeats=a.repeats)
        r["world"] = label
        results.append(r)
        if not a.json:
            print(model_line(r))
    if a.json:
        print(json.dumps({"benchmark": "model-worlds", "worlds": results}))


if __name__ == "__main__":
    main()
