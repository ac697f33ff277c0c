"""The run core: a :class:`RunConfig` resolved into a :class:`World`, run one schedule at a
time under the configuration's strategy.

* :func:`resolve` turns a configuration into a :class:`World` (the scenario, the variant
  object, the typed parameters); :func:`world_of` wraps an ad-hoc scenario the same way.
* :func:`execute` runs a world once under one engine strategy and returns an
  :class:`Execution` (the :class:`RunResult` plus the steps and counts explorers need).
* :class:`Runs` steps through a world's schedules in the order the configuration's
  :class:`~concsim.strategies.Planner` gives them: the one object ``explore``,
  :func:`concsim.check`, the pytest plugin and stress workers step, so "strategy X, seed
  s, schedule i" is the same schedule in all of them.
* :func:`run_config` is one schedule: ``concsim run`` and replay files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from concsim._errors import UsageError
from concsim.engine import Failure, Runtime, Strategy, decode_schedule
from concsim.runs._config import STRATEGIES, RunConfig
from concsim.runs._result import RunResult, result_of
from concsim.runs._variants import resolve_variant
from concsim.scenarios import Scenario, get_scenario
from concsim.strategies import (
    PCT,
    DfsSearch,
    Pruned,
    RandomWalk,
    Replay,
    StepObserver,
    StepRecord,
)
from concsim.strategies._plans import DfsPlanner, Planner, RunPlan, SeededPlanner


@dataclass(frozen=True)
class World:
    """A resolved configuration: what to build for each run."""

    scenario: Scenario
    variant: str
    variant_obj: Any
    params: dict[str, Any]
    max_steps: int | None = None
    #: the configuration this world was resolved from (scenario, variant and parameters
    #: filled in); ``None`` only for worlds built by hand
    settings: RunConfig | None = None

    @property
    def label(self) -> str:
        return f"{self.scenario.name}/{self.variant}"

    @property
    def config(self) -> RunConfig:
        """The whole configuration, resolved: what a replay file stores."""
        base = self.settings or RunConfig(scenario=self.scenario.name)
        return base.replace(
            scenario=self.scenario.name,
            variant=self.variant,
            params=dict(self.params),
            max_steps=self.max_steps,
        )

    def with_settings(self, cfg: RunConfig) -> World:
        """The same world run under ``cfg``'s strategy settings (and max steps)."""
        return World(
            self.scenario,
            self.variant,
            self.variant_obj,
            self.params,
            cfg.max_steps,
            cfg,
        )


def resolve(cfg: RunConfig) -> World:
    """Look the configuration's scenario and variant up and type its parameters."""
    scn = get_scenario(cfg.scenario)
    vname, vobj = resolve_variant(scn, cfg.variant)
    params = scn.resolve_params(cfg.params)
    full = cfg.replace(variant=vname, params=params)
    return World(scn, vname, vobj, params, cfg.max_steps, full)


def world_of(scn: Scenario, cfg: RunConfig, variant: str = "-", variant_obj: Any = None) -> World:
    """A world of a scenario object that is not registered (an ad-hoc world)."""
    full = cfg.replace(scenario=scn.name, variant=variant, params={})
    return World(scn, variant, variant_obj, {}, cfg.max_steps, full)


def make_strategy(
    name: str,
    seed: int,
    *,
    scenario: str | Scenario | None = None,
    depth: int | None = None,
    k: int | None = None,
) -> Strategy:
    """The engine strategy of one seeded run: ``random`` or ``pct``.  PCT's ``k`` (the
    choices a run makes) defaults to the scenario's ``pct_k``; every front end gets it
    from here (through :func:`planner_for`), so a seed names one schedule everywhere."""
    if name == "random":
        return RandomWalk(seed)
    if name == "pct":
        if k is None:
            scn = get_scenario(scenario) if isinstance(scenario, str) else scenario
            k = scn.pct_k if scn is not None else 50
        return PCT(seed, k=k) if depth is None else PCT(seed, depth=depth, k=k)
    if name == "dfs":
        raise UsageError("dfs is a sequence of runs, not one seeded run: use a planner")
    raise UsageError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")


def planner_for(cfg: RunConfig, scn: Scenario) -> Planner:
    """The configuration's strategy as a sequence of runs (see concsim.strategies._plans)."""
    if cfg.strategy == "dfs":
        search = DfsSearch(reduction=cfg.reduction, preemption_bound=cfg.preemption_bound)
        return DfsPlanner(search, cfg.seed)
    k = cfg.k if cfg.k is not None else scn.pct_k
    name, depth = cfg.strategy, cfg.depth

    def make(seed: int) -> Strategy:
        return make_strategy(name, seed, scenario=scn, depth=depth, k=k)

    return SeededPlanner(cfg.strategy, make, cfg.seed)


class _Counting:
    """Wraps a strategy and feeds the step observer at every task choice (what each choice
    meant and the preemptions are the runtime's own typed record); not used for a strategy
    that is its own observer (the DFS run)."""

    def __init__(self, inner: Strategy, observer: StepObserver) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "replay")
        self.observer = observer

    def pick_task(self, rt: Runtime, n: int) -> int:
        self.observer.sync()
        return self.inner.pick_task(rt, n)

    def pick_env(self, rt: Runtime, label: str, n: int) -> int:
        return self.inner.pick_env(rt, label, n)

    def finish(self, rt: Runtime) -> None:
        finish = getattr(self.inner, "finish", None)
        if finish is not None:
            finish(rt)


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
    world: World,
    strategy: Strategy,
    sname: str,
    seed: int | None,
    observer: StepObserver | None = None,
) -> Execution:
    """Run ``world`` once under ``strategy``, observing every step (so with a trace).
    ``observer`` defaults to a fresh one; pass the strategy itself when it is an observer
    (the DFS run)."""
    obs = observer if observer is not None else StepObserver()
    # DFS is its own observer and closes each step itself: no wrapper between it and the
    # engine at every choice.
    own: object = strategy
    counting: Strategy = strategy if obs is own else _Counting(strategy, obs)
    scn = world.scenario
    rt = Runtime(counting, max_steps=world.max_steps or scn.steps_for(world.params), trace=True)
    scn.build_world(rt, dict(world.params), world.variant_obj)
    obs.attach(rt)
    pruned = False
    try:
        failure = rt.run()
    except Pruned:
        pruned = True
        failure = None
    steps = obs.finish_steps()
    if not pruned:
        finish = getattr(strategy, "finish", None)
        if finish is not None:
            finish(rt)
    res = _result(world, rt, sname, seed, failure)
    return Execution(
        res,
        steps,
        len(rt.tasks),
        len(res.tasks),
        res.preemptions,
        pruned,
        res.tasks,
        res.envs,
    )


def run_fast(
    world: World, strategy: Strategy, sname: str, seed: int | None, *, trace: bool = False
) -> RunResult:
    """Run ``world`` once with nothing observed but the choices (the hot path of check and
    stress workers)."""
    scn = world.scenario
    rt = Runtime(strategy, max_steps=world.max_steps or scn.steps_for(world.params), trace=trace)
    scn.build_world(rt, dict(world.params), world.variant_obj)
    failure = rt.run()
    finish = getattr(strategy, "finish", None)
    if finish is not None:
        finish(rt)
    return _result(world, rt, sname, seed, failure)


def _result(
    world: World, rt: Runtime, sname: str, seed: int | None, failure: Failure | None
) -> RunResult:
    res = result_of(rt, world.scenario.name, world.variant, world.params, sname, seed, failure)
    cfg = world.config
    res.config = cfg.replace(seed=seed if seed is not None else cfg.seed)
    return res


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
    """Build a fresh world and run it once under ``strat`` (kept for callers that hold the
    pieces; new code builds a :class:`World` and calls :func:`run_fast`)."""
    return run_fast(World(scn, vname, vobj, params, max_steps), strat, sname, seed, trace=trace)


class Runs:
    """A world's schedules in the order its configuration's strategy plans them.

    ``next()`` runs one schedule and returns its :class:`Execution` (``None`` once the
    strategy has no more: DFS complete).  ``observe=True`` records every step (explore's
    coverage); without it a random or PCT run records only its choices, and a DFS run only
    what the search needs.  ``trace`` records the trace text.
    """

    def __init__(self, world: World, *, observe: bool = False, trace: bool = False) -> None:
        cfg = world.config
        self.world = world
        self.config = cfg
        self.planner = planner_for(cfg, world.scenario)
        self.observe = observe
        self.trace = trace

    def next(self) -> tuple[RunPlan, Execution] | None:
        while True:
            plan = self.planner.next_run()
            if plan is None:
                return None
            ex = self._run(plan, trace=self.trace if plan.index >= 0 else False)
            self.planner.finished(plan, ex.steps, pruned=ex.pruned)
            if plan.index >= 0:  # DFS runs before the configured start are not reported
                return plan, ex

    def _run(self, plan: RunPlan, *, trace: bool) -> Execution:
        name = self.planner.name
        if self.observe or plan.observer is not None:  # an observer reads the trace
            return execute(self.world, plan.strategy, name, plan.seed, plan.observer)
        res = run_fast(self.world, plan.strategy, name, plan.seed, trace=trace)
        return Execution(res, [], 0, len(res.tasks), res.preemptions, False, res.tasks, res.envs)

    def __iter__(self) -> Iterator[tuple[RunPlan, Execution]]:
        while (got := self.next()) is not None:
            yield got


def replay_strategy(cfg: RunConfig) -> Replay:
    assert cfg.schedule is not None
    return Replay(decode_schedule(cfg.schedule), strict=True)


def run_config(cfg: RunConfig, *, trace: bool = True, world: World | None = None) -> RunResult:
    """Run schedule 0 of ``cfg`` (its ``schedule`` exactly, when it has one).

    ``concsim run --seed S`` and ``concsim replay FILE`` are this; for DFS, schedule 0 of
    seed ``S`` is the search's ``S``-th execution.
    """
    w = world.with_settings(cfg) if world is not None else resolve(cfg)
    if cfg.schedule is not None:
        res = run_fast(w, replay_strategy(cfg), "replay", cfg.seed, trace=trace)
        res.strategy = cfg.strategy
        return res
    runs = Runs(w, trace=trace)
    got = runs.next()
    if got is None:
        done = getattr(runs.planner, "executions", 0)
        raise UsageError(
            f"dfs has {done} executions of {w.label} (with these settings): seed "
            f"{cfg.seed} is past the last one"
        )
    return got[1].result
