"""Run one schedule of a target, observing every step (for reduction and coverage).

The explorer's counterpart of :func:`concsim.runs.run_world`: it builds a fresh world the
same way, and also records the trace and attaches a :class:`StepObserver`, and counts the
task choices and the exact preemptions (a choice ``k > 0`` where the current task was still
runnable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from concsim.engine import Failure, Runtime, Strategy
from concsim.runs import RunResult, resolve_variant, result_of
from concsim.scenarios import Scenario, get_scenario
from concsim.strategies import Pruned, Recorder, StepObserver, StepRecord


@dataclass(frozen=True)
class Target:
    """What to explore: a scenario, one of its variants, resolved parameters."""

    scenario: Scenario
    variant: str
    variant_obj: Any
    params: dict[str, Any]
    max_steps: int | None = None

    @property
    def label(self) -> str:
        return f"{self.scenario.name}/{self.variant}"


def make_target(
    scenario: str,
    variant: str | None = None,
    params: Mapping[str, object] | None = None,
    max_steps: int | None = None,
) -> Target:
    scn = get_scenario(scenario)
    vname, vobj = resolve_variant(scn, variant)
    return Target(scn, vname, vobj, scn.resolve_params(params), max_steps)


class _Counting(Recorder):
    """Wraps a strategy: feeds the observer, counts task choices, and (as a
    :class:`Recorder`) records what each choice meant and counts the preemptions."""

    def __init__(self, inner: Strategy, observer: StepObserver) -> None:
        super().__init__(inner)
        self.observer = observer
        self.task_choices = 0

    def pick_task(self, rt: Runtime, n: int) -> int:
        obs = self.observer
        inner: object = self.inner  # DFS is its own observer
        if obs is not inner:
            obs.sync()
            obs.note_choice(rt)
        self.task_choices += 1
        return super().pick_task(rt, n)


@dataclass
class Execution:
    """One run: the engine's result, the steps it took, the counts the explorer needs."""

    result: RunResult
    steps: list[StepRecord]
    ntasks: int
    task_choices: int
    preemptions: int
    pruned: bool
    #: what the choices meant: the id of the task each task choice ran, and each
    #: environment outcome (the shrinker's plans by task identity start from these)
    tasks: tuple[int, ...] = ()
    envs: tuple[int, ...] = ()

    @property
    def failure(self) -> Failure | None:
        return self.result.failure


def execute(
    target: Target,
    strategy: Strategy,
    sname: str,
    seed: int | None,
    observer: StepObserver | None = None,
) -> Execution:
    """Run ``target`` once under ``strategy``.  ``observer`` defaults to a fresh one; pass
    the strategy itself when it is an observer (the DFS run)."""
    obs = observer if observer is not None else StepObserver()
    counting = _Counting(strategy, obs)
    scn = target.scenario
    rt = Runtime(counting, max_steps=target.max_steps or scn.max_steps, trace=True)
    scn.build(rt, dict(target.params), target.variant_obj)
    obs.attach(rt)
    pruned = False
    try:
        failure = rt.run()
    except Pruned:
        pruned = True
        failure = None
    steps = obs.finish_steps()
    finish = getattr(strategy, "finish", None)
    if finish is not None and not pruned:
        finish(rt)
    res = result_of(rt, scn.name, target.variant, target.params, sname, seed, failure)
    return Execution(
        res,
        steps,
        len(rt.tasks),
        counting.task_choices,
        counting.preemptions,
        pruned,
        tuple(counting.tasks),
        tuple(counting.envs),
    )
