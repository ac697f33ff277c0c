"""What a campaign runs: its definition, named campaign files, and the argument parsers.

A *named campaign* is a small TOML (or JSON) file: ``scenario``, ``variant``, ``strategy``,
``seeds`` (``"A:B"``), ``budget`` (``"60s"``), ``params`` (a table), ``max_steps``, a
``description``, and ``sweep`` (a parameter-space sweep, ``"mshv"``: each seed draws its
own point, see ``concsim.campaign._sweep``; ``params``, ``variant`` and ``strategy`` then
pin dimensions of the space).  ``concsim stress --campaign NAME`` looks for ``stress/NAME.toml`` (or
``.json``) under the current folder first, then among the campaigns shipped inside the
package (``concsim/campaign/campaigns/``).  Command-line options override the file.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concsim._errors import UsageError
from concsim.runs import STRATEGIES

#: The time budget of a campaign given neither seeds nor a budget.
DEFAULT_BUDGET_S = 20.0

CAMPAIGN_KEYS = (
    "description",
    "scenario",
    "variant",
    "strategy",
    "seeds",
    "budget",
    "params",
    "max_steps",
    "depth",
    "k",
    "preemption_bound",
    "sweep",
)
#: The strategy settings a campaign may set (RunConfig fields); the rest are defaults.
SETTING_KEYS = ("depth", "k", "preemption_bound")

SHIPPED = Path(__file__).resolve().parent / "campaigns"


@dataclass(frozen=True)
class SeedRange:
    """Seeds ``lo .. hi-1``; ``hi=None`` is open-ended (a budget ends the campaign)."""

    lo: int
    hi: int | None

    def __str__(self) -> str:
        return f"{self.lo}:{'' if self.hi is None else self.hi}"

    @property
    def size(self) -> int | None:
        return None if self.hi is None else self.hi - self.lo


def parse_seeds(text: str) -> SeedRange:
    """``"A:B"`` is seeds A..B-1 (as a Python slice); ``"A:"`` is open-ended."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d*)\s*", text)
    if not m:
        raise UsageError(f"--seeds takes A:B (non-negative integers, B excluded), got {text!r}")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else None
    if hi is not None and hi == lo:
        raise UsageError(f"--seeds {text}: the range is empty (A:B runs seeds A to B-1)")
    if hi is not None and hi < lo:
        raise UsageError(f"--seeds {text}: the range is reversed (A:B needs A < B)")
    return SeedRange(lo, hi)


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_budget(text: str) -> float:
    """``"60s"``, ``"2m"``, ``"1h"``, ``"90"`` (seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(s|m|min|h)?\s*", str(text))
    if not m:
        raise UsageError(f"--budget takes a duration like 60s, 5m or 1h, got {text!r}")
    secs = float(m.group(1)) * _UNITS[m.group(2) or ""]
    if secs <= 0:
        raise UsageError(f"--budget {text}: a time budget must be positive")
    return secs


def default_strategy() -> str:
    """PCT: on the mutant catalog it finds failures in the fewest schedules."""
    return "pct"


def check_strategy(name: str) -> str:
    if name not in STRATEGIES:
        raise UsageError(f"--strategy {name}: unknown strategy (known: {', '.join(STRATEGIES)})")
    return name


def find_campaign(name: str, cwd: Path | None = None) -> Path:
    """The file of campaign ``name``: ``./stress/NAME.toml|json``, then the shipped ones."""
    if name.endswith((".toml", ".json")) or "/" in name:
        p = Path(name)
        if not p.is_file():
            raise UsageError(f"campaign file {name} does not exist")
        return p
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UsageError(f"campaign name {name!r} may use letters, digits, '.', '_' and '-'")
    where = [(cwd or Path.cwd()) / "stress", SHIPPED]
    for d in where:
        for ext in (".toml", ".json"):
            p = d / f"{name}{ext}"
            if p.is_file():
                return p
    raise UsageError(
        f"unknown campaign {name!r} (known: {', '.join(list_campaigns(cwd)) or 'none'}; "
        "a campaign is stress/NAME.toml)"
    )


def list_campaigns(cwd: Path | None = None) -> list[str]:
    names: set[str] = set()
    for d in ((cwd or Path.cwd()) / "stress", SHIPPED):
        if d.is_dir():
            names.update(p.stem for p in d.iterdir() if p.suffix in (".toml", ".json"))
    return sorted(names)


def load_campaign(name: str, cwd: Path | None = None) -> dict[str, Any]:
    """Read and check a campaign file; every problem is a one-line :class:`UsageError`."""
    path = find_campaign(name, cwd)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"campaign {path}: cannot read it ({type(e).__name__})") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        msg = str(e).splitlines()[0]
        raise UsageError(f"campaign {path}: malformed ({msg})") from None
    if not isinstance(data, dict):
        raise UsageError(f"campaign {path}: the top level must be a table")
    unknown = sorted(set(data) - set(CAMPAIGN_KEYS))
    if unknown:
        raise UsageError(
            f"campaign {path}: unknown key {unknown[0]!r} (known: {', '.join(CAMPAIGN_KEYS)})"
        )
    for key in ("scenario", "variant", "strategy", "seeds", "description", "sweep"):
        if key in data and not isinstance(data[key], str):
            raise UsageError(f"campaign {path}: {key} must be a string")
    if "budget" in data:
        data["budget"] = str(data["budget"])
    if "params" in data:
        if not isinstance(data["params"], dict):
            raise UsageError(f"campaign {path}: params must be a table of NAME = VALUE")
        data["params"] = {str(k): v for k, v in data["params"].items()}
    if "max_steps" in data and (
        not isinstance(data["max_steps"], int) or isinstance(data["max_steps"], bool)
    ):
        raise UsageError(f"campaign {path}: max_steps must be an integer")
    data["_path"] = str(path)
    return data
