"""The explorer: many schedules of one target, under random, PCT or exhaustive search.

One :class:`Exploration` runs one schedule per :meth:`Exploration.step`, so the synchronous
:func:`explore` and the asynchronous :func:`explore_async` (which yields to the host loop
between schedules) share everything.  Nothing that decides a schedule reads a clock: the
wall clock only measures ``elapsed_s``.

The schedules come from the run core (:class:`concsim.runs.Runs`): schedule ``i`` of a
random or PCT exploration uses the seed ``seed + i``, PCT with the configuration's ``k``
(the scenario's ``pct_k`` unless given), and DFS's ``i``-th execution; so schedule ``i``
here is the schedule ``concsim run --seed SEED+i``, ``stress``, ``check`` and the pytest
marker run.

On the first failure the exploration stops (unless told not to), shrinks the schedule
(:mod:`concsim.exploration._shrink`) and, when asked, saves a replay file holding the shrunk
schedule and the original one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concsim._errors import UsageError
from concsim.engine import encode_schedule
from concsim.exploration._coverage import Coverage
from concsim.exploration._minimize import shrink_on_target
from concsim.exploration._runner import Execution, Target, execute, make_target
from concsim.exploration._shrink import Attempt
from concsim.runs import RunResult, Runs
from concsim.strategies import Replay
from concsim.strategies._pct import DEFAULT_DEPTH, MAX_DEPTH

STRATEGIES = ("random", "pct", "dfs")
DEFAULT_SCHEDULES = 1000
DEFAULT_DFS_EXECUTIONS = 100_000
DEFAULT_WINDOW = 200


@dataclass
class FirstFailure:
    """The first failing schedule of an exploration, and its shrunk form."""

    kind: str
    invariant: str | None
    message: str
    schedule_index: int
    preemptions: int
    shrunk_preemptions: int
    schedule: str
    shrunk_schedule: str
    steps: int
    shrunk_steps: int
    shrink_runs: int
    result: RunResult
    replay_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "invariant": self.invariant,
            "message": self.message,
            "schedule_index": self.schedule_index,
            "preemptions": self.preemptions,
            "shrunk_preemptions": self.shrunk_preemptions,
            "replay_file": self.replay_file,
            "schedule": self.schedule,
            "shrunk_schedule": self.shrunk_schedule,
            "steps": self.steps,
            "shrunk_steps": self.shrunk_steps,
        }


@dataclass
class ExploreResult:
    scenario: str
    variant: str
    params: dict[str, Any]
    strategy: str
    seed: int
    #: runs that went to the end (a failure or every task finished)
    schedules_run: int
    #: every run of the model, including the ones DFS cut short (sleep-set blocked)
    executions: int
    complete: bool
    first_failure: FirstFailure | None
    elapsed_s: float
    coverage: Coverage
    stopped_by: str = ""
    #: DFS only: backtrack options still open when the search stopped (0 when complete)
    open_backtracks: int | None = None
    failures: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    #: failing schedules per failure signature
    signatures: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.first_failure is None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "strategy": self.strategy,
            "schedules_run": self.schedules_run,
            "complete": self.complete,
            "executions": self.executions,
            "first_failure": self.first_failure.to_json() if self.first_failure else None,
            "elapsed_s": round(self.elapsed_s, 4),
            "coverage": self.coverage.to_json(),
            "scenario": self.scenario,
            "variant": self.variant,
            "params": self.params,
            "seed": self.seed,
            "stopped_by": self.stopped_by,
            "open_backtracks": self.open_backtracks,
            "options": self.options,
            "failures": self.failures,
            "signatures": dict(self.signatures),
        }


class Exploration:
    """One exploration, run a schedule at a time (see the module doc)."""

    def __init__(
        self,
        target: Target,
        *,
        strategy: str = "random",
        schedules: int | None = None,
        seed: int = 0,
        depth: int = DEFAULT_DEPTH,
        preemption_bound: int | None = None,
        reduction: bool = True,
        k: int | None = None,
        until_coverage: bool = False,
        coverage_window: int = DEFAULT_WINDOW,
        stop_on_failure: bool = True,
        shrink_failure: bool = True,
        save_dir: str | None = None,
        max_shrink_runs: int = 2000,
    ) -> None:
        if strategy not in STRATEGIES:
            raise UsageError(
                f"unknown strategy {strategy!r} for explore (known: {', '.join(STRATEGIES)})"
            )
        if schedules is not None and schedules < 1:
            raise UsageError(f"--schedules must be at least 1, got {schedules}")
        if not 1 <= depth <= MAX_DEPTH:
            raise UsageError(f"--depth must be between 1 and {MAX_DEPTH}, got {depth}")
        if not reduction and strategy != "dfs":
            raise UsageError("--no-reduction applies to --strategy dfs only")
        if preemption_bound is not None and preemption_bound < 0:
            raise UsageError(f"--preemption-bound must be 0 or more, got {preemption_bound}")
        if coverage_window < 1:
            raise UsageError(f"--coverage-window must be at least 1, got {coverage_window}")
        self.target = target
        self.strategy = strategy
        default = DEFAULT_DFS_EXECUTIONS if strategy == "dfs" else DEFAULT_SCHEDULES
        self.limit = schedules if schedules is not None else default
        self.seed = seed
        self.depth = depth
        self.until_coverage = until_coverage
        self.window = coverage_window
        self.stop_on_failure = stop_on_failure
        self.shrink_failure = shrink_failure
        self.save_dir = save_dir
        self.max_shrink_runs = max_shrink_runs
        cfg = target.config.replace(
            strategy=strategy,
            seed=seed,
            depth=depth,
            k=k,
            preemption_bound=preemption_bound,
            reduction=reduction,
        )
        self.world = target.with_settings(cfg)
        self.runs = Runs(self.world, observe=True, trace=True)
        self.coverage = Coverage(depth=depth)
        self.executions = 0
        self.schedules_run = 0
        self.failures = 0
        self.first: FirstFailure | None = None
        #: the last schedule's run
        self.last: Execution | None = None
        self.complete = False
        self.stopped_by = ""
        #: why ``save_dir`` could not be written (the failure is reported all the same)
        self.save_error: str | None = None
        #: failing schedules per failure signature (all of them with ``stop_on_failure`` off)
        self.signatures: dict[str, int] = {}
        self._quiet = 0  # schedules since the last new racing-pair orientation
        self._done = False
        self._elapsed = 0.0
        self.options: dict[str, Any] = {
            "depth": depth,
            "k": k,
            "preemption_bound": preemption_bound,
            "reduction": reduction if strategy == "dfs" else None,
            "until_coverage": until_coverage,
            "coverage_window": coverage_window if until_coverage else None,
            "limit": self.limit,
        }

    @property
    def done(self) -> bool:
        return self._done

    def step(self) -> bool:
        """Run one schedule.  Returns False once the exploration is over."""
        if self._done:
            return False
        t0 = time.perf_counter()
        i = self.executions
        got = self.runs.next()
        if got is None:  # pragma: no cover - a DFS planner says so after its last run
            self._done = True
            return False
        ex = got[1]
        self.last = ex
        self.executions += 1
        if not ex.pruned:
            self.schedules_run += 1
        new = self.coverage.observe(ex.steps, ex.ntasks, ex.task_choices)
        self._quiet = 0 if new else self._quiet + 1
        more = True
        if getattr(self.runs.planner, "complete", False):
            more = False
            self.complete = True
            self.stopped_by = "complete"
        if ex.failure is not None:
            self.failures += 1
            sig = ex.failure.signature
            self.signatures[sig] = self.signatures.get(sig, 0) + 1
            if self.first is None:
                self.first = self._report(ex, i)
            if self.stop_on_failure:
                more = False
                self.stopped_by = "failure"
        if more and self.executions >= self.limit:
            more = False
            self.stopped_by = "limit"
        if more and self.until_coverage and self._quiet >= self.window:
            more = False
            self.stopped_by = "coverage"
        self._elapsed += time.perf_counter() - t0
        self._done = not more
        return more

    # ------------------------------------------------------------------ failures

    def _report(self, ex: Execution, index: int) -> FirstFailure:
        f = ex.failure
        assert f is not None
        res = ex.result
        original = Attempt(f, list(res.choices), ex.preemptions, res.steps)
        best = original
        runs = 0
        rres = None
        if self.shrink_failure:
            try:
                sr = shrink_on_target(
                    self.world,
                    original.choices,
                    max_runs=self.max_shrink_runs,
                    strategy=res.strategy,
                    seed=res.seed,
                )
            except UsageError:
                pass  # it did not fail again when replayed: report it as found
            else:
                best, runs, rres = sr.best, sr.runs, sr.result
        if rres is None:
            # The saved and reported run is the schedule replayed strictly, with a trace.
            rres = execute(
                self.world, Replay(best.choices, strict=True), res.strategy, res.seed
            ).result
        final = rres.failure or f
        out = FirstFailure(
            kind=final.kind,
            invariant=final.invariant,
            message=final.message,
            schedule_index=index,
            preemptions=original.preemptions,
            shrunk_preemptions=best.preemptions,
            schedule=encode_schedule(original.choices),
            shrunk_schedule=encode_schedule(best.choices),
            steps=original.steps,
            shrunk_steps=best.steps,
            shrink_runs=runs,
            result=rres,
        )
        if self.save_dir is not None:
            try:
                out.replay_file = _save(rres, self.save_dir, out.schedule)
            except UsageError as e:  # the failure is still reported; the caller says why
                self.save_error = str(e)
        return out

    def result(self) -> ExploreResult:
        t = self.target
        return ExploreResult(
            scenario=t.scenario.name,
            variant=t.variant,
            params=dict(t.params),
            strategy=self.strategy,
            seed=self.seed,
            schedules_run=self.schedules_run,
            executions=self.executions,
            complete=self.complete,
            first_failure=self.first,
            elapsed_s=self._elapsed,
            coverage=self.coverage,
            stopped_by=self.stopped_by,
            failures=self.failures,
            open_backtracks=self._open_backtracks(),
            options=dict(self.options),
            signatures=dict(self.signatures),
        )

    def _open_backtracks(self) -> int | None:
        search = getattr(self.runs.planner, "search", None)
        return search.open_points() if search is not None else None


def _save(result: RunResult, directory: str, original: str) -> str:
    from concsim.artifacts import default_replay_name, replay_from_result, save_replay

    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create output folder {directory}: {e.strerror}") from None
    path = d / default_replay_name(result)
    save_replay(path, replay_from_result(result, original=original))
    result.replay_file = str(path)
    return str(path)


def _exploration(scenario: str, kwargs: dict[str, Any]) -> Exploration:
    target = make_target(
        scenario,
        kwargs.pop("variant", None),
        kwargs.pop("params", None),
        kwargs.pop("max_steps", None),
    )
    return Exploration(target, **kwargs)


def explore(
    scenario: str = "counter",
    *,
    progress: Callable[[Exploration], None] | None = None,
    stop: Callable[[], bool] | None = None,
    **kwargs: Any,
) -> ExploreResult:
    """Explore many schedules of ``scenario`` and return an :class:`ExploreResult`.

    Keyword arguments: ``variant``, ``params``, ``max_steps``, and those of
    :class:`Exploration` (``strategy`` = ``"random"``, ``"pct"`` or ``"dfs"``,
    ``schedules``, ``seed``, ``depth``, ``preemption_bound``, ``reduction``,
    ``until_coverage``, ``coverage_window``, ``stop_on_failure``, ``shrink_failure``,
    ``save_dir``).  ``progress`` is called after every schedule; when ``stop()`` turns true
    the exploration ends after the schedule it is running (``stopped_by`` "interrupted").
    """
    ex = _exploration(scenario, dict(kwargs))
    while ex.step():
        if progress is not None:
            progress(ex)
        if stop is not None and stop():
            ex.stopped_by = "interrupted"
            break
    if progress is not None:
        progress(ex)
    return ex.result()


async def explore_async(
    scenario: str = "counter",
    *,
    progress: Callable[[Exploration], None] | None = None,
    **kwargs: Any,
) -> ExploreResult:
    """:func:`explore` from a trio or asyncio program (through anyio).

    Awaits ``anyio.lowlevel.checkpoint()`` between schedules, so the host loop stays
    responsive; the schedules, and so the result, are the ones :func:`explore` gives.
    """
    import anyio.lowlevel

    ex = _exploration(scenario, dict(kwargs))
    while True:
        await anyio.lowlevel.checkpoint()
        more = ex.step()
        if progress is not None:
            progress(ex)
        if not more:
            break
    return ex.result()
