"""``concsim replay FILE --trace text|perfetto|mermaid [-o FILE]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import concsim

from ..artifacts.checkers import mermaid_problems, perfetto_problems, track_names
from ..conftest import run_cli


@pytest.fixture(scope="module")
def abba_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    res = concsim.run("abba", seed=0)
    assert res.failure is not None
    return Path(concsim.save_failure(res, str(tmp_path_factory.mktemp("replays"))))


def test_text_view_marks_the_failing_step(abba_file: Path) -> None:
    p = run_cli("replay", str(abba_file), "--trace", "text")
    assert p.returncode == 1, p.stderr
    lines = p.stdout.splitlines()
    assert [ln.split()[:4] for ln in lines if ln.startswith(">>")] == [
        [">>", "8", "t_ba", "mutex_lock"]
    ]
    assert lines[-1].startswith("# FAILURE deadlock at step 8")


def test_perfetto_view_written_to_a_file(abba_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    p = run_cli("replay", str(abba_file), "--trace", "perfetto", "-o", str(out), "--json")
    assert p.returncode == 1, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["reproduced"] is True
    assert summary["trace_output"] == str(out)
    doc = json.loads(out.read_text())
    assert perfetto_problems(doc) == []
    assert set(track_names(doc).values()) == {"runtime", "t_ab", "t_ba"}
    ev = doc["traceEvents"]
    assert [e["ts"] for e in ev if e.get("cat") == "failure"] == [8]
    holds = sorted((track_names(doc)[e["tid"]], e["name"]) for e in ev if e.get("cat") == "hold")
    assert holds == [("t_ab", "lock_a held"), ("t_ba", "lock_b held")]
    waits = sorted((track_names(doc)[e["tid"]], e["name"]) for e in ev if e.get("cat") == "wait")
    assert waits == [("t_ab", "waiting for lock_b"), ("t_ba", "waiting for lock_a")]


def test_mermaid_view_on_stdout(abba_file: Path) -> None:
    p = run_cli("replay", str(abba_file), "--trace", "mermaid")
    assert p.returncode == 1, p.stderr
    assert mermaid_problems(p.stdout) == []
    assert "FAILURE deadlock at step 8" in p.stdout.splitlines()[-1]


def test_trace_option_errors_are_one_line(abba_file: Path, tmp_path: Path) -> None:
    p = run_cli("replay", str(abba_file), "-o", str(tmp_path / "x"))
    assert p.returncode == 2
    assert p.stderr.strip() == "concsim: error: -o/--output needs --trace text|perfetto|mermaid"
    p = run_cli("replay", str(abba_file), "--trace", "perfetto", "--json")
    assert p.returncode == 2
    assert "give --trace an -o FILE" in p.stderr
    p = run_cli("replay", str(abba_file), "--trace", "svg")
    assert p.returncode == 2


def test_a_passing_replay_exits_0_with_a_view(tmp_path: Path) -> None:
    res = concsim.run("counter", variant="locked", seed=1)
    assert res.ok
    from concsim.artifacts import replay_from_result, save_replay

    path = save_replay(tmp_path / "ok.json", replay_from_result(res))
    p = run_cli("replay", str(path), "--trace", "perfetto")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert perfetto_problems(doc) == []
    assert not [e for e in doc["traceEvents"] if e.get("cat") == "failure"]
