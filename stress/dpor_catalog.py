"""Reduced against unreduced DFS on ``small``: every variant, every world of the matrix.

For each correct variant and each catalog mutant, on ``small`` as it is, with
``destroy=1``, with ``pinned=1`` and with each primary-MMU event alone, run DFS with
reduction (to completion or its budget) and without (to its first failure or a larger
budget), and compare failing against clean.  A disagreement is a reduction that says
"complete, clean" where the unreduced search fails.  Unreduced searches that neither fail
nor finish within their budget are listed as "did not finish".

    .venv/bin/python stress/dpor_catalog.py [--full-budget 20000] [--reduced-budget 100000]
        [--only VARIANT] [--jsonl out.jsonl]

This is a benchmark run by hand (it takes hours); CI runs a small subset
(tests/explore/test_dpor_catalog.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import concsim
from concsim.driver import MUTANTS, VARIANTS
from concsim.scenarios._mshv_world import EVENTS

WORLDS: list[tuple[str, dict[str, object]]] = [
    ("small", {}),
    ("destroy", {"destroy": 1}),
    ("pinned", {"pinned": 1}),
    *[(f"events={e}", {"events": e}) for e in EVENTS],
]


def one(variant: str, params: dict[str, object], budget: int, reduction: bool) -> dict[str, object]:
    t0 = time.perf_counter()
    r = concsim.explore(
        "small",
        variant=variant,
        params=params,
        strategy="dfs",
        reduction=reduction,
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
    ap.add_argument("--jsonl", default=None)
    a = ap.parse_args(argv)
    names = [v for v in VARIANTS if not a.only or v in a.only]
    out = open(a.jsonl, "a") if a.jsonl else None  # noqa: SIM115
    bad = 0
    for v in names:
        for wname, params in WORLDS:
            red = one(v, params, a.reduced_budget, True)
            full = one(v, params, a.full_budget, False)
            if red["failing"] == full["failing"]:
                verdict = "agree"
            elif full["failing"] and red["complete"]:
                verdict = "DISAGREE"
                bad += 1
            elif red["failing"] and not full["complete"]:
                verdict = "full did not finish"
            else:
                verdict = "reduced did not finish"
            if not red["failing"] and not full["failing"] and not full["complete"]:
                verdict = "agree so far (full did not finish)"
            row = {
                "variant": v,
                "mutant": v in MUTANTS,
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
