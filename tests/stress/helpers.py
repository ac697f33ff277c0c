from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import concsim
from concsim.campaign import seed_digest

RACY = ("--scenario", "counter", "--variant", "racy", "--param", "increments=1")


def last_json(out: str) -> dict[str, Any]:
    return json.loads(out.strip().splitlines()[-1])


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def reference(
    lo: int, hi: int, scenario: str = "counter", variant: str = "racy", **params: Any
) -> tuple[str, set[int]]:
    """The campaign digest and failing seeds, computed one seed at a time in-process with
    the campaign's default strategy."""
    from concsim.campaign._spec import default_strategy

    strategy = default_strategy()
    total = 0
    failing: set[int] = set()
    for seed in range(lo, hi):
        r = concsim.run(
            scenario, variant=variant, params=params, seed=seed, trace=False, strategy=strategy
        )
        kind = r.failure.kind if r.failure else None
        total += seed_digest(seed, r.steps, kind, r.choices)
        if kind:
            failing.add(seed)
    return f"{total % (1 << 64):016x}", failing


def failure_files(out: Path) -> dict[int, Path]:
    files = sorted((out / "failures").glob("*/seed-*.json"))
    return {int(p.stem.removeprefix("seed-")): p for p in files}


def one_line_exit_2(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in p.stderr
    return err
