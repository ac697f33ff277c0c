"""The run core: build a fresh world for a scenario and variant and run it once."""

from __future__ import annotations

from typing import Any

from concsim._errors import UsageError
from concsim.engine import Runtime, Strategy
from concsim.runs._result import RunResult, result_of
from concsim.scenarios import Scenario, get_scenario
from concsim.strategies import RandomWalk

STRATEGIES = ("random", "pct")


def make_strategy(
    name: str, seed: int, *, scenario: str | Scenario | None = None, **options: Any
) -> Strategy:
    """A strategy by name.  PCT's ``k`` (choices a run makes) defaults to the scenario's
    ``pct_k``, measured for the built-in scenarios.  Every caller that runs a scenario must
    pass it: the same seed then names the same schedule in ``run``, a stress worker, its
    traced rerun and ``check``."""
    if name == "random":
        return RandomWalk(seed, **options)
    if name == "pct":
        from concsim.strategies import PCT

        if "k" not in options and scenario is not None:
            scn = get_scenario(scenario) if isinstance(scenario, str) else scenario
            options["k"] = scn.pct_k
        return PCT(seed, **options)
    raise UsageError(f"unknown strategy {name!r} for run (known: {', '.join(STRATEGIES)})")


def run_world(
    scn: Scenario,
    vname: str,
    vobj: Any,
    params: dict[str, Any],
    strat: Strategy,
    sname: str,
    seed: int | None,
    trace: bool,
    max_steps: int | None,
) -> RunResult:
    """Build a fresh world and run it once (the shared core of every front end)."""
    rt = Runtime(strat, max_steps=max_steps or scn.max_steps, trace=trace)
    scn.build(rt, params, vobj)
    failure = rt.run()
    finish = getattr(strat, "finish", None)
    if finish is not None:
        finish(rt)
    return result_of(rt, scn.name, vname, params, sname, seed, failure)
