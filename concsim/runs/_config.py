"""One run configuration: everything a run depends on, in one frozen value.

Every front end (``concsim run``, ``explore``, ``stress``, ``shrink``, ``compare``,
:func:`concsim.check`, the pytest marker, ``bench-explore``) builds a :class:`RunConfig`
and hands it to the run core (:mod:`concsim.runs`).  A replay file stores it whole, so a
failure found with any setting (``--max-steps``, ``--depth``, ``--k``,
``--preemption-bound``, ``--param``) replays with ``concsim replay FILE`` and nothing else.

Where a setting's default comes from, first match wins (see :mod:`concsim.runs._defaults`
and ``concsim config``): the command line or the caller's keyword, an environment variable
(``CONCSIM_SEED``, ...), ``[tool.concsim]`` in the project's ``pyproject.toml``, then the
built-in value documented on each field below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from concsim._errors import UsageError
from concsim.strategies._pct import DEFAULT_DEPTH, MAX_DEPTH

#: The strategies every front end accepts (``RunConfig.strategy``).
STRATEGIES = ("random", "pct", "dfs")


@dataclass(frozen=True)
class RunConfig:
    """What one run, or one sequence of runs, of a scenario depends on.

    Schedule ``i`` of a configuration is the same schedule in every front end: the random
    walk and PCT seeded with ``seed + i``, DFS's ``i``-th execution (see
    :mod:`concsim.runs._plans`).  ``concsim run --seed S`` is schedule 0 of ``seed=S``.
    """

    #: The registered scenario's name (``concsim scenarios``); ad-hoc worlds of
    #: :func:`concsim.check` are ``"adhoc:<name>"`` and cannot be rebuilt from here.
    scenario: str = "default"
    #: The variant's name or a user variant spec (``file.py:Class``); ``None`` is the
    #: scenario's default variant.  Resolved configurations always name it.
    variant: str | None = None
    #: Scenario parameters (``--param NAME=VALUE``), as given or resolved (every parameter
    #: with its typed value); one point of a parameter sweep is just such a mapping.
    params: Mapping[str, Any] = field(default_factory=dict)
    #: ``random`` (a seeded random walk), ``pct`` (PCT, Burckhardt et al.) or ``dfs``
    #: (exhaustive search with DPOR).  Built-in: ``random``; env ``CONCSIM_STRATEGY``.
    strategy: str = "random"
    #: The base seed: schedule ``i`` of the random walk and PCT uses ``seed + i`` (DFS has
    #: none).  Built-in: 0; env ``CONCSIM_SEED``.
    seed: int = 0
    #: PCT's bug depth ``d`` (``d - 1`` priority change points).  Built-in: 3; env
    #: ``CONCSIM_DEPTH``.
    depth: int = DEFAULT_DEPTH
    #: PCT's ``k``, the number of choices a run is expected to make, among which the change
    #: points are drawn; ``None`` is the scenario's measured ``pct_k``.  Env ``CONCSIM_K``.
    k: int | None = None
    #: DFS: explore only schedules with at most this many preemptions (``None``: no bound).
    #: Env ``CONCSIM_MAX_PREEMPTIONS``.
    preemption_bound: int | None = None
    #: DFS: partial-order reduction (source-DPOR and sleep sets).  Built-in: on.
    reduction: bool = True
    #: Stop a run after this many engine steps with a ``step-limit`` failure; ``None`` is
    #: the scenario's limit.  Env ``CONCSIM_MAX_STEPS``.
    max_steps: int | None = None
    #: A recorded schedule (``cs1:...``) to replay exactly instead of asking the strategy.
    schedule: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {self.strategy!r} (known: {', '.join(STRATEGIES)})")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise UsageError(f"seed must be an integer, got {self.seed!r}")
        if not 1 <= self.depth <= MAX_DEPTH:
            raise UsageError(f"--depth must be between 1 and {MAX_DEPTH}, got {self.depth}")
        if self.k is not None and self.k < 1:
            raise UsageError(f"--k must be at least 1, got {self.k}")
        if self.preemption_bound is not None and self.preemption_bound < 0:
            raise UsageError(f"--preemption-bound must be 0 or more, got {self.preemption_bound}")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--max-steps must be at least 1, got {self.max_steps}")
        object.__setattr__(self, "params", dict(self.params))

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (the configuration itself never changes), checked
        as a new one is.  (What ``dataclasses.replace`` does, at a fraction of its cost: every
        run's result carries a copy with its seed.)"""
        unknown = changes.keys() - _FIELDS
        if unknown:
            return dataclasses.replace(self, **changes)  # its error names the field
        new = object.__new__(RunConfig)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        new.__post_init__()
        return new

    def to_json(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "config") -> RunConfig:
        """Rebuild a configuration; an unknown or ill-typed field is a one-line error."""
        if not isinstance(data, Mapping):
            raise UsageError(f"{where}: should be an object")
        known = {f.name: f for f in dataclasses.fields(cls)}
        for name in data:
            if name not in known:
                raise UsageError(f"{where}: unknown field {name!r}")
        for name, want in _TYPES.items():
            if name in data and not _is(data[name], want):
                raise UsageError(
                    f"{where}: field {name!r} should be {_TYPE_NAMES[name]}, "
                    f"got {type(data[name]).__name__}"
                )
        try:
            return cls(**dict(data))
        except UsageError as e:
            raise UsageError(f"{where}: {e}") from None


_TYPES: dict[str, tuple[type | None, ...]] = {
    "scenario": (str,),
    "variant": (str, None),
    "params": (dict,),
    "strategy": (str,),
    "seed": (int,),
    "depth": (int,),
    "k": (int, None),
    "preemption_bound": (int, None),
    "reduction": (bool,),
    "max_steps": (int, None),
    "schedule": (str, None),
}
_TYPE_NAMES = {
    n: " or ".join("null" if t is None else t.__name__ for t in ts) for n, ts in _TYPES.items()
}


def _is(v: object, want: tuple[type | None, ...]) -> bool:
    for t in want:
        if t is None:
            if v is None:
                return True
        elif t is int:
            if isinstance(v, int) and not isinstance(v, bool):
                return True
        elif isinstance(v, t):
            return True
    return False


def _jsonable(v: object) -> object:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


_FIELDS = frozenset(f.name for f in dataclasses.fields(RunConfig))
