"""Replay files: a failing (or any) run, saved so that it can be rerun anywhere.

A replay file is JSON, versioned, and holds everything a rerun needs: the concsim version
that wrote it, the whole run configuration (``config``: scenario, variant, parameters,
strategy and its settings, seed, max steps; :class:`concsim.runs.RunConfig`), the schedule
(the choices as a ``cs1:`` string), and the expected result (failure kind and invariant,
trace hash, steps).  ``scenario``, ``variant``, ``params``, ``strategy`` and ``seed`` are
also kept at the top level for readers of version 1.  Version 1 files (no ``config``) are
still read: their runs had every other setting at its default.  Files are written
atomically (a temporary file in the same folder, fsync, then rename), so an interrupted
writer never leaves half a file behind.

Loading is strict: malformed JSON, a wrong format tag or version, a missing or ill-typed
field is a :class:`ReplayFileError` with a one-line message naming the file and the field.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concsim._errors import ReplayFileError, UsageError
from concsim._version import __version__
from concsim.engine import decode_schedule

FORMAT = "concsim-replay"
VERSION = 2
#: The versions this concsim reads.
READS = (1, 2)


@dataclass
class ReplayFile:
    scenario: str
    variant: str
    params: dict[str, Any]
    strategy: str
    seed: int | None
    schedule: str
    expected: dict[str, Any]
    concsim_version: str = __version__
    #: The original (unshrunk) schedule, when the saved one was shrunk.
    original_schedule: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The run configuration (RunConfig.to_json()); ``None`` in a version 1 file.
    config: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "concsim_version": self.concsim_version,
            "scenario": self.scenario,
            "variant": self.variant,
            "params": self.params,
            "strategy": self.strategy,
            "seed": self.seed,
            "schedule": self.schedule,
            "expected": self.expected,
        }
        if self.config is not None:
            out["config"] = self.config
        if self.original_schedule is not None:
            out["original_schedule"] = self.original_schedule
        if self.extra:
            out["extra"] = self.extra
        return out


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one
    (created 0600 unless ``mode`` says otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_replay(path: Path, replay: ReplayFile) -> Path:
    """Write ``replay`` atomically; a folder or disk that refuses it is a one-line
    :class:`UsageError` naming the file."""
    try:
        atomic_write_text(path, json.dumps(replay.to_json(), indent=2, sort_keys=False) + "\n")
    except OSError as e:
        raise UsageError(
            f"cannot write the replay file {path}: {e.strerror or type(e).__name__}"
        ) from None
    return path


def replay_from_result(result: Any, *, original: str | None = None) -> ReplayFile:
    """Build the replay record of a :class:`concsim.RunResult`."""
    expected: dict[str, Any] = {
        "failure": result.failure.to_json() if result.failure else None,
        "trace_sha256": result.trace_sha256,
        "steps": result.steps,
    }
    extra: dict[str, Any] = {}
    if ":" in str(result.variant):  # a user variant: keep its file's absolute path too
        from concsim._varspec import absolute_file_spec

        absolute = absolute_file_spec(str(result.variant))
        if absolute is not None:
            extra["variant_absolute"] = absolute
    cfg = getattr(result, "config", None)
    config = None
    if cfg is not None:
        config = dict(cfg.to_json())
        config["schedule"] = None  # the file's own schedule field is the one replayed
    return ReplayFile(
        config=config,
        extra=extra,
        scenario=result.scenario,
        variant=result.variant,
        params=result.params,
        strategy=result.strategy,
        seed=result.seed,
        schedule=result.schedule,
        expected=expected,
        original_schedule=original,
    )


def default_replay_name(result: Any) -> str:
    kind = result.failure.kind if result.failure else "ok"
    seed = "x" if result.seed is None else str(result.seed)
    variant = str(result.variant)
    if ":" in variant:  # a user variant "dir/file.py:Cls" or "pkg.mod:Cls": "file.Cls"
        where, _, cls_name = variant.rpartition(":")
        stem = where.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py")
        variant = f"{stem}.{cls_name}"
    return f"{result.scenario}-{variant}-{kind}-seed{seed}.json".replace("/", "_")


def _field(data: dict[str, Any], name: str, types: type | tuple[type, ...], where: str) -> Any:
    if name not in data:
        raise ReplayFileError(f"{where}: missing field {name!r}")
    v = data[name]
    if not isinstance(v, types):
        want = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise ReplayFileError(f"{where}: field {name!r} should be {want}, got {type(v).__name__}")
    return v


#: The strategies a replay file may name (the one that found the schedule; a replay follows
#: the schedule whatever it says, but an unknown name is a sign of a hand-edited file).
STRATEGY_NAMES = ("random", "pct", "dfs", "replay")
#: A replay file larger than this is refused before it is parsed.
MAX_FILE_BYTES = 64 << 20


def _check_failure(value: Any, where: str) -> None:
    """``expected.failure``: null, or an object with a kind, a message and a step."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise ReplayFileError(
            f"{where}: field 'expected.failure' should be an object or null, "
            f"got {type(value).__name__}"
        )
    _field(value, "kind", str, f"{where}: expected.failure")
    for name, types in (
        ("message", str),
        ("invariant", (str, type(None))),
        ("task", (str, type(None))),
        ("details", dict),
    ):
        if name in value and not isinstance(value[name], types):
            raise ReplayFileError(f"{where}: field 'expected.failure.{name}' is ill-typed")
    step = value.get("step", 0)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ReplayFileError(f"{where}: field 'expected.failure.step' should be an integer >= 0")


def _check_expected(expected: dict[str, Any], where: str) -> None:
    _check_failure(expected.get("failure"), where)
    sha = expected.get("trace_sha256")
    if sha is not None and not isinstance(sha, str):
        raise ReplayFileError(f"{where}: field 'expected.trace_sha256' should be a string or null")
    steps = expected.get("steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 0):
        raise ReplayFileError(f"{where}: field 'expected.steps' should be an integer >= 0")


def _check_params(params: dict[str, Any], where: str) -> None:
    for k, v in params.items():
        ok = isinstance(v, (str, int, bool)) or (isinstance(v, float) and math.isfinite(v))
        if not ok:
            raise ReplayFileError(
                f"{where}: parameter {k!r} should be a string, number or boolean, "
                f"got {type(v).__name__}"
            )


def _check_schedule(data: dict[str, Any], name: str, where: str) -> None:
    try:
        decode_schedule(data[name])
    except UsageError as e:
        raise ReplayFileError(f"{where}: field {name!r}: {e}") from None


def load_replay(path: str | os.PathLike[str]) -> ReplayFile:
    """Read and validate a replay file (every field's type and range is checked before
    anything is decoded or run: a bad file is one :class:`ReplayFileError` line)."""
    p = Path(path)
    where = str(p)
    try:
        if p.is_dir():
            raise ReplayFileError(f"{where}: is a folder, not a replay file")
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ReplayFileError(
                f"{where}: too large for a replay file (over {MAX_FILE_BYTES:,} bytes)"
            )
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReplayFileError(f"{where}: no such replay file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReplayFileError(
            f"{where}: cannot read replay file ({e.__class__.__name__})"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReplayFileError(
            f"{where}: not a replay file: malformed JSON at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise ReplayFileError(f"{where}: not a replay file: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ReplayFileError(f"{where}: not a replay file: the top level is not an object")
    if data.get("format") != FORMAT:
        raise ReplayFileError(f"{where}: not a replay file (format is not {FORMAT!r})")
    version = data.get("version")
    if version not in READS or isinstance(version, bool):
        raise ReplayFileError(
            f"{where}: replay file version {version!r} is not supported "
            f"(this concsim {__version__} reads versions {', '.join(map(str, READS))})"
        )
    config = None
    if version >= 2:
        config = _field(data, "config", dict, where)
    schedule = _field(data, "schedule", str, where)
    _check_schedule(data, "schedule", where)
    original = data.get("original_schedule")
    if original is not None:
        _field(data, "original_schedule", str, where)
        _check_schedule(data, "original_schedule", where)
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ReplayFileError(f"{where}: field 'seed' should be an integer >= 0 or null")
    expected = _field(data, "expected", dict, where)
    _check_expected(expected, where)
    params = _field(data, "params", dict, where)
    _check_params(params, where)
    strategy = _field(data, "strategy", str, where)
    if strategy not in STRATEGY_NAMES:
        raise ReplayFileError(
            f"{where}: field 'strategy' is {strategy[:40]!r}, "
            f"not one of {', '.join(STRATEGY_NAMES)}"
        )
    extra = data.get("extra", {})
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise ReplayFileError(
            f"{where}: field 'extra' should be an object, got {type(extra).__name__}"
        )
    scenario = _field(data, "scenario", str, where)
    variant = _field(data, "variant", str, where)
    if not scenario or not variant:
        raise ReplayFileError(f"{where}: fields 'scenario' and 'variant' must not be empty")
    return ReplayFile(
        scenario=scenario,
        variant=variant,
        params=params,
        strategy=strategy,
        seed=seed,
        schedule=schedule,
        expected=expected,
        concsim_version=_field(data, "concsim_version", str, where),
        original_schedule=original,
        extra=extra,
        config=config,
    )
