"""Issue 14, item 2: the failure database.  A failure explore or pytest finds is kept under
``.concsim/`` by target and signature; the next run of the same target replays it first and
says whether it is fixed; ``concsim db list|show|clear``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from concsim._db import FailureDB, scenario_key

from ..conftest import run_cli

BROKEN = textwrap.dedent(
    """
    from concsim.driver import AfterPatch, MshvDriverBase, patched


    class Fix(AfterPatch):
        mshv_region_hmm_fault_and_lock = patched(
            MshvDriverBase.mshv_region_hmm_fault_and_lock,
            ("if await mmu_interval_read_retry(mni, seq):  # B3.7", "if False:"),
        )
    """
)
FIXED = textwrap.dedent(
    """
    from concsim.driver import AfterPatch


    class Fix(AfterPatch):
        pass
    """
)


def _explore(cwd: Path, *extra: str) -> tuple[int, str, str]:
    p = run_cli(
        "explore",
        "--scenario",
        "small",
        "--variant",
        "fix.py:Fix",
        "--schedules",
        "300",
        *extra,
        cwd=cwd,
        env={"CONCSIM_DB": ".concsim"},
    )
    return p.returncode, p.stdout, p.stderr


def test_explore_saves_a_failure_and_replays_it_first_until_it_is_fixed(tmp_path: Path) -> None:
    fix = tmp_path / "fix.py"
    fix.write_text(BROKEN)
    code, out, err = _explore(tmp_path)
    assert code == 1, err
    assert "FAILURE safety [S1]" in out
    assert "failure database: saved" in out
    saved = list((tmp_path / ".concsim" / "failures").glob("*/*.json"))
    assert len([p for p in saved if p.name != "target.json"]) == 1

    # the next run of the same target replays it first (and still explores)
    code, out, err = _explore(tmp_path, "--schedules", "1")
    assert code == 1, err
    assert out.startswith("failure database: still fails")
    assert "1 saved failure(s) of this target still fail" in out

    p = run_cli("db", "list", cwd=tmp_path, env={"CONCSIM_DB": ".concsim"})
    assert p.returncode == 0
    assert "small:fix.py:Fix:" in p.stdout
    assert "safety/S1" in p.stdout

    # the fix: the saved failure passes, is reported fixed and forgotten; exploring goes on
    fix.write_text(FIXED)
    code, out, err = _explore(tmp_path)
    assert code == 0, err
    assert "failure database: fixed: safety/S1" in out
    assert "result: ok, no failure" in out
    p = run_cli("db", "list", cwd=tmp_path, env={"CONCSIM_DB": ".concsim"})
    assert "no saved failures" in p.stdout


def test_db_show_and_clear(tmp_path: Path) -> None:
    (tmp_path / "fix.py").write_text(BROKEN)
    assert _explore(tmp_path)[0] == 1
    db = FailureDB(tmp_path / ".concsim")
    (key,) = db.targets()
    p = run_cli("db", "show", key, "--json", cwd=tmp_path, env={"CONCSIM_DB": ".concsim"})
    assert p.returncode == 0, p.stderr
    (f,) = json.loads(p.stdout.strip().splitlines()[-1])["failures"]
    assert f["signature"].startswith("safety/S1")
    assert f["schedule"].startswith("cs1:")
    p = run_cli("db", "clear", cwd=tmp_path, env={"CONCSIM_DB": ".concsim"})
    assert p.returncode == 0
    assert "removed 1 saved failure(s)" in p.stdout
    assert db.targets() == []
    p = run_cli("db", "show", key, cwd=tmp_path, env={"CONCSIM_DB": ".concsim"})
    assert p.returncode == 2


def test_the_database_off_or_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "fix.py").write_text(BROKEN)
    p = run_cli(
        "explore",
        "--scenario",
        "small",
        "--variant",
        "fix.py:Fix",
        "--schedules",
        "300",
        "--db",
        "off",
        cwd=tmp_path,
    )
    assert p.returncode == 1
    assert not (tmp_path / ".concsim").exists()
    p = run_cli(
        "explore",
        "--scenario",
        "small",
        "--variant",
        "fix.py:Fix",
        "--schedules",
        "300",
        "--db",
        str(tmp_path / "elsewhere"),
        cwd=tmp_path,
    )
    assert p.returncode == 1
    key = scenario_key("small", "fix.py:Fix", {})
    assert key.startswith("small:fix.py:Fix:")
    assert FailureDB(tmp_path / "elsewhere").targets()


PYTEST_RACE = """
import os

FIXED = os.environ.get("RACE_FIXED") == "1"


def build(rt):
    box = {"n": 0}

    async def inc():
        await rt.point("read", "n", read=True)
        v = box["n"]
        await rt.point("write", "n")
        box["n"] = box["n"] + 1 if FIXED else v + 1  # the fix: an atomic increment

    rt.spawn("a", inc())
    rt.spawn("b", inc())
    rt.add_final_hook(lambda rt: rt.check(box["n"] == 2, "lost update"))


def test_race(concsim_explore):
    concsim_explore(build, schedules=100)
"""


def test_pytest_replays_a_saved_failure_first_on_the_next_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_race=PYTEST_RACE)
    monkeypatch.setenv("CONCSIM_DB", str(pytester.path / ".concsim"))
    first = pytester.runpytest("-ra", "-vv", "--concsim-seed", "0")
    first.assert_outcomes(failed=1)
    saved = [
        p
        for p in (pytester.path / ".concsim" / "failures").glob("*/*.json")
        if p.name != "target.json"
    ]
    assert len(saved) == 1
    # a seed whose 100 schedules would not find it: only the saved failure can fail the test
    again = pytester.runpytest("-ra", "-vv", "--concsim-schedules", "1", "--concsim-seed", "0")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*replayed first from the failure database*"])
    monkeypatch.setenv("RACE_FIXED", "1")
    fixed = pytester.runpytest("-ra", "-vv")
    fixed.assert_outcomes(passed=1)
    fixed.stdout.fnmatch_lines(["*concsim failure database*", "*fixed: assertion*"])
    assert not saved[0].exists()


def test_stress_keeps_each_signature_for_the_next_explore(tmp_path: Path) -> None:
    (tmp_path / "fix.py").write_text(BROKEN)
    p = run_cli(
        "stress",
        "--scenario",
        "small",
        "--variant",
        "fix.py:Fix",
        "--seeds",
        "0:200",
        "--workers",
        "1",
        "--shrink-runs",
        "0",
        "--out",
        "out",
        "--json",
        cwd=tmp_path,
        env={"CONCSIM_DB": ".concsim"},
    )
    assert p.returncode == 1, p.stderr
    code, out, _ = _explore(tmp_path, "--schedules", "1")
    assert code == 1
    assert out.startswith("failure database: still fails"), out
