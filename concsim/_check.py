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
from concsim.engine import Runtime, Strategy, decode_schedule, format_trace
from concsim.runs import RunResult, make_strategy, resolve_variant, run_world
from concsim.scenarios import Scenario, get_scenario
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
                format_trace([e for e in res.trace if e[0] > f.step - tail], fail_step=f.step)
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
    by task identity.  Each candidate runs under a :class:`~concsim.strategies.Recorder`, so
    its preemptions are counted exactly.  A candidate is an improvement when it fails the
    same way (kind and invariant).
    """
    from concsim.exploration import Attempt
    from concsim.exploration._minimize import shrink_by_replay
    from concsim.strategies import Recorder

    results: dict[tuple[int, ...], RunResult] = {}

    def recorded(strategy: Strategy) -> Attempt:
        rec = Recorder(strategy)
        res = rerun(rec)
        results[tuple(res.choices)] = res
        return Attempt(
            res.failure,
            list(res.choices),
            rec.preemptions,
            res.steps,
            tuple(rec.tasks),
            tuple(rec.envs),
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


@dataclass
class _Target:
    scn: Scenario
    vname: str
    vobj: Any
    params: dict[str, Any]
    adhoc: bool

    def run(self, strat: Strategy, sname: str, seed: int | None, trace: bool) -> RunResult:
        res = run_world(
            self.scn, self.vname, self.vobj, self.params, strat, sname, seed, trace, None
        )
        if self.adhoc:
            return AdhocRunResult(**{f.name: getattr(res, f.name) for f in fields(res)})
        return res


def _target(
    target: str | Build,
    variant: str | None,
    params: Mapping[str, object] | None,
    max_steps: int | None,
    name: str | None,
) -> _Target:
    if isinstance(target, str):
        scn = get_scenario(target)
        if max_steps is not None:
            scn = Scenario(
                scn.name,
                scn.summary,
                scn.build,
                scn.params,
                scn.variants,
                scn.default_variant,
                max_steps,
            )
        vname, vobj = resolve_variant(scn, variant)
        return _Target(scn, vname, vobj, scn.resolve_params(params), adhoc=False)
    if not callable(target):
        raise UsageError(
            f"check() takes a scenario name or a build(rt) function, not {type(target).__name__}"
        )
    if variant is not None or params:
        raise UsageError("variant= and params= apply to registered scenarios, not to build(rt)")
    label = name or getattr(target, "__qualname__", None) or repr(target)
    return _Target(_adhoc_scenario(target, label, max_steps or 100_000), "-", None, {}, adhoc=True)


def _confirm(tgt: _Target, found: RunResult, sname: str) -> RunResult:
    """Replay a failing schedule with a trace; it must fail the same way."""
    again = tgt.run(Replay(found.choices, strict=True), sname, found.seed, True)
    assert found.failure is not None
    if again.failure is None or again.failure.kind != found.failure.kind:
        got = "no failure" if again.failure is None else f"a {again.failure.kind} failure"
        raise NondeterministicModel(
            f"{tgt.scn.name}: schedule {found.schedule} failed with {found.failure.kind} but "
            f"its replay gave {got}: the model is not deterministic (does it read a clock, "
            "a global random generator, or state kept from an earlier schedule?)"
        )
    return again


def _rerun_for_shrinker(
    tgt: _Target, sname: str, seed: int | None
) -> Callable[[Strategy], RunResult]:
    def rerun(strategy: Strategy) -> RunResult:
        return tgt.run(strategy, sname, seed, True)

    return rerun


def _finish(
    tgt: _Target, found: RunResult, sname: str, base: int, index: int, budget: int
) -> CheckResult:
    confirmed = _confirm(tgt, found, sname)
    shrunk = shrink_failure(confirmed, _rerun_for_shrinker(tgt, sname, found.seed))
    original = confirmed.schedule if shrunk.schedule != confirmed.schedule else None
    return CheckResult(tgt.scn.name, sname, base, index + 1, shrunk, original, index, budget)


def check(
    target: str | Build,
    *,
    schedules: int = 100,
    seed: int = 0,
    strategy: str = "random",
    variant: str | None = None,
    params: Mapping[str, object] | None = None,
    schedule: str | list[int] | None = None,
    max_steps: int | None = None,
    name: str | None = None,
) -> CheckResult:
    """Run up to ``schedules`` schedules of ``target``; stop at the first failure.

    ``target`` is a scenario name (with ``variant`` and ``params``) or a ``build(rt)``
    function (see the module doc).  With ``schedule`` (a ``cs1:`` string or a list of
    choices), run exactly that schedule instead: a schedule that does not fit raises
    :class:`concsim.ScheduleMismatch`.
    """
    tgt = _target(target, variant, params, max_steps, name)
    if schedule is not None:
        choices = decode_schedule(schedule) if isinstance(schedule, str) else list(schedule)
        res = tgt.run(Replay(choices, strict=True), "replay", None, True)
        return CheckResult(tgt.scn.name, "replay", seed, 1, None if res.ok else res)
    if schedules < 1:
        raise UsageError(f"schedules must be at least 1, got {schedules}")
    for i in range(schedules):
        res = tgt.run(
            make_strategy(strategy, seed + i, scenario=tgt.scn), strategy, seed + i, False
        )
        if not res.ok:
            return _finish(tgt, res, strategy, seed, i, schedules)
    return CheckResult(tgt.scn.name, strategy, seed, schedules, None, budget=schedules)


async def check_async(
    target: str | Build,
    *,
    schedules: int = 100,
    seed: int = 0,
    strategy: str = "random",
    variant: str | None = None,
    params: Mapping[str, object] | None = None,
    max_steps: int | None = None,
    name: str | None = None,
) -> CheckResult:
    """:func:`check` from a trio or asyncio program: yields to the host loop between
    schedules (through anyio); the model itself never sees the host loop, so the result is
    the one :func:`check` gives."""
    import anyio.lowlevel

    tgt = _target(target, variant, params, max_steps, name)
    if schedules < 1:
        raise UsageError(f"schedules must be at least 1, got {schedules}")
    for i in range(schedules):
        await anyio.lowlevel.checkpoint()
        res = tgt.run(
            make_strategy(strategy, seed + i, scenario=tgt.scn), strategy, seed + i, False
        )
        if not res.ok:
            return _finish(tgt, res, strategy, seed, i, schedules)
    await anyio.lowlevel.checkpoint()
    return CheckResult(tgt.scn.name, strategy, seed, schedules, None, budget=schedules)
