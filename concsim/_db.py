"""The failure database: every failure found is kept, and replayed first next time.

As Hypothesis keeps its examples database, concsim keeps each failure that ``explore``,
``stress`` and the pytest plugin find under a project folder (``.concsim/`` in the current
directory; ``--db DIR`` or the ``CONCSIM_DB`` environment variable choose another, and
``CONCSIM_DB=off`` turns it off).  The next ``explore`` or pytest run of the same target
replays the saved failures before any new schedule: one that still fails is reported at
once; one that passes is reported as fixed and removed.

Layout: ``<root>/failures/<target>/<signature>.json``, one replay file per failure
signature of a target (the first found is kept: a replay that still fails keeps its file).
``<target>`` names what was explored: ``scenario-variant-<hash of the parameters>`` for a
scenario, the test's node id for a pytest test; ``target.json`` beside the files holds the
target's full key.  ``concsim db list|show|clear`` reads and empties it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concsim._errors import UsageError
from concsim.artifacts import ReplayFile, atomic_write_text, save_replay

DEFAULT_DIR = ".concsim"
ENV = "CONCSIM_DB"
_OFF = ("", "off", "0", "no", "none", "false")


def db_root(explicit: str | None = None) -> Path | None:
    """The database folder: ``explicit``, else ``$CONCSIM_DB``, else ``.concsim``; None
    when turned off."""
    value = explicit if explicit is not None else os.environ.get(ENV, DEFAULT_DIR)
    if value.strip().lower() in _OFF:
        return None
    return Path(value)


def scenario_key(scenario: str, variant: str, params: Mapping[str, Any]) -> str:
    """The key of an exploration of a scenario (its parameters hashed in sorted order)."""
    text = json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{scenario}:{variant}:{digest}"


def node_key(nodeid: str, call: int) -> str:
    return f"pytest:{nodeid}:{call}"


def _slug(text: str, limit: int = 100) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "x"
    if len(s) > limit:
        s = s[: limit - 13] + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return s


@dataclass(frozen=True)
class Entry:
    """One saved failure."""

    key: str
    signature: str
    path: Path


class FailureDB:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, key: str) -> Path:
        return self.root / "failures" / _slug(key)

    def entries(self, key: str) -> list[Entry]:
        d = self.folder(key)
        if not d.is_dir():
            return []
        return [self._entry(key, p) for p in sorted(d.glob("*.json")) if p.name != "target.json"]

    def _entry(self, key: str, path: Path) -> Entry:
        sig = path.stem
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            sig = str(data.get("extra", {}).get("signature", sig))
        except (OSError, ValueError, AttributeError):
            pass
        return Entry(key, sig, path)

    def save(self, key: str, rf: ReplayFile, signature: str) -> Path | None:
        """Keep ``rf`` as the saved failure of ``key`` with ``signature``, unless one is
        kept already.  A folder that cannot be written is not an error of the run: the
        caller reports the :class:`UsageError` as a warning."""
        d = self.folder(key)
        path = d / f"{_slug(signature)}.json"
        if path.exists():
            return None
        rf.extra = {**rf.extra, "signature": signature, "db_key": key}
        save_replay(path, rf)
        target = d / "target.json"
        if not target.exists():
            try:
                atomic_write_text(target, json.dumps({"key": key}) + "\n")
            except OSError as e:
                raise UsageError(f"cannot write {target}: {e.strerror}") from None
        return path

    def remove(self, entry: Entry) -> None:
        try:
            entry.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise UsageError(f"cannot remove {entry.path}: {e.strerror}") from None

    def targets(self) -> list[str]:
        """Every target with saved failures."""
        base = self.root / "failures"
        if not base.is_dir():
            return []
        out: list[str] = []
        for d in sorted(p for p in base.iterdir() if p.is_dir()):
            key = d.name
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                key = str(json.loads((d / "target.json").read_text(encoding="utf-8"))["key"])
            if any(p.name != "target.json" for p in d.glob("*.json")):
                out.append(key)
        return out

    def clear(self, key: str | None = None) -> int:
        """Remove every saved failure (of ``key``); return how many."""
        keys = [key] if key is not None else self.targets()
        n = 0
        for k in keys:
            d = self.folder(k)
            n += len(self.entries(k))
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
        return n
