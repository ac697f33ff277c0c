"""Issue 14, item 3 and the "accepted but wrong" list: every bad input is one line on stderr
and exit code 2 (click's own usage errors too), and nothing the user found is lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import concsim
from concsim.artifacts import load_replay
from concsim.cli import cli
from concsim.engine import decode_schedule
from concsim.engine._schedule import MAX_CHOICES

from ..conftest import run_cli


def invoke(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    old = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        r = runner.invoke(cli, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)
    return r.exit_code, r.stdout, r.stderr


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("concsim: error: ")
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--seed", "abc"], "'abc' is not a valid integer"),
        (["stress", "--workers", "0"], "--workers"),
        (["replay", "x.json", "--trace", "svg"], "--trace"),
        (["replay"], "Missing argument 'FILE|DIR...'"),
        (["run", "--nosuch"], "No such option"),
        (["nosuch"], "No such command"),
    ],
)
def test_click_usage_errors_are_one_line(args: list[str], needle: str) -> None:
    code, _, err = invoke(*args)
    assert_one_line(code, err, needle)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--seed", "-1"], "--seed"),
        (["run", "--strategy", "nosuch"], "unknown strategy"),
        (["run", "--no-reduction"], "apply to --strategy dfs only"),
        (["run", "--depth", "3"], "--depth applies to --strategy pct only"),
        (["run", "--param", "populated=nan"], "populated"),
        (["run", "--param", "populated=inf"], "populated"),
        (["run", "--param", "zero_pages=1000"], "zero_pages=1000"),
        (["explore", "--strategy", "pct", "--depth", "1000000"], "--depth must be between"),
        (["explore", "--no-reduction"], "--no-reduction applies to --strategy dfs only"),
    ],
)
def test_accepted_but_wrong_is_now_refused(args: list[str], needle: str) -> None:
    code, _, err = invoke(*args)
    assert_one_line(code, err, needle)


def test_run_offers_pct_with_a_depth() -> None:
    code, out, _ = invoke("run", "--help")
    assert code == 0
    assert "pct" in out
    assert "--depth" in out
    code, out, _ = invoke(
        "run", "--scenario", "abba", "--strategy", "pct", "--depth", "2", "--seed", "3", "--json"
    )
    assert code in (0, 1)
    assert json.loads(out.strip().splitlines()[-1])["strategy"] == "pct"
    # zero_pages up to the unpopulated pages is still accepted
    res = concsim.run("small", params={"zero_pages": 2}, seed=0, trace=False)
    assert res.steps > 0


@pytest.mark.parametrize(
    "text", ["cs1:0{99999999999}", "cs1:0{400000000}", "cs1:(" + "9" * 5000 + ")"]
)
def test_absurd_schedules_are_refused_before_decoding(text: str) -> None:
    with pytest.raises(concsim.UsageError, match="schedule"):
        decode_schedule(text)
    code, _, err = invoke("run", "--schedule", text)
    assert_one_line(code, err, "schedule")


def test_schedule_cap_still_decodes_long_schedules() -> None:
    assert len(decode_schedule(f"cs1:0{{{MAX_CHOICES}}}")) == MAX_CHOICES


def _good_file(tmp_path: Path) -> Path:
    res = concsim.run("abba", seed=1)
    for seed in range(40):
        res = concsim.run("abba", seed=seed)
        if not res.ok:
            break
    assert not res.ok
    return Path(concsim.save_failure(res, str(tmp_path)))


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d["expected"].__setitem__("failure", "deadlock"), "expected.failure"),
        (lambda d: d.__setitem__("extra", [1, 2]), "extra"),
        (lambda d: d.__setitem__("strategy", "nosuch"), "strategy"),
        (lambda d: d.__setitem__("params", {"pages": [1]}), "pages"),
        (lambda d: d.__setitem__("seed", -3), "seed"),
        (lambda d: d["expected"].__setitem__("steps", "many"), "expected.steps"),
        (lambda d: d.__setitem__("schedule", "cs1:0{400000000}"), "schedule"),
        (lambda d: d.__setitem__("original_schedule", 7), "original_schedule"),
    ],
)
def test_bad_replay_files_are_one_line(tmp_path: Path, edit, needle: str) -> None:  # type: ignore[no-untyped-def]
    path = _good_file(tmp_path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(concsim.UsageError, match=needle.replace(".", r"\.")):
        load_replay(path)
    for cmd in ("replay", "explain"):
        code, _, err = invoke(cmd, str(path))
        assert_one_line(code, err, needle)


def test_a_png_is_not_written_under_another_name(tmp_path: Path) -> None:
    path = _good_file(tmp_path)
    code, _, err = invoke("replay", str(path), "--trace", "png", "-o", str(tmp_path / "t.svg"))
    assert_one_line(code, err, "FILE.png", "t.svg")
    assert not (tmp_path / "t.svg").exists()


def test_deeply_nested_replay_file(tmp_path: Path) -> None:
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = invoke("replay", str(p))
    assert_one_line(code, err, "nested too deeply")
    code, out, _ = invoke("replay", str(tmp_path))  # a folder: one line per file
    assert code == 2
    assert "nested too deeply" in out
    assert "Traceback" not in out


def test_save_that_cannot_be_written_reports_the_failure_and_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    bad = str(blocker / "out")
    code, out, err = invoke("run", "--variant", "no-read-retry", "--seed", "16", "--save", bad)
    assert_one_line(code, err, "--save", "not written")
    assert "FAILURE safety" in out
    assert "schedule: cs1:" in out
    code, out, err = invoke("explore", "--variant", "no-read-retry", "--no-shrink", "--save", bad)
    assert_one_line(code, err, "--save", "not written")
    assert "FAILURE safety" in out
    assert "schedule: cs1:" in out
    code, out, err = invoke("compare", "after-patch", "a-file:X", "--plot", bad + "/p.png")
    assert_one_line(code, err, "plot")


VARIANTS = """
import sys
from concsim.driver import AfterPatch


class Exit3(AfterPatch):
    async def mshv_region_range_fault(self, region, off, count):
        sys.exit(3)


class Interrupt(AfterPatch):
    async def mshv_region_range_fault(self, region, off, count):
        raise KeyboardInterrupt


class ExitInInit(AfterPatch):
    def __init__(self, *args, **kwargs):
        sys.exit(0)
"""


@pytest.mark.parametrize(
    ("cls", "exc"), [("Exit3", "SystemExit"), ("Interrupt", "KeyboardInterrupt")]
)
def test_a_variants_base_exception_in_a_method_is_its_failure(
    tmp_path: Path, cls: str, exc: str
) -> None:
    (tmp_path / "v.py").write_text(VARIANTS)
    for cmd in ("run", "explore"):
        p = run_cli(cmd, "--variant", f"v.py:{cls}", "--json", cwd=tmp_path)
        assert p.returncode == 1, p.stderr
        obj = json.loads(p.stdout.strip().splitlines()[-1])
        f = obj["failure"] if cmd == "run" else obj["first_failure"]
        assert f["kind"] == "exception"
        assert exc in f["message"]


def test_a_variant_that_exits_at_import_or_build_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "v.py").write_text(VARIANTS)
    (tmp_path / "imp.py").write_text("import sys\nsys.exit(0)\n")
    for spec, needle in (("imp.py:X", "SystemExit"), ("v.py:ExitInInit", "SystemExit")):
        for cmd in ("run", "explore"):
            p = run_cli(cmd, "--variant", spec, cwd=tmp_path)
            assert_one_line(p.returncode, p.stderr, needle)
            assert p.stdout == ""


def test_absurd_worker_counts_are_capped_with_a_message(tmp_path: Path) -> None:
    from concsim.cli._stress import max_local_workers

    p = run_cli(
        "stress",
        "--scenario",
        "counter",
        "--variant",
        "racy",
        "--seeds",
        "0:20",
        "--workers",
        "10000",
        "--out",
        str(tmp_path / "o"),
        "--json",
        "--shrink-runs",
        "0",
    )
    assert f"using {max_local_workers()}" in p.stderr
    assert p.returncode == 1, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["workers"] <= max_local_workers()
