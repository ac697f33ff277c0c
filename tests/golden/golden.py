"""Golden equivalence data: what each seed of the mshv scenarios does, recorded once.

The model is optimised often (issue 16); an optimisation must not change a single schedule.
This module records, for every variant (correct and mutant) of the ``default`` and ``small``
scenarios and a few parameter worlds that reach the other paths (every primary-MMU event,
pinned regions with destroy, hypercall and allocation failures, many hypercall batches, a
region over 512 pages), one short digest per seed (16 hex digits, space-separated per
variant) of what the traced run gave: its ``trace_sha256``, its failure (kind, invariant,
message, step, task, details), its stats and its schedule.  It also checks that
the untraced run (what stress campaigns use) makes the same choices, failure and stats.

Commands (from the repository root):

    .venv/bin/python -m tests.golden.golden record   # re-record tests/golden/golden.json
    .venv/bin/python -m tests.golden.golden check    # every seed of every world (slow)
    .venv/bin/python -m tests.golden.golden check --seeds 20  # the first 20 seeds only
    .venv/bin/python -m tests.golden.golden check --ci        # what the CI test checks

Re-record only when a change of behaviour is deliberate (more scheduling points, a model
fix), in a commit of its own whose message says why; ``tests/golden/test_golden.py`` (in
CI) checks the first seeds of every world.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import concsim
from concsim.scenarios import get_scenario

GOLDEN = Path(__file__).with_name("golden.json")
FORMAT = 1

ALL_EVENTS = "migrate,reclaim,munmap,oom,madvise,mprotect,numa,ksm,thp,exit,straddle"

#: (world name, scenario, params, seeds recorded, seeds the CI test checks)
WORLDS: list[tuple[str, str, dict[str, object], int, int]] = [
    ("default", "default", {}, 300, 6),
    ("small", "small", {}, 300, 10),
    ("default-all-events", "default", {"events": ALL_EVENTS}, 100, 6),
    ("default-pinned-destroy", "default", {"pinned": True, "destroy": True}, 60, 4),
    (
        "small-failures",
        "small",
        {
            "hv_fail": "holes",
            "alloc_fail": True,
            "direct_reclaim": True,
            "deposit_on_remap": True,
            "events": "migrate,madvise,reclaim",
        },
        100,
        8,
    ),
    ("small-hv-fail-all", "small", {"hv_fail": "all", "regions": 2}, 60, 4),
    ("small-batches", "small", {"pages": 8, "hv_batch": 3}, 100, 6),
    ("default-600-pages", "default", {"pages": 600}, 20, 1),
]


def _variants(scenario: str) -> list[str]:
    return list(get_scenario(scenario).variants())


def seed_digest(scenario: str, variant: str, params: dict[str, object], seed: int) -> str:
    """The digest of one seed; raises AssertionError if the untraced run differs."""
    traced = concsim.run(scenario, variant=variant, params=params, seed=seed, trace=True)
    failure = traced.failure.to_json() if traced.failure else None
    untraced = concsim.run(scenario, variant=variant, params=params, seed=seed, trace=False)
    u_failure = untraced.failure.to_json() if untraced.failure else None
    if (untraced.choices, u_failure, untraced.stats) != (traced.choices, failure, traced.stats):
        raise AssertionError(
            f"{scenario}/{variant} {params} seed {seed}: the untraced run differs from the "
            f"traced one ({untraced.schedule} vs {traced.schedule}, {u_failure} vs {failure})"
        )
    blob = json.dumps(
        [traced.trace_sha256, failure, traced.stats, traced.schedule],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def compute() -> dict[str, Any]:
    worlds: dict[str, Any] = {}
    for wname, scenario, params, n, _ci in WORLDS:
        entry: dict[str, Any] = {"scenario": scenario, "params": params, "digests": {}}
        for v in _variants(scenario):
            entry["digests"][v] = " ".join(seed_digest(scenario, v, params, s) for s in range(n))
        worlds[wname] = entry
    return {"format": FORMAT, "worlds": worlds}


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


def mismatches(max_seeds: int | None = None, *, ci: bool = False) -> list[str]:
    """Every (world, variant, seed) whose digest is not the recorded one: of the first
    ``max_seeds`` seeds of each world, or of its CI subset with ``ci``."""
    want = load()
    if want.get("format") != FORMAT:
        return [f"golden file format {want.get('format')} != {FORMAT}: re-record it"]
    out: list[str] = []
    for wname, scenario, params, n, ci_n in WORLDS:
        rec = want["worlds"].get(wname)
        if rec is None or rec["params"] != params or rec["scenario"] != scenario:
            out.append(f"{wname}: not recorded with these parameters: re-record")
            continue
        n = ci_n if ci else n if max_seeds is None else min(n, max_seeds)
        for v in _variants(scenario):
            digests = rec["digests"].get(v, "").split()
            if len(digests) < n:
                out.append(f"{wname}/{v}: not recorded (or too few seeds): re-record")
                continue
            for s in range(n):
                got = seed_digest(scenario, v, params, s)
                if got != digests[s]:
                    out.append(
                        f"{wname}/{v} seed {s}: digest {got} != recorded {digests[s]} "
                        f"(concsim run --scenario {scenario} --variant {v} --seed {s} --json)"
                    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.golden.golden")
    ap.add_argument("command", choices=("record", "check"))
    ap.add_argument("--seeds", type=int, default=None, help="check the first N seeds per world")
    ap.add_argument("--ci", action="store_true", help="check the CI subset only")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    if a.command == "record":
        data = compute()
        GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        n = sum(len(d.split()) for w in data["worlds"].values() for d in w["digests"].values())
        print(f"recorded {n} seeds in {time.perf_counter() - t0:.1f}s to {GOLDEN}")
        return 0
    bad = mismatches(a.seeds, ci=a.ci)
    for line in bad[:50]:
        print(line)
    print(f"{len(bad)} mismatches in {time.perf_counter() - t0:.1f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
