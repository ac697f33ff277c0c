"""``concsim mutants``: prove the checker's power on the catalog, and its silence on the
correct variants.

Every mutant of :data:`concsim.driver.MUTANTS` is explored on its ``catch_scenario`` with its
``catch_params`` until its first failure or the budget; it counts as *caught* only if the
failure is of a kind the catalog expects (spec section E).  Every correct variant is then
explored for the whole budget on each clean scenario and must show no failure at all: a
false alarm is as serious a defect as a missed bug.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from concsim._errors import UsageError
from concsim.exploration._explorer import ExploreResult, explore

CLEAN_SCENARIOS = ("default", "small")


@dataclass
class MutantOutcome:
    name: str
    caught: bool
    kind: str | None
    invariant: str | None
    expected: str
    schedules_to_failure: int | None
    elapsed_s: float
    message: str = ""
    shrunk_schedule: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "caught": self.caught,
            "kind": self.kind,
            "invariant": self.invariant,
            "expected": self.expected,
            "schedules_to_failure": self.schedules_to_failure,
            "elapsed_s": round(self.elapsed_s, 3),
            "message": self.message,
            "shrunk_schedule": self.shrunk_schedule,
        }


@dataclass
class CleanOutcome:
    name: str
    scenario: str
    schedules: int
    ok: bool
    elapsed_s: float
    failure: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scenario": self.scenario,
            "schedules": self.schedules,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 3),
            "failure": self.failure or None,
        }


@dataclass
class CatalogResult:
    strategy: str
    budget: int
    seed: int
    mutants: list[MutantOutcome] = field(default_factory=list)
    clean_variants: list[CleanOutcome] = field(default_factory=list)
    #: stopped by Ctrl-C: the lists hold the explorations that finished
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return (
            not self.interrupted
            and all(m.caught for m in self.mutants)
            and all(c.ok for c in self.clean_variants)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "strategy": self.strategy,
            "budget": self.budget,
            "seed": self.seed,
            "mutants": [m.to_json() for m in self.mutants],
            "clean_variants": [c.to_json() for c in self.clean_variants],
            "interrupted": self.interrupted,
        }


Progress = Callable[[str, int, int], None]


def run_catalog(
    *,
    budget: int = 1000,
    strategy: str = "pct",
    seed: int = 0,
    only: list[str] | None = None,
    clean: bool = True,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
) -> CatalogResult:
    """Run the catalog; ``progress(label, done, total)`` is called after each exploration.

    When ``stop()`` turns true (a Ctrl-C) the catalog ends after the schedule it is running;
    the result holds the explorations that finished and ``interrupted`` is set."""
    from concsim.driver import CORRECT_VARIANTS, MUTANTS

    if budget < 1:
        raise UsageError(f"--budget must be at least 1, got {budget}")
    if strategy not in ("random", "pct"):
        raise UsageError(f"--strategy must be random or pct for mutants, got {strategy!r}")
    names = list(MUTANTS)
    if only:
        unknown = [n for n in only if n not in MUTANTS]
        if unknown:
            raise UsageError(f"unknown mutant {unknown[0]!r} (known: {', '.join(MUTANTS)})")
        names = only
    jobs = len(names) + (len(CORRECT_VARIANTS) * len(CLEAN_SCENARIOS) if clean else 0)
    out = CatalogResult(strategy, budget, seed)
    done = 0
    for name in names:
        if stop is not None and stop():
            out.interrupted = True
            return out
        cls = MUTANTS[name]
        res: ExploreResult = explore(
            cls.catch_scenario,
            stop=stop,
            variant=name,
            params=dict(cls.catch_params),
            strategy=strategy,
            schedules=budget,
            seed=seed,
        )
        if res.stopped_by == "interrupted":
            out.interrupted = True
            return out
        ff = res.first_failure
        expected = (
            "/".join(cls.expect_kinds)
            + " ["
            + "/".join(str(i) for i in cls.expect_invariants)
            + "]"
        )
        caught = (
            ff is not None
            and ff.kind in cls.expect_kinds
            and (not cls.expect_invariants or ff.invariant in cls.expect_invariants)
        )
        out.mutants.append(
            MutantOutcome(
                name,
                caught,
                ff.kind if ff else None,
                ff.invariant if ff else None,
                expected,
                ff.schedule_index + 1 if ff else None,
                res.elapsed_s,
                ff.message if ff else "",
                ff.shrunk_schedule if ff else None,
            )
        )
        done += 1
        if progress:
            progress(name, done, jobs)
    if clean:
        for vname in CORRECT_VARIANTS:
            for scn in CLEAN_SCENARIOS:
                if stop is not None and stop():
                    out.interrupted = True
                    return out
                res = explore(
                    scn,
                    stop=stop,
                    variant=vname,
                    strategy=strategy,
                    schedules=budget,
                    seed=seed,
                    shrink_failure=False,
                )
                if res.stopped_by == "interrupted":
                    out.interrupted = True
                    return out
                ff = res.first_failure
                out.clean_variants.append(
                    CleanOutcome(
                        vname,
                        scn,
                        res.schedules_run,
                        ff is None,
                        res.elapsed_s,
                        f"{ff.kind}/{ff.invariant}: {ff.message}" if ff else "",
                    )
                )
                done += 1
                if progress:
                    progress(f"{vname} on {scn}", done, jobs)
    return out
