"""``concsim shrink FILE``: a replay file's schedule, shrunk, saved beside it."""

from __future__ import annotations

import json
from pathlib import Path

import concsim

from ..conftest import run_cli


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def _noisy_replay(tmp_path: Path) -> tuple[Path, concsim.RunResult]:
    """A random-walk failure of the no-read-retry mutant, saved without shrinking."""
    for seed in range(100):
        r = concsim.run("default", variant="no-read-retry", seed=seed, strategy="random")
        if r.failure is not None and r.schedule.count("0") < len(r.schedule) - 12:
            return Path(concsim.save_failure(r, str(tmp_path))), r
    raise AssertionError("no noisy failure in 100 seeds")


def test_shrink_writes_a_smaller_replay_that_reproduces(tmp_path: Path) -> None:
    src, found = _noisy_replay(tmp_path)
    p = run_cli("shrink", str(src), "--json")
    assert p.returncode == 0, p.stderr
    d = _last_json(p.stdout)
    assert d["source"] == str(src)
    assert d["out"] == str(src.with_name(src.stem + ".shrunk.json"))
    assert (d["kind"], d["invariant"]) == (found.failure.kind, found.failure.invariant)
    assert d["schedule"] == found.schedule
    assert d["shrunk_preemptions"] < d["preemptions"]
    assert d["shrunk_preemptions"] <= 3
    assert d["shrunk_steps"] <= d["steps"]
    saved = json.loads(Path(d["out"]).read_text())
    assert saved["schedule"] == d["shrunk_schedule"]
    assert saved["original_schedule"] == found.schedule
    assert saved["extra"]["shrink"]["preemptions"] == [d["preemptions"], d["shrunk_preemptions"]]
    r = run_cli("replay", d["out"], "--json")
    assert r.returncode == 1, r.stderr
    rd = _last_json(r.stdout)
    assert rd["reproduced"] is True
    assert rd["failure"]["invariant"] == found.failure.invariant
    # Deterministic: the same file shrinks to the same schedule.
    again = run_cli("shrink", str(src), "-o", str(tmp_path / "again.json"), "--json")
    assert _last_json(again.stdout)["shrunk_schedule"] == d["shrunk_schedule"]
    # The human form names the figures and the replay command.
    h = run_cli("shrink", str(src), "-o", str(tmp_path / "h.json"))
    assert h.returncode == 0, h.stderr
    assert f"preemptions: {d['preemptions']} -> {d['shrunk_preemptions']}" in h.stdout
    assert f"replay with: concsim replay {tmp_path / 'h.json'}" in h.stdout


def _one_line_exit_2(p) -> str:  # type: ignore[no-untyped-def]
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in p.stderr
    return err


def test_shrink_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    assert "no-such.json" in _one_line_exit_2(run_cli("shrink", str(tmp_path / "no-such.json")))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _one_line_exit_2(run_cli("shrink", str(bad)))
    # A schedule that does not fail: nothing to shrink.
    src, _ = _noisy_replay(tmp_path)
    data = json.loads(src.read_text())
    data["schedule"] = "cs1:"
    data["original_schedule"] = None
    passing = tmp_path / "passing.json"
    passing.write_text(json.dumps(data))
    assert "does not fail" in _one_line_exit_2(run_cli("shrink", str(passing)))
    # Nowhere to write.
    err = _one_line_exit_2(run_cli("shrink", str(src), "-o", str(src / "x.json")))
    assert "cannot write" in err
