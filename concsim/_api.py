"""The Python API: run one schedule of a scenario, synchronously or from an async host.

``run`` builds a fresh world for the scenario and variant, runs it under a strategy (a
seeded random walk, or a replay of a recorded schedule) and returns a :class:`RunResult`.
``run_async`` does the same from a trio or asyncio program (through anyio): it runs the
schedules one by one and yields to the host loop between them, so the host stays
responsive.  The simulated tasks never touch the host loop.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from concsim._errors import UsageError
from concsim._version import __version__
from concsim.engine import Failure, Runtime, Strategy, TraceEntry, decode_schedule, encode_schedule
from concsim.engine import trace_sha256 as _trace_sha256
from concsim.scenarios import Scenario, get_scenario
from concsim.strategies import RandomWalk, Replay

if TYPE_CHECKING:
    from concsim.artifacts import ReplayFile

DEFAULT_SCENARIO = "default"
STRATEGIES = ("random", "pct")


@dataclass
class RunResult:
    """The outcome of one schedule."""

    scenario: str
    variant: str
    params: dict[str, Any]
    strategy: str
    seed: int | None
    choices: list[int]
    steps: int
    failure: Failure | None
    stats: dict[str, int]
    trace: list[TraceEntry] = field(default_factory=list)
    trace_sha256: str | None = None
    replay_file: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def schedule(self) -> str:
        return encode_schedule(self.choices)

    def replay_command(self) -> str:
        """The shell command that reruns exactly this schedule."""
        if self.replay_file:
            return f"concsim replay {self.replay_file}"
        parts = ["concsim", "run", "--scenario", self.scenario, "--variant", self.variant]
        for k, v in self.params.items():
            parts += ["--param", f"{k}={_param_text(v)}"]
        parts += ["--schedule", self.schedule]
        return " ".join(shlex.quote(p) for p in parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seed": self.seed,
            "scenario": self.scenario,
            "variant": self.variant,
            "params": self.params,
            "strategy": self.strategy,
            "steps": self.steps,
            "trace_sha256": self.trace_sha256,
            "schedule": self.schedule,
            "failure": self.failure.to_json() if self.failure else None,
            "replay_file": self.replay_file,
            "stats": self.stats,
        }


def _param_text(v: object) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def resolve_variant(scn: Scenario, variant: str | None) -> tuple[str, Any]:
    """Name and object of the variant; an unknown name is a one-line error.

    A name with a ``:`` is a user variant, ``path/to/file.py:ClassName`` or
    ``package.module:ClassName`` (see docs/variant-api.md), accepted by the scenarios whose
    variants are driver classes; the spec string itself is the variant's name, so replay
    files, stress workers and ``replay_command()`` load it again from it.
    """
    variants = scn.variants()
    name = variant if variant is not None else scn.default_variant
    if name not in variants and ":" in name:
        return name, _load_user_variant(scn, name, variants)
    if name not in variants:
        raise UsageError(
            f"unknown variant {name!r} for scenario {scn.name!r} "
            f"(known: {', '.join(variants)}; see 'concsim variants')"
        )
    return name, variants[name]


def _load_user_variant(scn: Scenario, spec: str, variants: Mapping[str, Any]) -> Any:
    from concsim.driver import MshvDriverBase
    from concsim.driver._loader import load_variant

    default = variants.get(scn.default_variant)
    if not (isinstance(default, type) and issubclass(default, MshvDriverBase)):
        raise UsageError(
            f"scenario {scn.name!r} takes only its own variants ({', '.join(variants)}): "
            f"a user variant like {spec!r} is a driver class, for the mshv scenarios "
            "(default, small)"
        )
    return load_variant(spec)


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
) -> RunResult:
    """Run one schedule of ``scenario``.

    The schedule is decided by ``strategy`` seeded with ``seed`` or, when ``schedule`` is
    given (a ``cs1:`` string or a list of choices), replayed exactly: a schedule that does
    not fit the model raises :class:`concsim.ScheduleMismatch`.
    """
    scn = get_scenario(scenario)
    vname, vobj = resolve_variant(scn, variant)
    resolved = scn.resolve_params(params)
    strat: Strategy
    if schedule is not None:
        choices = decode_schedule(schedule) if isinstance(schedule, str) else list(schedule)
        strat = Replay(choices, strict=True)
        sname = "replay"
    elif isinstance(strategy, str):
        strat = make_strategy(strategy, seed, scenario=scenario)
        sname = strategy
    else:
        strat = strategy
        sname = getattr(strategy, "name", type(strategy).__name__)
    return run_world(scn, vname, vobj, resolved, strat, sname, seed, trace, max_steps)


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


def result_of(
    rt: Runtime,
    scenario: str,
    variant: str,
    params: Mapping[str, Any],
    strategy: str,
    seed: int | None,
    failure: Failure | None,
) -> RunResult:
    """The :class:`RunResult` of a finished runtime (its trace hashed if it kept one)."""
    stats = dict(rt.stats)
    stats["steps"] = rt.step
    return RunResult(
        scenario=scenario,
        variant=variant,
        params=dict(params),
        strategy=strategy,
        seed=seed,
        choices=rt.choices,
        steps=rt.step,
        failure=failure,
        stats=stats,
        trace=rt.trace,
        trace_sha256=_trace_sha256(rt.trace) if rt.tracing else None,
    )


async def run_async(
    scenario: str = DEFAULT_SCENARIO,
    *,
    seeds: range | list[int] | None = None,
    stop_on_failure: bool = True,
    **kwargs: Any,
) -> list[RunResult]:
    """Run one schedule per seed from an async program (trio or asyncio, via anyio).

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


def replay_variant(rf: ReplayFile) -> str:
    """The variant to load for a replay file: a user variant given by a relative path is
    found from the current directory, else by the absolute path the file also recorded."""
    from concsim._varspec import is_variant_spec, spec_to_load

    if is_variant_spec(rf.variant):
        return spec_to_load(rf.variant, rf.extra.get("variant_absolute"))
    return rf.variant


def replay(path: str, *, trace: bool = True) -> ReplayOutcome:
    """Rerun a replay file exactly.  Bad files and misfits raise one-line user errors."""
    from concsim.artifacts import load_replay

    rf = load_replay(path)
    res = run(
        rf.scenario,
        variant=replay_variant(rf),
        params=rf.params,
        schedule=rf.schedule,
        trace=trace,
        seed=rf.seed if rf.seed is not None else 0,
    )
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
