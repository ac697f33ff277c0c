"""Named, parameterised workloads.

A scenario says which tasks run and on what world; the variant (which version of the code
under test) is chosen separately, from the scenario's variant family.  Parameters are typed
and documented, so ``concsim scenarios`` can list them and ``--param k=v`` can be checked
with a one-line error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from concsim._errors import Interrupted, UsageError
from concsim.engine import Runtime

ParamValue = int | float | str | bool


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: ParamValue
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, raw: object) -> ParamValue:
        """Turn a CLI string (or a Python value) into this parameter's type, or refuse."""
        v: ParamValue
        try:
            if self.type is bool:
                if isinstance(raw, bool):
                    v = raw
                elif str(raw).lower() in ("1", "true", "yes", "on"):
                    v = True
                elif str(raw).lower() in ("0", "false", "no", "off"):
                    v = False
                else:
                    raise ValueError(raw)
            elif self.type is int:
                if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                    raise ValueError(raw)
                v = int(str(raw), 0) if isinstance(raw, str) else int(raw)  # type: ignore[call-overload]
            elif self.type is float:
                v = float(raw)  # type: ignore[arg-type]
                if not math.isfinite(v):
                    raise ValueError(raw)
            else:
                v = str(raw)
        except (TypeError, ValueError):
            raise UsageError(
                f"parameter {self.name}={raw!r} is not a valid {self.type.__name__}"
            ) from None
        if self.choices is not None and v not in self.choices:
            raise UsageError(
                f"parameter {self.name}={v!r} must be one of: {', '.join(self.choices)}"
            )
        if self.minimum is not None and float(v) < self.minimum:
            raise UsageError(f"parameter {self.name}={v!r} must be at least {self.minimum:g}")
        if self.maximum is not None and float(v) > self.maximum:
            raise UsageError(f"parameter {self.name}={v!r} must be at most {self.maximum:g}")
        return v


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    build: Callable[[Runtime, dict[str, ParamValue], Any], None]
    params: tuple[Param, ...] = ()
    #: name -> variant object; the first is the default.
    variants: Callable[[], Mapping[str, Any]] = field(default=lambda: {"-": None})
    default_variant: str = "-"
    max_steps: int = 100_000
    #: PCT's expected number of choices per run (measured on the default parameters)
    pct_k: int = 50
    #: the step limit for given parameters when it follows the scenario's work (pages,
    #: accesses, events); ``None``: ``max_steps`` whatever the parameters
    step_limit: Callable[[dict[str, ParamValue]], int] | None = None

    def steps_for(self, params: Mapping[str, ParamValue]) -> int:
        """The step limit of a run with ``params`` (a run beyond it is a suspected livelock)."""
        if self.step_limit is None:
            return self.max_steps
        return max(self.max_steps, self.step_limit(dict(params)))

    #: Checks the parameters together (one parameter's range against another's); raises
    #: :class:`UsageError`.
    check_params: Callable[[dict[str, ParamValue]], None] | None = None

    def build_world(self, rt: Runtime, params: dict[str, ParamValue], variant: Any) -> None:
        """Build the world; a ``SystemExit`` or ``KeyboardInterrupt`` that the variant's own
        code raises while it is built (a driver's ``__init__``) is a one-line user error, never
        a silent exit that reads as a pass."""
        try:
            self.build(rt, params, variant)
        except (Exception, GeneratorExit, Interrupted):
            raise
        except BaseException as e:
            detail = f"({e.args[0]!r})" if e.args else ""
            raise UsageError(
                f"variant {getattr(variant, 'name', variant)!r} raised "
                f"{type(e).__name__}{detail} while the world was built: fix the variant"
            ) from None

    def resolve_params(self, given: Mapping[str, object] | None) -> dict[str, ParamValue]:
        by_name = {p.name: p for p in self.params}
        out: dict[str, ParamValue] = {p.name: p.default for p in self.params}
        for k, raw in (given or {}).items():
            p = by_name.get(k)
            if p is None:
                known = ", ".join(by_name) or "none"
                raise UsageError(
                    f"scenario {self.name!r} has no parameter {k!r} (its parameters: {known})"
                )
            out[k] = p.parse(raw)
        if self.check_params is not None:
            self.check_params(out)
        return out


_SCENARIOS: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    if scenario.name in _SCENARIOS:
        raise UsageError(f"scenario {scenario.name!r} registered twice")
    _SCENARIOS[scenario.name] = scenario
    return scenario


def _plugins() -> None:
    # Plug-ins register on import: entry points and CONCSIM_IMPORT, once per process.
    from concsim.scenarios._plugins import load_plugins

    load_plugins()


def get_scenario(name: str) -> Scenario:
    if name not in _SCENARIOS:
        _plugins()
    try:
        return _SCENARIOS[name]
    except KeyError:
        raise UsageError(
            f"unknown scenario {name!r} (known: {', '.join(sorted(_SCENARIOS))}; "
            "see 'concsim scenarios')"
        ) from None


def all_scenarios() -> list[Scenario]:
    _plugins()
    return [_SCENARIOS[k] for k in sorted(_SCENARIOS)]


def parse_param_args(items: list[str]) -> dict[str, str]:
    """``["pages=64", "vcpus=2"]`` -> dict; a malformed item is a one-line error."""
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise UsageError(f"--param takes NAME=VALUE, got {item!r}")
        out[k.strip()] = v.strip()
    return out
