"""The driver plug-in boundary: a third HMM driver from outside concsim (the toymirror
package in tests/plugin_driver) loads through ``--import`` and through a ``concsim.plugins``
entry point, and every front end takes its scenario, variants and oracles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugin_driver"
ROOT = Path(__file__).resolve().parents[2]


def _concsim(*args: str, pythonpath: list[Path], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    e = {k: v for k, v in os.environ.items() if k != "CONCSIM_IMPORT"}
    e["PYTHONPATH"] = os.pathsep.join([str(p) for p in pythonpath] + [str(ROOT)])
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "concsim", *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=120,
    )


def test_import_option_registers_the_scenario_variants_and_oracles() -> None:
    p = _concsim("--import", "toymirror_plugin", "scenarios", "--json", pythonpath=[PLUGIN_DIR])
    assert p.returncode == 0, p.stderr
    names = {s["name"]: s for s in json.loads(p.stdout.splitlines()[-1])["scenarios"]}
    assert names["toymirror"]["variants"] == ["toy", "toy-no-retry"]
    p = _concsim(
        "--import",
        "toymirror_plugin",
        "explore",
        "--scenario",
        "toymirror",
        "--strategy",
        "pct",
        "--schedules",
        "300",
        "--json",
        pythonpath=[PLUGIN_DIR],
    )
    # (PCT, not DFS to completion: with every release a scheduling point the toy world
    # takes over 8,000 executions even with one page.)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(p.stdout.splitlines()[-1])
    assert res["schedules_run"] == 300
    assert res["first_failure"] is None
    # concsim's D1 oracle catches the plug-in's mutant.
    p = _concsim(
        "--import",
        "toymirror_plugin",
        "explore",
        "--scenario",
        "toymirror",
        "--variant",
        "toy-no-retry",
        "--strategy",
        "dfs",
        # One page: with every footprint reported (the oracles' reads included) the
        # reduced search of the 3-page world runs its race late (after 20,000 runs).
        "--param",
        "pages=1",
        "--json",
        pythonpath=[PLUGIN_DIR],
    )
    assert p.returncode == 1, p.stdout + p.stderr
    ff = json.loads(p.stdout.splitlines()[-1])["first_failure"]
    assert ff["invariant"] in ("D1", "D2")


def test_an_entry_point_loads_the_plugin_without_an_option(tmp_path: Path) -> None:
    dist = tmp_path / "toymirror-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toymirror\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[concsim.plugins]\ntoy = toymirror_plugin\n")
    p = _concsim("variants", "--scenario", "toymirror", pythonpath=[tmp_path, PLUGIN_DIR])
    assert p.returncode == 0, p.stderr
    assert "toy-no-retry (mutant)" in p.stdout


def test_the_environment_variable_is_what_child_processes_inherit() -> None:
    p = _concsim(
        "run",
        "--scenario",
        "toymirror",
        "--seed",
        "3",
        pythonpath=[PLUGIN_DIR],
        env={"CONCSIM_IMPORT": "toymirror_plugin"},
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "result: ok" in p.stdout


def test_a_plugin_that_does_not_import_is_a_one_line_error() -> None:
    p = _concsim("--import", "no_such_plugin_module", "scenarios", pythonpath=[])
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0
    assert "cannot import plug-in 'no_such_plugin_module'" in p.stderr
