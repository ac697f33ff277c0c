"""Issue 14, item 7: the README is tested.  Every ``concsim`` command in its shell and
console blocks runs here, in README order, in a fresh folder (with the repository's
``docs/`` replay files, ``stress/`` campaigns and the README's own ``# file.py`` blocks), and
its exit code and key lines are checked against what the README shows.  A command the table
below does not know fails the test: a new README example must say what it prints.

Commands that would run for minutes get options appended that make them short (the later
option wins); the few that need what CI has not (a Dask cluster) say why they are skipped.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from concsim.cli import cli

from ..conftest import ROOT

README = ROOT / "README.md"


@dataclass(frozen=True)
class Expect:
    code: int | tuple[int, ...]
    lines: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    skip: str | None = None
    files: tuple[str, ...] = ()


FAST_STRESS = ("--budget", "1s", "--workers", "1", "--shrink-runs", "0")

EXPECT: dict[str, Expect] = {
    "concsim variants": Expect(0, ("after-patch", "no-read-retry (mutant)")),
    "concsim variants --scenario dmirror": Expect(0, ("dmirror-no-read-retry (mutant)",)),
    "concsim explore --scenario dmirror --strategy pct --schedules 3000": Expect(
        0, ("result: ok, no failure",), extra=("--schedules", "200")
    ),
    "concsim explore --scenario dmirror --variant dmirror-no-read-retry --strategy pct": Expect(
        1, ("FAILURE safety [D1]",)
    ),
    "concsim explore --scenario dmirror-small --strategy dfs": Expect(
        0, ("executions: 3243", "complete", "result: ok, no failure")
    ),
    "concsim explore --scenario small --variant before-patch --strategy dfs": Expect(
        0, skip="exhausts 9,894 executions (a minute or so): tests/explore/test_dfs.py covers DFS"
    ),
    "concsim explore --scenario small --variant after-patch --strategy dfs --param destroy=1": (
        Expect(1, ("FAILURE safety [S1]",))
    ),
    "concsim run --variant v3 --seed 4": Expect(0, ("variant v3", "result: ok, no failure")),
    "concsim mutants": Expect(
        0, ("no-read-retry", "yes"), extra=("--only", "no-read-retry", "--no-clean")
    ),
    "concsim explore --variant after-patch $P --strategy pct --schedules 2000": Expect(
        0, ("result: ok, no failure",), extra=("--schedules", "200")
    ),
    "concsim explore --variant skip-keeps-stale-pfn $P --strategy pct --schedules 2000 "
    "--save out/": Expect(
        1,
        ("FAILURE assertion [S2] in schedule #50", "is not MSHV_INVALID_PFN"),
        files=("out/default-skip-keeps-stale-pfn-assertion-seed50.json",),
    ),
    "concsim explain out/default-skip-keeps-stale-pfn-assertion-seed50.json": Expect(
        (0, 1), ("MSHV_INVALID_PFN",)
    ),
    "concsim run --scenario counter --variant racy --seed 3": Expect(1, ("FAILURE",)),
    "concsim run --scenario abba --seed 0 --save failures/": Expect(
        1, ("FAILURE deadlock",), files=("failures/abba-abba-deadlock-seed0.json",)
    ),
    "concsim replay failures/abba-abba-deadlock-seed0.json": Expect(
        1, ("reproduced: yes (same failure kind, same trace hash)",)
    ),
    "concsim run --scenario abba --schedule 'cs1:1100101'": Expect(1, ("FAILURE deadlock",)),
    "concsim run --seed 11 --json": Expect(0, ('"ok": true',)),
    "concsim scenarios": Expect(0, ("default:", "small:", "--param pages=<int>")),
    "concsim bench": Expect(0, ("steps/s", "ratio"), extra=("--steps", "2000", "--repeats", "1")),
    "concsim bench --model": Expect(
        0, ("schedules/s", "model steps/s"), extra=("--schedules", "20", "--repeats", "1")
    ),
    "concsim explore --variant no-read-retry --strategy pct --save failures/": Expect(
        1, ("FAILURE safety [S1]",)
    ),
    "concsim explore --scenario abba --strategy pct --depth 2 --schedules 1000": Expect(
        1, ("FAILURE deadlock",)
    ),
    "concsim explore --scenario counter --variant racy --strategy random --save failures/": (
        Expect(1, ("FAILURE",))
    ),
    "concsim explore --scenario counter --variant locked --strategy dfs": Expect(
        0, ("complete", "result: ok, no failure")
    ),
    "concsim explore --scenario counter --variant racy --strategy dfs --preemption-bound 1": (
        Expect(1, ("FAILURE",))
    ),
    "concsim explore --scenario independent --strategy dfs --no-reduction": Expect(
        0, ("executions: 1680", "complete")
    ),
    "concsim explore --strategy random --until-coverage --coverage-window 100 "
    "--schedules 5000 --json": Expect(0, ('"stopped_by": "coverage"',)),
    "concsim bench-explore --json": Expect(
        0,
        ('"targets"',),
        extra=("--target", "counter:racy", "--seeds", "2", "--max-schedules", "200"),
    ),
    "concsim replay failures/abba-abba-deadlock-seed0.json --trace text": Expect(
        1, ("mutex_lock",)
    ),
    "concsim replay failures/abba-abba-deadlock-seed0.json --trace perfetto -o abba.json": (
        Expect(1, ("perfetto trace written to abba.json",), files=("abba.json",))
    ),
    "concsim explain docs/replay-no-read-retry.json": Expect((0, 1), ("S1",)),
    "concsim replay docs/replay-no-read-retry.json --trace png -o docs/trace-no-read-retry.png": (
        Expect(1, ("png trace written",), files=("docs/trace-no-read-retry.png",))
    ),
    "concsim replay docs/replay-no-read-retry.json --trace perfetto -o "
    "docs/trace-no-read-retry.json": Expect(1, ("perfetto trace written",)),
    "concsim stress": Expect(0, ("concsim stress", "schedules"), extra=FAST_STRESS),
    "concsim stress --scenario counter --variant racy --seeds 0:5000 --out out/": Expect(
        1, ("failures by signature",), extra=("--workers", "1", "--shrink-runs", "0")
    ),
    "concsim stress --campaign counter-racy": Expect(
        1, ("counter-racy",), extra=(*FAST_STRESS, "--seeds", "0:500")
    ),
    "concsim stress --budget 10m --workers 2 --json": Expect(
        0, ('"failures": 0',), extra=FAST_STRESS
    ),
    "concsim stress --resume --out out/": Expect(1, ("complete",)),
    "concsim stress --campaign sweep --budget 10m": Expect(0, ("sweep",), extra=FAST_STRESS),
    "concsim stress --campaign sweep --seeds 4242:4243": Expect(
        0, ("sweep",), extra=("--workers", "1", "--shrink-runs", "0")
    ),
    "concsim stress --campaign sweep --param pages=4096": Expect(0, ("sweep",), extra=FAST_STRESS),
    "concsim stress --campaign sweep --variant v3": Expect(0, ("sweep",), extra=FAST_STRESS),
    "concsim stress --backend dask": Expect(
        0, skip="starts a Dask LocalCluster: tests/stress/test_dask.py runs one"
    ),
    "concsim stress --backend dask --scheduler tcp://127.0.0.1:8786": Expect(
        2, skip="needs a running Dask scheduler"
    ),
    "concsim stress --bench": Expect(0, skip="a benchmark (minutes), not a test"),
    "concsim shrink out/failures/<signature>/seed-N.json": Expect(
        0, skip="a template: <signature> and N stand for a real file"
    ),
    "concsim explore --variant no-read-retry --save ce/": Expect(1, ("FAILURE safety [S1]",)),
    "concsim replay ce/ --variant after-patch": Expect(
        0, ("passes", "1 file(s): 0 still fail, 0 fail differently, 1 pass")
    ),
    "concsim replay ce/ --variant no-read-retry": Expect(1, ("still fails",)),
    "concsim compare before-patch after-patch --param populated=1.0 --param "
    "events=migrate,reclaim,oom --plot docs/compare-retries.png": Expect(
        0,
        ("faults handled", "plot of -EBUSY retries per fault written to docs/compare-retries.png"),
        extra=("--schedules", "20"),
    ),
    "concsim db list": Expect(0, ("saved failure(s)", "safety/S1")),
    "concsim db clear": Expect(0, ("removed",)),
    "concsim explore --variant no_read_retry.py:NoReadRetry --save failures/": Expect(
        1, ("FAILURE safety [S1]", "replay with: concsim replay failures/")
    ),
}


def _strip_comment(line: str) -> str:
    """Drop a trailing ``  # comment`` (outside quotes)."""
    out, quote = [], ""
    for i, c in enumerate(line):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and line[i - 1 : i] in (" ", ""):
            break
        out.append(c)
    return "".join(out).strip()


def readme_commands(text: str) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """The README's concsim commands (as written), its shell variables, its ``# f.py``
    files."""
    commands: list[str] = []
    variables: dict[str, str] = {}
    files: dict[str, str] = {}
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if lang == "python":
            first = body.splitlines()[0] if body.strip() else ""
            m = re.fullmatch(r"# (\w+\.py)", first.strip())
            if m:
                files[m.group(1)] = body
            continue
        if lang not in ("sh", "console"):
            continue
        for raw in body.splitlines():
            line = raw.strip()
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            m = re.fullmatch(r"([A-Z_]+)=\"(.*)\"", line)
            if m:
                variables[m.group(1)] = m.group(2)
                continue
            if line.startswith("concsim "):
                commands.append(" ".join(_strip_comment(line).split()))
    return commands, variables, files


def _expand(command: str, variables: dict[str, str]) -> list[str]:
    for name, value in variables.items():
        command = command.replace(f"${name}", value)
    return shlex.split(command)[1:]


def test_every_readme_command_is_known_to_this_test() -> None:
    commands, _, _ = readme_commands(README.read_text(encoding="utf-8"))
    assert commands
    unknown = [c for c in commands if c not in EXPECT]
    assert not unknown, f"README commands this test does not check: {unknown}"
    stale = [c for c in EXPECT if c not in commands]
    assert not stale, f"commands checked here that the README no longer shows: {stale}"


def test_readme_commands_run_as_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands, variables, files = readme_commands(README.read_text(encoding="utf-8"))
    (tmp_path / "docs").mkdir()
    for p in (ROOT / "docs").glob("*.json"):
        shutil.copy(p, tmp_path / "docs" / p.name)
    shutil.copytree(ROOT / "stress", tmp_path / "stress")
    for name, body in files.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONCSIM_DB", str(tmp_path / ".concsim"))  # as a user has it
    runner = CliRunner()
    for command in commands:
        want = EXPECT[command]
        if want.skip is not None:
            continue
        args = _expand(command, variables) + list(want.extra)
        r = runner.invoke(cli, args, catch_exceptions=False, env={"COLUMNS": "200"})
        codes = want.code if isinstance(want.code, tuple) else (want.code,)
        where = f"README command {command!r} (run as {args})"
        assert r.exit_code in codes, f"{where}: exit {r.exit_code}\n{r.output}"
        for line in want.lines:
            assert line in r.output, f"{where}: {line!r} not in its output\n{r.output}"
        for f in want.files:
            assert (tmp_path / f).is_file(), f"{where}: {f} was not written"
        if "--json" in args:
            json.loads(r.stdout.strip().splitlines()[-1])
