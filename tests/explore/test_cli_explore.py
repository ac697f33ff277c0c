"""The explore and bench-explore commands: JSON, exit codes, replay files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import run_cli

FIELDS = (
    "ok",
    "strategy",
    "schedules_run",
    "complete",
    "executions",
    "first_failure",
    "elapsed_s",
    "coverage",
)
FAILURE_FIELDS = (
    "kind",
    "invariant",
    "message",
    "schedule_index",
    "preemptions",
    "shrunk_preemptions",
    "replay_file",
)


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_explore_json_clean_exit_0() -> None:
    p = run_cli(
        "explore", "--scenario", "abba", "--variant", "ordered", "--strategy", "dfs", "--json"
    )
    assert p.returncode == 0, p.stderr
    d = _last_json(p.stdout)
    for k in FIELDS:
        assert k in d
    assert d["ok"] is True
    assert d["complete"] is True
    assert d["first_failure"] is None
    assert d["strategy"] == "dfs"
    assert p.stderr == ""  # no progress bar when not a terminal


def test_explore_failure_exit_1_saves_shrunk_replay(tmp_path: Path) -> None:
    p = run_cli(
        "explore",
        "--scenario",
        "counter",
        "--variant",
        "racy",
        "--strategy",
        "pct",
        "--seed",
        "7",
        "--json",
        "--save",
        str(tmp_path),
    )
    assert p.returncode == 1, p.stderr
    d = _last_json(p.stdout)
    ff = d["first_failure"]
    for k in FAILURE_FIELDS:
        assert k in ff
    assert ff["kind"] == "assertion"
    assert ff["shrunk_preemptions"] <= ff["preemptions"]
    saved = json.loads(Path(ff["replay_file"]).read_text())
    assert "original_schedule" in saved
    r = run_cli("replay", ff["replay_file"], "--json")
    assert r.returncode == 1
    assert _last_json(r.stdout)["reproduced"] is True


def test_explore_human_output() -> None:
    p = run_cli("explore", "--scenario", "abba", "--strategy", "random")
    assert p.returncode == 1
    assert "FAILURE deadlock" in p.stdout
    assert "replay with: concsim run" in p.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("--strategy", "nope"),
        ("--strategy", "dfs", "--preemption-bound", "-1"),
        ("--strategy", "random", "--preemption-bound", "1"),
        ("--schedules", "0"),
        ("--scenario", "nope"),
        ("--param", "tasks=x"),
    ],
)
def test_explore_bad_args_exit_2(args: tuple[str, ...]) -> None:
    p = run_cli("explore", *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr


def test_bench_explore_json() -> None:
    p = run_cli(
        "bench-explore", "--target", "abba:abba", "--seeds", "3", "--max-schedules", "200", "--json"
    )
    assert p.returncode == 0, p.stderr
    d = _last_json(p.stdout)
    (row,) = d["targets"]
    assert (row["scenario"], row["variant"]) == ("abba", "abba")
    assert row["random"]["found"] == 3
    assert row["pct"]["median_schedules_to_failure"] >= 1
    assert row["dfs"]["complete"] is True
    assert row["dfs"]["executions_full"] < row["dfs_no_reduction"]["executions_full"]
    bad = run_cli("bench-explore", "--target", "abba")
    assert bad.returncode == 2


def test_bench_explore_table_with_and_without_dfs_columns() -> None:
    """DFS is not run on ``default``: its row shows dashes there (it used to crash)."""
    p = run_cli(
        "bench-explore",
        "--target",
        "default:no-read-retry",
        "--target",
        "abba:abba",
        "--seeds",
        "2",
        "--max-schedules",
        "300",
    )
    assert p.returncode == 0, p.stderr
    rows = {line.split()[0]: line.split()[1:] for line in p.stdout.splitlines()[1:-1]}
    assert rows["default/no-read-retry"][2:] == ["-", "-", "-", "-"]
    assert rows["default/no-read-retry"][1] != "-"  # PCT found it
    assert rows["abba/abba"][4] != "-"  # DFS ran to completion there
