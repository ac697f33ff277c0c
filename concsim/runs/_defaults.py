"""Where a run setting's default comes from: the command line (or the caller's keyword),
then an environment variable, then ``[tool.concsim]`` in the project's ``pyproject.toml``
(the nearest one up from the current folder), then the built-in value.

``concsim config`` prints every setting with its resolved value and where it came from::

    [tool.concsim]
    strategy = "pct"
    schedules = 500
    max_preemptions = 2      # or preemption_bound

Environment variables: ``CONCSIM_SCENARIO``, ``CONCSIM_VARIANT``, ``CONCSIM_STRATEGY``,
``CONCSIM_SEED``, ``CONCSIM_SCHEDULES``, ``CONCSIM_DEPTH``, ``CONCSIM_K``,
``CONCSIM_MAX_PREEMPTIONS``, ``CONCSIM_REDUCTION``, ``CONCSIM_MAX_STEPS``.  A value that
does not parse is a one-line error naming where it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concsim._errors import UsageError
from concsim.runs._config import RunConfig
from concsim.strategies._pct import DEFAULT_DEPTH


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    kind: type
    default: Any
    optional: bool
    help: str


#: Every setting with a layered default, in ``concsim config``'s order.
SETTINGS: tuple[Setting, ...] = (
    Setting("scenario", "CONCSIM_SCENARIO", str, "default", False, "scenario to run"),
    Setting("variant", "CONCSIM_VARIANT", str, None, True, "variant (scenario's default)"),
    Setting("strategy", "CONCSIM_STRATEGY", str, "random", False, "random | pct | dfs"),
    Setting("seed", "CONCSIM_SEED", int, 0, False, "base seed (schedule i: seed + i)"),
    Setting("schedules", "CONCSIM_SCHEDULES", int, None, True, "schedules per exploration"),
    Setting("depth", "CONCSIM_DEPTH", int, DEFAULT_DEPTH, False, "PCT bug depth"),
    Setting("k", "CONCSIM_K", int, None, True, "PCT's k (scenario's pct_k)"),
    Setting(
        "preemption_bound",
        "CONCSIM_MAX_PREEMPTIONS",
        int,
        None,
        True,
        "DFS preemption bound (none)",
    ),
    Setting("reduction", "CONCSIM_REDUCTION", bool, True, False, "DFS partial-order reduction"),
    Setting("max_steps", "CONCSIM_MAX_STEPS", int, None, True, "step limit (scenario's)"),
)
BY_NAME = {s.name: s for s in SETTINGS}
#: Other spellings accepted in [tool.concsim].
ALIASES = {"max_preemptions": "preemption_bound", "max-preemptions": "preemption_bound"}


@dataclass(frozen=True)
class Resolved:
    value: Any
    #: "command line", "environment (NAME)", "pyproject.toml (PATH)" or "built-in"
    source: str


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` from ``start`` (default: the current folder) up."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        p = d / "pyproject.toml"
        if p.is_file():
            return p
    return None


def _pyproject_table(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: cannot read [tool.concsim] ({e})") from None
    table = data.get("tool", {}).get("concsim", {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.concsim] should be a table")
    out: dict[str, Any] = {}
    for key, v in table.items():
        name = ALIASES.get(str(key), str(key)).replace("-", "_")
        if name not in BY_NAME:
            raise UsageError(
                f"{path}: [tool.concsim] has no setting {key!r} (known: {', '.join(BY_NAME)})"
            )
        out[name] = v
    return out


def _parse(s: Setting, raw: object, where: str) -> Any:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none")):
        if s.optional:
            return None
        raise UsageError(f"{where}: {s.name} needs a value")
    try:
        if s.kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if s.kind is int:
            if isinstance(raw, bool | float):
                raise ValueError(raw)
            return int(str(raw).strip(), 0) if isinstance(raw, str) else int(raw)  # type: ignore[call-overload]
        return str(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {s.name}={raw!r} is not a valid {s.kind.__name__}") from None


def resolve_settings(
    given: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    pyproject: Path | None = None,
    search: bool = True,
) -> dict[str, Resolved]:
    """Every setting's value and source.  ``given`` holds what the command line or the
    caller said (``None``: not said); ``pyproject`` is the file to read (found from the
    current folder when ``search``)."""
    env = os.environ if environ is None else environ
    path = pyproject if pyproject is not None else (find_pyproject() if search else None)
    table = _pyproject_table(path)
    out: dict[str, Resolved] = {}
    for s in SETTINGS:
        g = (given or {}).get(s.name)
        if g is not None:
            out[s.name] = Resolved(g, "command line")
        elif s.env in env:
            out[s.name] = Resolved(_parse(s, env[s.env], s.env), f"environment ({s.env})")
        elif s.name in table:
            out[s.name] = Resolved(
                _parse(s, table[s.name], f"{path} [tool.concsim]"), f"pyproject.toml ({path})"
            )
        else:
            out[s.name] = Resolved(s.default, "built-in")
    return out


def setting_values(given: Mapping[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """:func:`resolve_settings`, values only."""
    return {k: r.value for k, r in resolve_settings(given, **kw).items()}


def layered_config(
    given: Mapping[str, Any],
    *,
    params: Mapping[str, Any] | None = None,
    schedule: str | None = None,
    **resolve_kw: Any,
) -> tuple[RunConfig, int | None]:
    """The :class:`RunConfig` of ``given`` (``None`` values: not given) with every other
    setting from the environment, ``[tool.concsim]`` or the built-ins; and the
    ``schedules`` setting (``None``: the front end's own default)."""
    v = setting_values(given, **resolve_kw)
    cfg = RunConfig(
        scenario=v["scenario"],
        variant=v["variant"],
        params=dict(params or {}),
        strategy=v["strategy"],
        seed=v["seed"],
        depth=v["depth"],
        k=v["k"],
        preemption_bound=v["preemption_bound"],
        reduction=v["reduction"],
        max_steps=v["max_steps"],
        schedule=schedule,
    )
    return cfg, v["schedules"]
