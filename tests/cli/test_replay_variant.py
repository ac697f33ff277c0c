"""Issue 14, item 1: check a fix against saved counterexamples.

``concsim replay FILE|DIR... --variant SPEC`` follows each file's schedule by task identity
against the variant under review and says, per file: still fails, fails differently, or
passes ("the fix survives this counterexample")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import concsim
from concsim._replaycheck import FAILS_DIFFERENTLY, PASSES, STILL_FAILS, check_replay

from ..conftest import run_cli


def _counterexamples(folder: Path, n: int, scenario: str = "small") -> list[Path]:
    """The first ``n`` failing seeds of no-read-retry, saved as replay files."""
    out: list[Path] = []
    for seed in range(5000):
        r = concsim.run(scenario, variant="no-read-retry", seed=seed, trace=False)
        if r.ok:
            continue
        r = concsim.run(scenario, variant="no-read-retry", seed=seed)
        out.append(Path(concsim.save_failure(r, str(folder))))
        if len(out) == n:
            return out
    raise AssertionError("not enough counterexamples")


@pytest.fixture(scope="module")
def fifty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("counterexamples")
    _counterexamples(d, 50)
    return d


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_a_no_read_retry_counterexample_passes_after_patch_and_still_fails_itself(
    tmp_path: Path,
) -> None:
    (path,) = _counterexamples(tmp_path, 1, scenario="default")
    fixed = run_cli("replay", str(path), "--variant", "after-patch")
    assert fixed.returncode == 0, fixed.stderr
    assert "passes" in fixed.stdout
    assert "the fix survives this counterexample" in fixed.stdout
    broken = run_cli("replay", str(path), "--variant", "no-read-retry")
    assert broken.returncode == 1, broken.stderr
    assert "still fails" in broken.stdout
    assert "safety/S1" in broken.stdout


def test_a_folder_of_fifty_reports_per_file(fifty: Path) -> None:
    p = run_cli("replay", str(fifty), "--variant", "after-patch", "--json")
    assert p.returncode == 0, p.stderr
    obj = _last_json(p.stdout)
    assert len(obj["files"]) == 50
    assert {f["verdict"] for f in obj["files"]} == {PASSES}
    assert obj["counts"][PASSES] == 50
    p = run_cli("replay", str(fifty), "--variant", "no-read-retry")
    assert p.returncode == 1
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("still fails")]
    assert len(lines) == 50
    assert "50 file(s): 50 still fail, 0 fail differently, 0 pass" in p.stdout


def test_files_and_folders_mix_and_a_bad_file_is_reported_not_fatal(
    fifty: Path, tmp_path: Path
) -> None:
    one = sorted(fifty.glob("*.json"))[0]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    p = run_cli("replay", str(one), str(bad), "--variant", "after-patch")
    assert p.returncode == 2
    assert "passes" in p.stdout
    assert "error" in p.stdout
    assert "not a replay file" in p.stdout


def test_the_file_s_own_variant_by_identity_reproduces_the_signature(fifty: Path) -> None:
    for path in sorted(fifty.glob("*.json"))[:5]:
        v = check_replay(str(path))
        assert v.verdict == STILL_FAILS, v
        assert v.signature == v.expected_signature


BROKEN_FIX = """
from concsim.driver import AfterPatch


class Crashes(AfterPatch):
    async def mshv_region_hmm_fault_and_lock(self, *args, **kwargs):
        raise RuntimeError("the fix under review crashes")
"""


def test_another_failure_is_fails_differently(fifty: Path, tmp_path: Path) -> None:
    (tmp_path / "fix.py").write_text(BROKEN_FIX)
    path = sorted(fifty.glob("*.json"))[0]
    v = check_replay(str(path), f"{tmp_path / 'fix.py'}:Crashes")
    assert v.verdict == FAILS_DIFFERENTLY, v
    assert v.expected_signature is not None
    assert v.expected_signature.startswith("safety/S1")
    assert v.signature is not None
    assert v.signature.startswith("exception/")
    p = run_cli("replay", str(path), "--variant", "fix.py:Crashes", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stdout.startswith("fails differently")


def test_replay_first_on_explore_and_stress(fifty: Path, tmp_path: Path) -> None:
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(fifty.glob("*.json"))[:3]:
        shutil.copy(p, few / p.name)
    p = run_cli(
        "explore",
        "--scenario",
        "small",
        "--variant",
        "no-read-retry",
        "--replay-first",
        str(few),
    )
    assert p.returncode == 1
    assert "3 of 3 saved counterexample(s) still fail" in p.stdout
    assert "schedules:" not in p.stdout  # nothing new explored
    p = run_cli(
        "explore",
        "--scenario",
        "small",
        "--schedules",
        "20",
        "--replay-first",
        str(few),
        "--json",
    )
    assert p.returncode == 0, p.stderr
    obj = _last_json(p.stdout)
    assert [f["verdict"] for f in obj["replay_first"]] == [PASSES] * 3
    assert obj["executions"] == 20
    p = run_cli(
        "stress",
        "--scenario",
        "small",
        "--seeds",
        "0:4",
        "--workers",
        "1",
        "--replay-first",
        str(few),
        "--out",
        str(tmp_path / "o"),
        "--json",
    )
    assert p.stderr.count("replay-first: passes") == 3
    assert p.returncode == 0, p.stderr
