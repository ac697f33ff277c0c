"""The Python API: run one schedule of a scenario, synchronously or from an async host.

``run`` builds a fresh world for the scenario and variant, runs it under a strategy (a
seeded random walk, or a replay of a recorded schedule) and returns a :class:`RunResult`.
``run_async`` does the same from a trio or asyncio program (through anyio): it runs the
schedules one by one and yields to the host loop between them, so the host stays
responsive.  The simulated tasks never touch the host loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from concsim._errors import UsageError
from concsim._version import __version__
from concsim.engine import Strategy, encode_schedule
from concsim.runs import (
    RunConfig,
    RunResult,
    config_of_replay,
    resolve,
    run_config,
    run_fast,
)
from concsim.strategies._pct import DEFAULT_DEPTH

DEFAULT_SCENARIO = "default"


def run(
    scenario: str = DEFAULT_SCENARIO,
    *,
    variant: str | None = None,
    seed: int = 0,
    strategy: str | Strategy = "random",
    params: Mapping[str, object] | None = None,
    schedule: str | list[int] | None = None,
    trace: bool = True,
    max_steps: int | None = None,
    depth: int = DEFAULT_DEPTH,
    k: int | None = None,
    preemption_bound: int | None = None,
    reduction: bool = True,
    config: RunConfig | None = None,
) -> RunResult:
    """Run one schedule of ``scenario``.

    The schedule is schedule 0 of the run configuration (:class:`concsim.runs.RunConfig`):
    ``strategy`` (``random``, ``pct`` or ``dfs``, with ``depth``, ``k``,
    ``preemption_bound``, ``reduction``) seeded with ``seed``, the same schedule every
    front end runs for that seed.  With ``schedule`` (a ``cs1:`` string or a list of
    choices) it is replayed exactly: a schedule that does not fit the model raises
    :class:`concsim.ScheduleMismatch`.  ``config`` gives the whole configuration at once.
    """
    if config is None:
        sched = None
        if schedule is not None:
            sched = schedule if isinstance(schedule, str) else encode_schedule(list(schedule))
        config = RunConfig(
            scenario=scenario,
            variant=variant,
            params=dict(params or {}),
            strategy=strategy if isinstance(strategy, str) else "random",
            seed=seed,
            depth=depth,
            k=k,
            preemption_bound=preemption_bound,
            reduction=reduction,
            max_steps=max_steps,
            schedule=sched,
        )
    if isinstance(strategy, str) or config.schedule is not None:
        return run_config(config, trace=trace)
    world = resolve(config)  # a strategy object of the caller's: one run under it
    return run_fast(
        world, strategy, getattr(strategy, "name", type(strategy).__name__), seed, trace=trace
    )


async def run_async(
    scenario: str = DEFAULT_SCENARIO,
    *,
    seeds: range | list[int] | None = None,
    stop_on_failure: bool = False,
    **kwargs: Any,
) -> list[RunResult]:
    """Run one schedule per seed from an async program (trio or asyncio, via anyio).

    Returns one result per seed, in order; with ``stop_on_failure=True`` it stops after the
    first failing seed (whose result is the last one returned).

    Between schedules it awaits ``anyio.lowlevel.checkpoint()``, so the host loop keeps
    running its own tasks; the model itself never sees the host loop, so the results are the
    ones ``run`` gives for the same seeds.
    """
    import anyio.lowlevel

    results: list[RunResult] = []
    for seed in seeds if seeds is not None else [kwargs.pop("seed", 0)]:
        await anyio.lowlevel.checkpoint()
        res = run(scenario, seed=seed, **kwargs)
        results.append(res)
        if stop_on_failure and not res.ok:
            break
    await anyio.lowlevel.checkpoint()
    return results


def version() -> str:
    return __version__


@dataclass
class ReplayOutcome:
    """A replayed file: the new result and whether it matches what the file expected."""

    result: RunResult
    expected: dict[str, Any]

    @property
    def same_failure_kind(self) -> bool:
        want = self.expected.get("failure")
        got = self.result.failure
        if want is None or got is None:
            return want is None and got is None
        return bool(want.get("kind") == got.kind)

    @property
    def same_trace(self) -> bool:
        want = self.expected.get("trace_sha256")
        return want is None or want == self.result.trace_sha256

    @property
    def reproduced(self) -> bool:
        return self.same_failure_kind and self.same_trace


def replay(path: str, *, trace: bool = True) -> ReplayOutcome:
    """Rerun a replay file exactly, under the whole configuration it stores.  Bad files and
    misfits raise one-line user errors."""
    from concsim.artifacts import load_replay

    rf = load_replay(path)
    cfg = config_of_replay(rf, str(path))
    res = run_config(cfg, trace=trace)
    res.seed = rf.seed
    res.strategy = rf.strategy
    res.replay_file = str(path)
    return ReplayOutcome(res, rf.expected)


def save_failure(result: RunResult, directory: str) -> str:
    """Write ``result`` as a replay file under ``directory``; return its path."""
    from pathlib import Path

    from concsim.artifacts import default_replay_name, replay_from_result, save_replay

    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create output folder {directory}: {e.strerror}") from None
    if not os.access(d, os.W_OK):
        raise UsageError(f"output folder {directory} is not writable")
    path = d / default_replay_name(result)
    save_replay(path, replay_from_result(result))
    result.replay_file = str(path)
    return str(path)
