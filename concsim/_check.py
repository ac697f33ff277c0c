"""Checking a model over many schedules: ``concsim.check(target, schedules=N, seed=S)``.

``target`` is either a registered scenario's name or an *ad-hoc world*: a function
``build(rt)`` that creates the shared state and the tasks of a race the user wrote with
concsim's primitives, so a two-task race in a test needs no registration::

    def build(rt):
        state = {"n": 0}

        async def inc():
            await rt.point("load", "n", read=True)
            v = state["n"]
            await rt.point("store", "n", v + 1)
            state["n"] = v + 1

        rt.add_final_hook(lambda rt: rt.check(state["n"] == 2, f"lost update: {state['n']}"))
        return [inc(), inc()]          # or spawn them: rt.spawn("a", inc())

    res = concsim.check(build, schedules=200)
    assert res.ok, res.report()

``build`` may spawn its tasks itself or return them: a coroutine, a list of coroutines
(named after their functions, numbered when a name repeats) or a ``{name: coroutine}``
mapping.  It is called once per schedule on a fresh runtime, so state created inside it
never leaks from one schedule into the next.

Schedule ``i`` (from 0) is the strategy seeded with ``seed + i``.  Runs record no trace
(the hot path pays for none); the first failing schedule is replayed with a trace, and a
replay that does not fail the same way means the model is not deterministic (it read a
clock, a global random generator, or state left by an earlier schedule): that is reported
as an error, never papered over.  The failing schedule then goes through
:func:`shrink_failure`, the place where a shrinker plugs in.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from concsim._errors import ConcsimError, UsageError
from concsim.engine import (
    Failure,
    Runtime,
    Strategy,
    decode_schedule,
    encode_schedule,
    format_trace,
)
from concsim.runs import RunConfig, RunResult, Runs, World, resolve, run_fast, world_of
from concsim.runs._defaults import layered_config
from concsim.scenarios import Scenario
from concsim.strategies import Replay

Build = Callable[[Runtime], object]


@dataclass
class AdhocRunResult(RunResult):
    """A :class:`RunResult` of an ad-hoc world; its replay command is set by whoever can
    rerun the world (the pytest plugin sets ``pytest NODE --concsim-replay FILE``)."""

    command: str | None = None

    def replay_command(self) -> str:
        if self.command is not None:
            return self.command
        return f"concsim.check({self.scenario.removeprefix('adhoc:')}, schedule={self.schedule!r})"


class NondeterministicModel(ConcsimError, RuntimeError):
    """A failing schedule did not fail the same way when replayed."""


@dataclass
class CheckResult:
    """The outcome of checking a target over many schedules."""

    target: str
    strategy: str
    seed: int
    schedules: int  # how many schedules were run
    failing: RunResult | None
    #: The schedule as found, when the shrinker changed it.
    original_schedule: str | None = None
    #: 0-based index of the failing schedule (its seed is ``seed + index``).
    index: int | None = None
    #: How many schedules were allowed.
    budget: int | None = None

    @property
    def ok(self) -> bool:
        return self.failing is None

    @property
    def failure(self) -> Failure | None:
        """The failure found, as :attr:`RunResult.failure` names it (``failing`` is the whole
        failing run: its schedule, trace and seed)."""
        return self.failing.failure if self.failing is not None else None

    def report(self, *, tail: int = 25) -> str:
        """A failure report that ends with the command that replays it."""
        if self.failing is None:
            return f"{self.target}: no failure in {self.schedules} schedules ({self.strategy})"
        res = self.failing
        f = res.failure
        assert f is not None
        how = (
            f"schedule #{self.index} (seed {res.seed}, strategy {self.strategy}; "
            f"{self.schedules} of {self.budget} schedules run)"
            if self.index is not None
            else "the replayed schedule"
        )
        inv = f" [{f.invariant}]" if f.invariant else ""
        lines = [
            f"concsim: {self.target}: failure in {how}",
            f"FAILURE {f.kind}{inv} at step {f.step}" + (f" in task {f.task}" if f.task else ""),
            f"  {f.message}",
        ]
        if res.trace:
            lines.append("last steps of the trace:")
            lines.append(
                format_trace([e for e in res.trace if e.step > f.step - tail], fail_step=f.step)
            )
        if "traceback" in f.details:
            lines.append(str(f.details["traceback"]).rstrip())
        if self.original_schedule is not None:
            lines.append(f"schedule: {res.schedule} (shrunk from {self.original_schedule})")
        else:
            lines.append(f"schedule: {res.schedule} ({len(res.choices)} choices, not shrunk)")
        if res.replay_file:
            lines.append(f"replay file: {res.replay_file}")
        lines.append(f"replay with: {res.replay_command()}")
        return "\n".join(lines)


def shrink_failure(failing: RunResult, rerun: Callable[[Strategy], RunResult]) -> RunResult:
    """Where the shrinker plugs in: return the smallest failing result found.

    ``rerun(strategy)`` runs the target once more under ``strategy``, with a trace.  The
    search is :func:`concsim.exploration.shrink`, given both kinds of candidate: choice lists
    replayed non-strictly (zeros past the end, out-of-range values clamped) and plans replayed
    by task identity.  What each candidate's choices meant and its exact preemptions are
    read from the run's own typed record (``RunResult.tasks``, ``envs``,
    ``preemptions``).  A candidate is an improvement when it fails the
    same way (kind and invariant).
    """
    from concsim.exploration import Attempt
    from concsim.exploration._minimize import shrink_by_replay

    results: dict[tuple[int, ...], RunResult] = {}

    def recorded(strategy: Strategy) -> Attempt:
        res = rerun(strategy)
        results[tuple(res.choices)] = res
        return Attempt(
            res.failure, list(res.choices), res.preemptions, res.steps, res.tasks, res.envs
        )

    original = recorded(Replay(list(failing.choices), strict=False))
    if original.failure is None or original.choices != list(failing.choices):
        return failing  # the confirmed replay is the caller's business; nothing to shrink
    best = shrink_by_replay(recorded, original, max_runs=500).best
    return results.get(tuple(best.choices), failing)


def _spawn_returned(rt: Runtime, ret: object) -> None:
    if ret is None:
        return
    if inspect.iscoroutine(ret):
        rt.spawn(ret.__name__, ret)
        return
    if isinstance(ret, Mapping):
        for name, coro in ret.items():
            rt.spawn(str(name), _coro(coro))
        return
    if isinstance(ret, Iterable) and not isinstance(ret, str | bytes):
        coros = [_coro(c) for c in ret]
        names = [getattr(c, "__name__", "task") for c in coros]
        for i, c in enumerate(coros):
            same = [j for j, n in enumerate(names) if n == names[i]]
            rt.spawn(names[i] if len(same) == 1 else f"{names[i]}{same.index(i)}", c)
        return
    raise UsageError(
        f"build(rt) returned a {type(ret).__name__}: return None (after rt.spawn), a "
        "coroutine, a list of coroutines, or a {name: coroutine} mapping"
    )


def _coro(c: object) -> Coroutine[Any, Any, Any]:
    if not inspect.iscoroutine(c):
        fn = getattr(c, "__name__", "f")
        hint = f" (call the async function: {fn}(), not {fn})" if callable(c) else ""
        raise UsageError(f"build(rt) returned {c!r} where a coroutine was expected{hint}")
    return c


def _adhoc_scenario(build: Build, name: str, max_steps: int) -> Scenario:
    def scenario_build(rt: Runtime, params: dict[str, Any], variant: Any) -> None:
        _spawn_returned(rt, build(rt))
        if not rt.tasks:
            raise UsageError(f"build {name} spawned no task and returned none")

    return Scenario(
        name=f"adhoc:{name}", summary="ad-hoc world", build=scenario_build, max_steps=max_steps
    )


def _world(
    target: str | Build,
    cfg: RunConfig,
    name: str | None,
) -> tuple[World, bool]:
    """The world ``check`` runs, and whether it is ad-hoc."""
    if isinstance(target, str):
        return resolve(cfg.replace(scenario=target)), False
    if not callable(target):
        raise UsageError(
            f"check() takes a scenario name or a build(rt) function, not {type(target).__name__}"
        )
    if cfg.variant is not None or cfg.params:
        raise UsageError("variant= and params= apply to registered scenarios, not to build(rt)")
    label = name or getattr(target, "__qualname__", None) or repr(target)
    scn = _adhoc_scenario(target, label, cfg.max_steps or 100_000)
    return world_of(scn, cfg), True


def _adhoc(res: RunResult, adhoc: bool) -> RunResult:
    if adhoc and not isinstance(res, AdhocRunResult):
        return AdhocRunResult(**{f.name: getattr(res, f.name) for f in fields(res)})
    return res


class Checking:
    """One check, a schedule per :meth:`step` (shared by :func:`check` and
    :func:`check_async`, and the pytest plugin through them).

    Schedule ``i`` is the run core's (:class:`concsim.runs.Runs`): the random walk or PCT
    seeded with ``seed + i``, or DFS's ``i``-th execution, the schedule ``concsim run``,
    ``explore`` and ``stress`` run for the same seed.
    """

    def __init__(self, world: World, *, adhoc: bool, schedules: int) -> None:
        if schedules < 1:
            raise UsageError(f"schedules must be at least 1, got {schedules}")
        self.world = world
        self.adhoc = adhoc
        self.budget = schedules
        self.config = world.config
        self.runs = Runs(world)
        self.ran = 0
        #: the result of the last schedule run (without its trace)
        self.last: RunResult | None = None
        self.result: CheckResult | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def step(self) -> bool:
        """Run one schedule; False once the check has its result."""
        if self.result is not None:
            return False
        cfg = self.config
        name = self.world.scenario.name
        got = self.runs.next()
        if got is None:  # DFS explored every schedule
            self.result = CheckResult(
                name, cfg.strategy, cfg.seed, self.ran, None, budget=self.budget
            )
            return False
        plan, ex = got
        self.ran += 1
        res = self.last = ex.result
        if not res.ok:
            self.result = self._finish(res, plan.index)
        elif self.ran >= self.budget:
            self.result = CheckResult(
                name, cfg.strategy, cfg.seed, self.ran, None, budget=self.budget
            )
        return self.result is None

    def _run(self, strategy: Strategy, seed: int | None, trace: bool) -> RunResult:
        res = run_fast(self.world, strategy, self.config.strategy, seed, trace=trace)
        return _adhoc(res, self.adhoc)

    def _finish(self, found: RunResult, index: int) -> CheckResult:
        """Replay the failing schedule with a trace (it must fail the same way), then
        shrink it."""
        sname = self.config.strategy
        again = self._run(Replay(found.choices, strict=True), found.seed, True)
        assert found.failure is not None
        if again.failure is None or again.failure.kind != found.failure.kind:
            got = "no failure" if again.failure is None else f"a {again.failure.kind} failure"
            raise NondeterministicModel(
                f"{self.world.scenario.name}: schedule {found.schedule} failed with "
                f"{found.failure.kind} but its replay gave {got}: the model is not "
                "deterministic (does it read a clock, a global random generator, or state "
                "kept from an earlier schedule?)"
            )

        def rerun(strategy: Strategy) -> RunResult:
            return self._run(strategy, found.seed, True)

        shrunk = shrink_failure(again, rerun)
        original = again.schedule if shrunk.schedule != again.schedule else None
        return CheckResult(
            self.world.scenario.name,
            sname,
            self.config.seed,
            self.ran,
            shrunk,
            original,
            index,
            self.budget,
        )


def checking(
    target: str | Build,
    *,
    schedules: int | None = None,
    name: str | None = None,
    config: RunConfig | None = None,
    **options: Any,
) -> Checking:
    """The :class:`Checking` of ``target`` (the arguments of :func:`check`), to step.
    ``schedules`` defaults to ``CONCSIM_SCHEDULES``, ``[tool.concsim]``, then 100."""
    cfg = _config(config, options)
    if schedules is None:
        schedules = layered_config({})[1] or 100
    world, adhoc = _world(target, cfg, name)
    return Checking(world, adhoc=adhoc, schedules=schedules)


def _config(config: RunConfig | None, options: Mapping[str, Any]) -> RunConfig:
    """``options`` over ``config``, else over the layered defaults (environment,
    ``[tool.concsim]``, built-ins: :mod:`concsim.runs._defaults`)."""
    base = config if config is not None else layered_config({})[0]
    given = {k: v for k, v in options.items() if v is not None}
    if "params" in given:
        given["params"] = dict(given["params"])
    return base.replace(**given)


def _replay_only(target: str | Build, cfg: RunConfig, name: str | None) -> CheckResult:
    world, adhoc = _world(target, cfg, name)
    assert cfg.schedule is not None
    choices = decode_schedule(cfg.schedule)
    res = _adhoc(run_fast(world, Replay(choices, strict=True), "replay", None, trace=True), adhoc)
    return CheckResult(world.scenario.name, "replay", cfg.seed, 1, None if res.ok else res)


def check(
    target: str | Build,
    *,
    schedules: int | None = None,
    seed: int | None = None,
    strategy: str | None = None,
    variant: str | None = None,
    params: Mapping[str, object] | None = None,
    schedule: str | list[int] | None = None,
    max_steps: int | None = None,
    depth: int | None = None,
    k: int | None = None,
    preemption_bound: int | None = None,
    reduction: bool | None = None,
    config: RunConfig | None = None,
    name: str | None = None,
) -> CheckResult:
    """Run up to ``schedules`` schedules of ``target``; stop at the first failure.

    ``target`` is a scenario name (with ``variant`` and ``params``) or a ``build(rt)``
    function (see the module doc).  ``strategy`` is ``random`` (the default), ``pct`` or
    ``dfs``, with its settings (``depth``, ``k``, ``preemption_bound``, ``reduction``);
    ``config`` gives them all at once as a :class:`concsim.runs.RunConfig` (the keywords
    given override it).  With ``schedule`` (a ``cs1:`` string or a list of choices), run
    exactly that schedule instead: a schedule that does not fit raises
    :class:`concsim.ScheduleMismatch`.
    """
    options: dict[str, Any] = {
        "seed": seed,
        "strategy": strategy,
        "variant": variant,
        "params": params,
        "max_steps": max_steps,
        "depth": depth,
        "k": k,
        "preemption_bound": preemption_bound,
        "reduction": reduction,
    }
    if schedule is not None:
        sched = schedule if isinstance(schedule, str) else encode_schedule(list(schedule))
        options["schedule"] = sched
        return _replay_only(target, _config(config, options), name)
    c = checking(target, schedules=schedules, name=name, config=config, **options)
    while c.step():
        pass
    assert c.result is not None
    return c.result


async def check_async(
    target: str | Build,
    *,
    schedules: int | None = None,
    seed: int | None = None,
    strategy: str | None = None,
    variant: str | None = None,
    params: Mapping[str, object] | None = None,
    max_steps: int | None = None,
    depth: int | None = None,
    k: int | None = None,
    preemption_bound: int | None = None,
    reduction: bool | None = None,
    config: RunConfig | None = None,
    name: str | None = None,
) -> CheckResult:
    """:func:`check` from a trio or asyncio program: yields to the host loop between
    schedules (through anyio); the model itself never sees the host loop, so the result is
    the one :func:`check` gives (the same :class:`Checking` steps both)."""
    import anyio.lowlevel

    options: dict[str, Any] = {
        "seed": seed,
        "strategy": strategy,
        "variant": variant,
        "params": params,
        "max_steps": max_steps,
        "depth": depth,
        "k": k,
        "preemption_bound": preemption_bound,
        "reduction": reduction,
    }
    c = checking(target, schedules=schedules, name=name, config=config, **options)
    while True:
        await anyio.lowlevel.checkpoint()
        if not c.step():
            break
    await anyio.lowlevel.checkpoint()
    assert c.result is not None
    return c.result
