"""Issue 14, item 5: campaign safety: the --out lock, stale temporary files, and at most N
replay files per failure signature (every seed still counted)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from concsim.campaign._runner import OutLock

from ..conftest import run_cli
from .helpers import RACY, last_json, manifest


def _stress(out: Path, *extra: str) -> tuple[int, str, str]:
    p = run_cli(
        "stress",
        *RACY,
        "--workers",
        "1",
        "--out",
        str(out),
        "--json",
        "--shrink-runs",
        "0",
        *extra,
    )
    return p.returncode, p.stdout, p.stderr


def test_a_second_campaign_on_the_same_out_is_refused_naming_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "o"
    lock = OutLock(out)
    lock.acquire()
    try:
        code, _, err = _stress(out, "--seeds", "0:10")
        assert code == 2
        assert err.strip() == (
            f"concsim: error: {out} is in use by another campaign (pid {os.getpid()}): wait "
            "for it to end or stop it, or choose another --out"
        )
        assert not (out / "manifest.json").exists()
    finally:
        lock.release()
    code, _, err = _stress(out, "--seeds", "0:10")
    assert code in (0, 1), err
    lock.acquire()
    try:
        code, _, err = _stress(out, "--resume")
        assert code == 2
        assert f"(pid {os.getpid()})" in err
    finally:
        lock.release()


def test_resume_removes_the_temporary_files_a_killed_campaign_left(tmp_path: Path) -> None:
    out = tmp_path / "o"
    code, _, err = _stress(out, "--seeds", "0:10")
    assert code in (0, 1), err
    stale = [out / ".manifest.json.abc123.tmp", out / "failures" / "x" / ".seed-3.json.q.tmp"]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("half a file")
    code, _, err = _stress(out, "--resume")
    assert code in (0, 1), err
    assert not any(p.exists() for p in stale)


def test_at_most_n_replay_files_per_signature_the_smallest_seeds(tmp_path: Path) -> None:
    out = tmp_path / "o"
    code, stdout, err = _stress(out, "--seeds", "0:300", "--keep-per-signature", "3")
    assert code == 1, err
    summary = last_json(stdout)
    assert summary["failures"] > 3
    m = manifest(out)
    assert m["tally"]["failures"] == summary["failures"]  # every failing seed counted
    folders = [d for d in (out / "failures").iterdir() if d.is_dir()]
    assert folders
    for d in folders:
        seeds = sorted(int(p.stem.removeprefix("seed-")) for p in d.glob("seed-*.json"))
        assert 1 <= len(seeds) <= 3
        sig = next(s for s in summary["signatures"] if s["folder"].endswith(d.name))
        assert seeds == sorted(sig["seeds"])[: len(seeds)]  # the smallest seeds are kept


ENDLESS = """
from concsim.driver import AfterPatch


class Endless(AfterPatch):
    async def mshv_region_hmm_fault_and_lock(self, *args, **kwargs):
        if self.rt.choices[:1] == [1]:  # some schedules only: an endless loop
            while True:
                pass
        return await super().mshv_region_hmm_fault_and_lock(*args, **kwargs)
"""


def test_a_hung_seed_is_a_hang_failure_and_the_campaign_goes_on(tmp_path: Path) -> None:
    (tmp_path / "endless.py").write_text(ENDLESS)
    out = tmp_path / "o"
    p = run_cli(
        "stress",
        "--scenario",
        "small",
        "--variant",
        "endless.py:Endless",
        "--seeds",
        "0:12",
        "--workers",
        "1",
        "--batch-timeout",
        "1",
        "--shrink-runs",
        "0",
        "--out",
        str(out),
        "--json",
        cwd=tmp_path,
    )
    assert p.returncode == 1, p.stderr
    assert "seed 9 ran past the 1s batch deadline" in p.stderr
    d = last_json(p.stdout)
    assert d["complete"] is True
    assert d["schedules"] == 12  # every seed counted, the hung one included
    (sig,) = d["signatures"]
    assert sig["kind"] == "hang"
    assert sig["seeds"] == [9]
    rec = json.loads((out / sig["folder"] / "seed-9.json").read_text())
    assert rec["expected"]["failure"]["kind"] == "hang"
    assert rec["config"]["seed"] == 9
    assert rec["extra"]["unfinished"] is True
