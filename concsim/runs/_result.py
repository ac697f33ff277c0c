"""The outcome of one run: :class:`RunResult` (what every front end reports)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from concsim.engine import (
    ENV_CHOICE,
    TASK_CHOICE,
    Failure,
    Runtime,
    TraceEntry,
    encode_schedule,
)
from concsim.engine import trace_sha256 as _trace_sha256
from concsim.runs._config import RunConfig


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
    _trace_sha256: str | None = field(default=None, repr=False, compare=False)
    replay_file: str | None = None
    #: the typed record of the choices: ``"t"`` (which task runs) or ``"e"`` (an
    #: environment outcome) per choice, the id of the task each task choice ran, each
    #: environment outcome, and the exact number of preemptions
    kinds: str = ""
    tasks: tuple[int, ...] = ()
    envs: tuple[int, ...] = ()
    preemptions: int = 0
    #: the whole configuration of this run (its seed is this run's), which a replay file
    #: stores; ``None`` for results built by hand
    config: RunConfig | None = None
    #: the trace was recorded, so its hash is computed on first use (most runs of an
    #: exploration are never asked for it)
    _hash_trace: bool = field(default=False, repr=False, compare=False)

    @property
    def trace_sha256(self) -> str | None:
        """The hash of the recorded trace (None for an untraced run)."""
        if self._trace_sha256 is None and self._hash_trace:
            self._trace_sha256 = _trace_sha256(self.trace)
        return self._trace_sha256

    @trace_sha256.setter
    def trace_sha256(self, value: str | None) -> None:
        self._trace_sha256 = value

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
        if self.config is not None and self.config.max_steps is not None:
            parts += ["--max-steps", str(self.config.max_steps)]
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
            "preemptions": self.preemptions,
        }


def _param_text(v: object) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


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
        _hash_trace=rt.tracing,
        kinds=rt.choice_kinds.translate(_KIND_LETTERS).decode("ascii"),
        tasks=tuple(rt.choice_tasks),
        envs=tuple(rt.choice_envs),
        preemptions=rt.preemptions,
    )


_KIND_LETTERS = bytes.maketrans(bytes([TASK_CHOICE, ENV_CHOICE]), b"te")
