"""The exploration benchmark: how fast each strategy finds each known bug.

For every target (a scenario and a variant with a bug) it measures

* random walk and PCT: the number of schedules to the first failure, for each of ``seeds``
  independent explorations (exploration ``s`` starts at seed ``s * SEED_STRIDE``, so no two
  share a schedule), and the median (an exploration that finds nothing within
  ``max_schedules`` counts as infinitely long, so the median says ``None`` when half or
  more found nothing);
* DFS: executions to the first failure and executions to exhaust the space (capped at
  ``dfs_limit``), with and without partial-order reduction.

Targets come from the registry: :data:`DEFAULT_TARGETS` (the example scenarios' buggy
variants) plus every registered variant marked ``mutant = True``, so the mutant catalog of
the driver model joins the benchmark by registering itself.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from concsim._errors import UsageError
from concsim.exploration._explorer import explore
from concsim.scenarios import all_scenarios, get_scenario

DEFAULT_TARGETS: list[tuple[str, str]] = [
    ("counter", "racy"),
    ("abba", "abba"),
    ("independent", "racy-tail"),
]
SEED_STRIDE = 1_000_003


def registry_targets(*, include_all: bool = False) -> list[tuple[str, str]]:
    """The default targets, then the registered mutants, each once on the scenario it declares
    (``catch_scenario``), or every pair with ``include_all``."""
    out = list(DEFAULT_TARGETS)
    seen = {v for _, v in out}
    for scn in all_scenarios():
        for name, obj in scn.variants().items():
            if include_all:
                if (scn.name, name) not in out:
                    out.append((scn.name, name))
            elif getattr(obj, "mutant", False) and name not in seen:
                seen.add(name)
                out.append((getattr(obj, "catch_scenario", scn.name), name))
    return out


def _target_params(scenario: str, variant: str) -> dict[str, Any]:
    """A mutant is benchmarked with the parameters under which its bug is reachable."""
    obj = get_scenario(scenario).variants().get(variant)
    return dict(getattr(obj, "catch_params", {}) or {})


def parse_target(text: str) -> tuple[str, str]:
    scn, sep, variant = text.partition(":")
    if not sep or not scn or not variant:
        raise UsageError(f"--target takes SCENARIO:VARIANT, got {text!r}")
    if ":" in variant:  # a user variant: loaded (and checked) by resolve_variant
        from concsim.runs import resolve_variant

        resolve_variant(get_scenario(scn), variant)
    elif variant not in get_scenario(scn).variants():
        raise UsageError(f"unknown variant {variant!r} for scenario {scn!r} in --target")
    return scn, variant


def _median(values: list[int | None]) -> float | None:
    big = float("inf")
    m = statistics.median([big if v is None else v for v in values])
    return None if m == big else m


def bench_target(
    scenario: str,
    variant: str,
    *,
    seeds: int = 20,
    max_schedules: int = 10_000,
    dfs_limit: int = 20_000,
    dfs: bool | None = None,
) -> dict[str, Any]:
    """One row.  DFS runs only where exhaustive search is meant to run (``dfs=None``: every
    scenario but the mshv ``default``, whose space is far beyond any limit)."""
    t0 = time.perf_counter()
    params = _target_params(scenario, variant)
    if dfs is None:
        dfs = scenario != "default"
    row: dict[str, Any] = {"scenario": scenario, "variant": variant, "params": params}
    for strat in ("random", "pct"):
        found: list[int | None] = []
        for s in range(seeds):
            r = explore(
                scenario,
                variant=variant,
                params=params,
                strategy=strat,
                seed=s * SEED_STRIDE,
                schedules=max_schedules,
                shrink_failure=False,
            )
            found.append(None if r.first_failure is None else r.first_failure.schedule_index + 1)
        row[strat] = {
            "median_schedules_to_failure": _median(found),
            "found": sum(1 for f in found if f is not None),
            "seeds": seeds,
            "per_seed": found,
        }
    for red in (True, False) if dfs else ():
        first = explore(
            scenario,
            variant=variant,
            params=params,
            strategy="dfs",
            reduction=red,
            schedules=dfs_limit,
            shrink_failure=False,
        )
        full = explore(
            scenario,
            variant=variant,
            params=params,
            strategy="dfs",
            reduction=red,
            schedules=dfs_limit,
            stop_on_failure=False,
            shrink_failure=False,
        )
        row["dfs" if red else "dfs_no_reduction"] = {
            "executions_to_failure": (
                None if first.first_failure is None else first.first_failure.schedule_index + 1
            ),
            "executions_full": full.executions,
            "complete": full.complete,
            "failing_executions": full.failures,
        }
    row["elapsed_s"] = round(time.perf_counter() - t0, 3)
    return row


def bench_explore(
    targets: list[tuple[str, str]],
    *,
    seeds: int = 20,
    max_schedules: int = 10_000,
    dfs_limit: int = 20_000,
) -> dict[str, Any]:
    rows = [
        bench_target(s, v, seeds=seeds, max_schedules=max_schedules, dfs_limit=dfs_limit)
        for s, v in targets
    ]
    return {
        "seeds": seeds,
        "max_schedules": max_schedules,
        "dfs_limit": dfs_limit,
        "targets": rows,
    }
