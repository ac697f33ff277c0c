"""``concsim stress`` end to end: failures on disk that replay, resume, lost workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..conftest import ROOT, run_cli
from .crashy import ONE_IN
from .helpers import RACY, failure_files, last_json, manifest, reference


def test_racy_campaign_writes_replay_files_that_reproduce(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = run_cli(
        "stress",
        *RACY,
        "--seeds",
        "0:400",
        "--workers",
        "2",
        "--out",
        str(out),
        "--json",
        "--keep-per-signature",
        "100000",  # every failing seed's file, to compare them all
    )
    assert p.returncode == 1, p.stderr
    d = last_json(p.stdout)
    digest, failing = reference(0, 400, increments=1)
    assert d["schedules"] == 400
    assert d["failures"] == len(failing) > 0
    assert d["distinct_failures"] == 1
    for key in ("schedules_per_s", "workers", "backend", "out", "stats"):
        assert key in d
    assert d["stats"]["steps"]["p50"] > 0
    files = failure_files(out)
    assert set(files) == failing  # every failure on disk, nothing else
    m = manifest(out)
    assert m["complete"] is True
    assert m["tally"]["done"] == [[0, 400]]
    assert m["tally"]["digest"] == digest
    summary = json.loads((out / "summary.json").read_text())
    (sig,) = summary["signatures"]
    assert sig["count"] == len(failing)
    assert sig["seeds"] == sorted(failing)[:5]
    for seed in sorted(failing)[:3]:
        r = run_cli("replay", str(files[seed]), "--json")
        assert r.returncode == 1, r.stderr
        rd = last_json(r.stdout)
        assert rd["reproduced"] is True
        assert rd["seed"] == seed
        assert rd["failure"]["kind"] == "assertion"
    # The smallest seed of the signature, shrunk, beside its seed files.
    shrunk = sig["shrunk"]
    assert shrunk == d["signatures"][0]["shrunk"]
    assert Path(shrunk["file"]) == out / sig["folder"] / "shrunk.json"
    before, after = shrunk["preemptions"]
    assert after <= before
    assert shrunk["steps"][1] <= shrunk["steps"][0]
    r = run_cli("replay", shrunk["file"], "--json")
    rd = last_json(r.stdout)
    assert rd["reproduced"] is True
    assert rd["failure"]["kind"] == "assertion"
    saved = json.loads(Path(shrunk["file"]).read_text())
    assert saved["original_schedule"] == json.loads(files[min(failing)].read_text())["schedule"]
    assert saved["extra"]["signature"] == sig["signature"]


def test_shrink_runs_0_leaves_the_seed_files_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = run_cli(
        "stress",
        *RACY,
        "--seeds",
        "0:100",
        "--workers",
        "1",
        "--out",
        str(out),
        "--shrink-runs",
        "0",
        "--json",
    )
    assert p.returncode == 1, p.stderr
    d = last_json(p.stdout)
    assert d["failures"] > 0
    assert "shrunk" not in d["signatures"][0]
    assert not list((out / "failures").glob("*/shrunk.json"))


def test_locked_campaign_finds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = run_cli(
        "stress",
        "--scenario",
        "counter",
        "--variant",
        "locked",
        "--seeds",
        "0:3000",
        "--out",
        str(out),
        "--json",
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # no progress bar when stderr is not a terminal
    d = last_json(p.stdout)
    assert (d["schedules"], d["failures"], d["distinct_failures"]) == (3000, 0, 0)
    assert not (out / "failures").exists()
    assert manifest(out)["tally"]["digest"] == reference(0, 3000, variant="locked")[0]


def test_sigint_then_resume_runs_every_seed_exactly_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    n = 8000
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "concsim",
            "stress",
            *RACY,
            "--seeds",
            f"0:{n}",
            "--workers",
            "2",
            "--out",
            str(out),
            "--json",
            "--keep-per-signature",
            "100000",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # interrupt once some batches are recorded
        if (out / "manifest.json").exists() and manifest(out)["tally"]["schedules"] > 0:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    first = last_json(stdout)
    assert first["interrupted"] is True
    m = manifest(out)
    assert not m["complete"]
    assert 0 < m["tally"]["schedules"] < n
    # every failure of every recorded batch is on disk, and nothing more
    assert len(failure_files(out)) == m["tally"]["failures"] == first["failures"]
    done_before = m["tally"]["done"]
    assert sum(b - a for a, b in done_before) == m["tally"]["schedules"]

    p = run_cli("stress", "--resume", "--out", str(out), "--json", "--keep-per-signature", "100000")
    assert p.returncode == 1, p.stderr
    second = last_json(p.stdout)
    digest, failing = reference(0, n, increments=1)
    m = manifest(out)
    assert m["complete"] is True
    assert m["tally"]["done"] == [[0, n]]
    assert second["schedules"] == m["tally"]["schedules"] == n
    assert second["session_schedules"] == n - first["schedules"]
    # The digest is the sum (mod 2**64) of one hash per seed outcome: a seed run twice or
    # skipped would change it.  It equals the one-seed-at-a-time reference.
    assert m["tally"]["digest"] == digest
    assert set(failure_files(out)) == failing
    assert second["failures"] == len(failing)
    assert [s["interrupted"] for s in m["sessions"]] == [True, False]


def test_a_worker_that_dies_loses_only_its_batch(tmp_path: Path) -> None:
    import concsim

    from . import crashy  # noqa: F401  registers the scenario here too

    n = 900
    crashing = [
        s
        for s in range(n)
        if not concsim.run("crashy", seed=s, params={"mode": "raise"}, trace=False).ok
    ]
    assert 0 < len(crashing) < 3 * n // ONE_IN
    out = tmp_path / "out"
    p = run_cli(
        "stress",
        "--import",
        "tests.stress.crashy",
        "--scenario",
        "crashy",
        "--strategy",
        "random",
        "--seeds",
        f"0:{n}",
        "--workers",
        "2",
        "--out",
        str(out),
        "--json",
    )
    assert p.returncode == 1, p.stderr
    d = last_json(p.stdout)
    lost = [tuple(x["seeds"]) for x in d["lost_batches"]]
    assert lost
    # each lost batch holds a crashing seed, and each crashing seed is in a lost batch
    for a, b in lost:
        assert any(a <= s < b for s in crashing)
        assert "died" in next(x["reason"] for x in d["lost_batches"] if tuple(x["seeds"]) == (a, b))
    for s in crashing:
        assert any(a <= s < b for a, b in lost)
    assert d["schedules"] == n - sum(b - a for a, b in lost)
    for a, b in lost:  # reported, and retried once before that
        assert p.stderr.count(f"seeds {a}:{b} lost (") == 1
        assert p.stderr.count(f"seeds {a}:{b} lost again") == 1
    assert manifest(out)["tally"]["done"] == [[0, n]]
    if os.name == "posix":
        assert "Traceback" not in p.stderr


def test_defaults_budget_and_resume_of_the_latest_campaign(tmp_path: Path) -> None:
    import concsim

    p = run_cli("stress", "--budget", "1s", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    first = last_json(p.stdout)
    assert first["workers"] == (os.cpu_count() or 1)
    assert first["backend"] == "local"
    assert first["schedules"] > 0
    (out,) = (tmp_path / "concsim-out").iterdir()
    assert Path(first["out"]) == Path("concsim-out") / out.name
    m = manifest(out)
    assert m["campaign"]["scenario"] == concsim.DEFAULT_SCENARIO
    assert m["campaign"]["seeds"] == [0, None]
    p = run_cli("stress", "--resume", "--budget", "1s", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    second = last_json(p.stdout)
    assert second["out"] == first["out"]
    assert second["schedules"] == first["schedules"] + second["session_schedules"]
    assert manifest(out)["tally"]["done"] == [[0, second["schedules"]]]


def test_pct_campaign_failure_records_are_traced_reruns_of_the_same_schedule(
    tmp_path: Path,
) -> None:
    """The worker's traced rerun of a failing seed must use the same PCT parameters as the
    fast run, so the record carries a trace hash and no nondeterminism warning."""
    out = tmp_path / "out"
    p = run_cli(
        "stress",
        "--scenario",
        "default",
        "--variant",
        "no-read-retry",
        "--strategy",
        "pct",
        "--seeds",
        "0:60",
        "--workers",
        "1",
        "--out",
        str(out),
        "--json",
    )
    assert p.returncode == 1, p.stderr
    files = failure_files(out)
    assert files
    for path in list(files.values())[:3]:
        rec = json.loads(path.read_text())
        assert "warning" not in rec.get("extra", {}), rec.get("extra")
        assert rec["expected"]["trace_sha256"]
        r = run_cli("replay", str(path), "--json")
        assert last_json(r.stdout)["reproduced"] is True


def test_ctrl_c_while_shrinking_stops_at_once_and_keeps_every_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "concsim",
            "stress",
            "--variant",
            "no-read-retry",
            "--seeds",
            "0:200",
            "--workers",
            "1",
            "--out",
            str(out),
            "--shrink-runs",
            "1000000",
            "--json",
            "--keep-per-signature",
            "100000",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if "shrinking the smallest seed" in line or not line:
            break
    assert "shrinking the smallest seed" in seen[-1], seen
    time.sleep(0.5)  # well inside a shrink that would take hours
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 20
    assert "shrinking interrupted" in stderr
    assert "Traceback" not in stderr
    assert proc.returncode == 1, stderr  # the seeds were all run: failures, not interrupted
    d = last_json(stdout)
    assert d["interrupted"] is False
    assert d["schedules"] == 200
    assert len(failure_files(out)) == d["failures"] > 0
    assert not list((out / "failures").glob("*/shrunk.json"))
    assert manifest(out)["complete"] is True
