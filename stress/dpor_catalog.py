"""Reduced against unreduced DFS on ``small``: every variant, every world of the matrix.

For each correct variant and each catalog mutant, on ``small`` as it is, with
``destroy=1``, with ``pinned=1`` and with each primary-MMU event alone, run DFS with
reduction (to completion or its budget) and without (to its first failure or a larger
budget), and compare failing against clean.  A disagreement is a reduction that says
"complete, clean" where the unreduced search fails.  Unreduced searches that neither fail
nor finish within their budget are listed as "did not finish".

    .venv/bin/python stress/dpor_catalog.py [--full-budget 20000] [--reduced-budget 100000]
        [--only VARIANT] [--world NAME] [--full-bound K] [--jsonl out.jsonl]
        [--reduced-from earlier.jsonl]
    .venv/bin/python stress/dpor_catalog.py --scenario dmirror-small ...

``--scenario dmirror-small`` runs the dmirror driver's variants instead, in worlds that
reach each mutant's code (a writer, a snapshot, an exclusive access, the OOM reaper).
``--full-bound K`` bounds the unreduced search to K preemptions, so that it finishes: a
failure it finds must then be found by the reduced search too (a disagreement when the
reduced one is complete and clean); a failure only the reduced search finds is beyond the
bound ("reduced found more").

This is a benchmark run by hand (it takes hours); CI runs a small subset: the destroy race
on ``small`` (tests/explore/test_dfs.py), the dmirror mutants on ``dmirror-small``
(tests/explore/test_dpor_dmirror.py) and generated programs
(tests/explore/test_dpor_differential.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import concsim
from concsim.driver import MUTANTS, VARIANTS
from concsim.driver.dmirror import VARIANTS as DMIRROR_VARIANTS
from concsim.scenarios._mshv_world import EVENTS

WORLDS: list[tuple[str, dict[str, object]]] = [
    ("small", {}),
    ("destroy", {"destroy": 1}),
    ("pinned", {"pinned": 1}),
    *[(f"events={e}", {"events": e}) for e in EVENTS],
]

DMIRROR_WORLDS: list[tuple[str, dict[str, object]]] = [
    ("dmirror-small", {}),
    ("writer", {"writers": 1}),
    ("snapshot", {"readers": 0, "snapshots": 1}),
    ("exclusive", {"readers": 0, "exclusives": 1, "cpu_writes": 1}),
    ("events=oom", {"events": "oom"}),
    ("events=mprotect", {"events": "mprotect"}),
    ("events=munmap", {"events": "munmap"}),
]


def one(
    scenario: str,
    variant: str,
    params: dict[str, object],
    budget: int,
    reduction: bool,
    bound: int | None = None,
) -> dict[str, object]:
    t0 = time.perf_counter()
    r = concsim.explore(
        scenario,
        variant=variant,
        params=params,
        strategy="dfs",
        reduction=reduction,
        preemption_bound=bound,
        schedules=budget,
        shrink_failure=False,
    )
    f = r.first_failure
    return {
        "failing": f is not None,
        "complete": r.complete,
        "executions": r.executions,
        "signature": f"{f.kind}:{f.invariant}" if f else None,
        "s": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full-budget", type=int, default=20_000)
    ap.add_argument("--reduced-budget", type=int, default=100_000)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--world", action="append", default=[], help="only these worlds")
    ap.add_argument("--scenario", default="small", choices=("small", "dmirror-small"))
    ap.add_argument("--full-bound", type=int, default=None)
    ap.add_argument("--jsonl", default=None)
    ap.add_argument(
        "--reduced-from",
        action="append",
        default=[],
        metavar="JSONL",
        help="reuse the reduced searches of an earlier run's --jsonl (same tree, same budget)",
    )
    a = ap.parse_args(argv)
    dm = a.scenario == "dmirror-small"
    variants = DMIRROR_VARIANTS if dm else VARIANTS
    mutants = {v for v, c in variants.items() if getattr(c, "mutant", False)} if dm else MUTANTS
    worlds = [w for w in (DMIRROR_WORLDS if dm else WORLDS) if not a.world or w[0] in a.world]
    names = [v for v in variants if not a.only or v in a.only]
    out = open(a.jsonl, "a") if a.jsonl else None  # noqa: SIM115
    earlier: dict[tuple[str, str], dict[str, object]] = {}
    for path in a.reduced_from:
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                earlier[(row["variant"], row["world"])] = row["reduced"]
    bad = 0
    for v in names:
        for wname, params in worlds:
            red = earlier.get((v, wname)) or one(a.scenario, v, params, a.reduced_budget, True)
            full = one(a.scenario, v, params, a.full_budget, False, a.full_bound)
            if red["failing"] == full["failing"]:
                verdict = "agree"
            elif full["failing"] and red["complete"]:
                verdict = "DISAGREE"
                bad += 1
            elif red["failing"] and not full["complete"]:
                verdict = "full did not finish"
            elif red["failing"] and a.full_bound is not None:
                verdict = "reduced found more (beyond the bound)"
            else:
                verdict = "reduced did not finish"
            if not red["failing"] and not full["failing"] and not full["complete"]:
                verdict = "agree so far (full did not finish)"
            row = {
                "variant": v,
                "mutant": v in mutants,
                "world": wname,
                "reduced": red,
                "full": full,
                "verdict": verdict,
            }
            print(
                f"{v:28} {wname:18} reduced {red['signature'] or 'clean':14} "
                f"{red['executions']:>7} ex{' complete' if red['complete'] else ''} | full "
                f"{full['signature'] or 'clean':14} {full['executions']:>7} ex"
                f"{' complete' if full['complete'] else ''} | {verdict}",
                flush=True,
            )
            if out is not None:
                out.write(json.dumps(row) + "\n")
                out.flush()
    print(f"disagreements: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
