"""The run core: one configuration, one schedule per (strategy, seed) in every front end,
and replay files that hold the whole configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import concsim
from concsim._check import checking
from concsim.artifacts import load_replay
from concsim.campaign import Job, run_batch, seed_digest
from concsim.exploration import Exploration, make_target
from concsim.runs import RunConfig, config_of_replay

ROOT = Path(__file__).resolve().parents[1]
SEEDS = 30
#: (scenario, variant): correct models, so no front end stops early at a failure
WORLDS = [("counter", None), ("abba", "ordered")]


def _schedules_by_run(scn: str, variant: str | None, strategy: str) -> list[str]:
    out = []
    for s in range(SEEDS):
        try:
            out.append(concsim.run(scn, variant=variant, strategy=strategy, seed=s).schedule)
        except concsim.UsageError:  # DFS: fewer executions than seeds
            break
    return out


def _schedules_by_explore(scn: str, variant: str | None, strategy: str) -> list[str]:
    ex = Exploration(
        make_target(scn, variant),
        strategy=strategy,
        schedules=SEEDS,
        stop_on_failure=False,
        shrink_failure=False,
    )
    out = []
    while True:
        more = ex.step()
        assert ex.last is not None
        out.append(ex.last.result.schedule)
        if not more:
            return out


def _schedules_by_check(scn: str, variant: str | None, strategy: str) -> list[str]:
    c = checking(scn, schedules=SEEDS, strategy=strategy, variant=variant)
    out = []
    while c.step():
        assert c.last is not None
        out.append(c.last.schedule)
    if c.last is not None and len(out) < c.ran:
        out.append(c.last.schedule)
    return out


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs"])
@pytest.mark.parametrize(("scn", "variant"), WORLDS)
def test_a_seed_is_one_schedule_in_every_front_end(
    scn: str, variant: str | None, strategy: str
) -> None:
    by_run = _schedules_by_run(scn, variant, strategy)
    assert len(by_run) >= 4
    assert len(set(by_run)) > 1  # the seeds do pick different schedules
    assert _schedules_by_explore(scn, variant, strategy) == by_run
    assert _schedules_by_check(scn, variant, strategy) == by_run
    # stress: a worker's batch of one seed hashes that seed's steps, outcome and choices
    vname = concsim.run(scn, variant=variant).variant
    job = Job(scn, vname, {}, strategy)
    for s, sched in enumerate(by_run):
        res = concsim.run(scn, variant=variant, strategy=strategy, seed=s)
        assert res.schedule == sched
        want = seed_digest(s, res.steps, None, res.choices)
        assert run_batch(job, s, s + 1).digest == want, (strategy, s)


MARKER_TEST = """
import json, os
import pytest
from concsim import _check

seen = []
_step = _check.Checking.step

def _logging_step(self):
    more = _step(self)
    seen.append(self.last.schedule)
    return more

_check.Checking.step = _logging_step

@pytest.mark.concsim("{scn}", variant={variant!r}, strategy="{strategy}", schedules={n})
def test_marked():
    with open(os.environ["SCHEDULES_OUT"], "w") as f:
        json.dump(seen, f)
"""


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs"])
def test_the_pytest_marker_runs_the_same_schedules(
    pytester: pytest.Pytester, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scn, variant = WORLDS[0]
    by_run = _schedules_by_run(scn, variant, strategy)
    out = pytester.path / "seen.json"
    monkeypatch.setenv("SCHEDULES_OUT", str(out))
    pytester.makepyfile(
        test_marked=MARKER_TEST.format(scn=scn, variant=variant, strategy=strategy, n=SEEDS)
    )
    r = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=1)
    assert json.loads(out.read_text()) == by_run


# ---------------------------------------------------------------- DFS everywhere


def _lost_update(rt: concsim.Runtime) -> list[object]:
    state = {"n": 0}

    async def inc() -> None:
        await rt.point("load", "n", read=True)
        v = state["n"]
        await rt.point("store", "n")
        state["n"] = v + 1

    rt.add_final_hook(lambda rt: rt.check(state["n"] == 2, f"lost update: {state['n']}"))
    return [inc(), inc()]


def test_dfs_from_check_on_an_adhoc_world() -> None:
    res = concsim.check(_lost_update, strategy="dfs", schedules=1000)
    assert not res.ok
    assert res.failing is not None
    assert res.failing.failure is not None
    assert "lost update" in res.failing.failure.message

    # a correct ad-hoc world: DFS runs out of executions before the budget, and says so
    def fine(rt: concsim.Runtime) -> list[object]:
        async def t() -> None:
            await rt.point("op", "x")

        return [t(), t()]

    ok = concsim.check(fine, strategy="dfs", schedules=1000)
    assert ok.ok
    assert 1 <= ok.schedules < 1000


DFS_MARKER = """
import pytest

@pytest.mark.concsim("counter", variant="racy", strategy="dfs", schedules=500, expect="assertion")
def test_dfs_finds_the_lost_update():
    pass

@pytest.mark.concsim("counter", strategy="dfs", schedules=500)
def test_dfs_is_clean_on_the_locked_counter():
    pass

def test_adhoc(concsim_explore):
    from tests_helper import build
    concsim_explore(build, strategy="dfs", schedules=500)
"""

HELPER = """
def build(rt):
    state = {"n": 0}

    async def inc():
        await rt.point("load", "n", read=True)
        v = state["n"]
        await rt.point("store", "n")
        state["n"] = v + 1

    rt.add_final_hook(lambda rt: rt.check(state["n"] == 2, f"lost update: {state['n']}"))
    return [inc(), inc()]
"""


def test_dfs_from_the_pytest_marker_and_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dfs=DFS_MARKER, tests_helper=HELPER)
    pytester.syspathinsert()
    r = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=2, failed=1)
    assert "lost update" in r.stdout.str()


# ---------------------------------------------------------------- replay files


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "concsim", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=120,
    )


def _replays_alone(path: Path, cwd: Path) -> dict[str, object]:
    p = _cli("replay", str(path), "--json", cwd=cwd)
    assert p.returncode == 1, p.stderr
    d = json.loads(p.stdout.strip().splitlines()[-1])
    assert d["reproduced"] is True
    return d


def test_stress_max_steps_failure_replays_from_its_file(tmp_path: Path) -> None:
    """The issue's example: the summary's own replay command must reproduce."""
    out = tmp_path / "out"
    p = _cli(
        "stress",
        "--scenario",
        "counter",
        "--max-steps",
        "5",
        "--seeds",
        "0:3",
        "--workers",
        "1",
        "--out",
        str(out),
        "--json",
        cwd=tmp_path,
    )
    assert p.returncode == 1, p.stderr
    files = sorted((out / "failures").glob("*/*.json"))
    assert files
    for f in files:
        assert load_replay(f).config is not None
        assert config_of_replay(load_replay(f)).max_steps == 5
        d = _replays_alone(f, tmp_path)
        assert d["failure"]["kind"] == "step-limit"  # type: ignore[index]


@pytest.mark.parametrize(
    ("setting", "args", "field", "value"),
    [
        ("max steps", ["--scenario", "counter", "--max-steps", "7"], "max_steps", 7),
        ("depth", ["--scenario", "abba", "--strategy", "pct", "--depth", "2"], "depth", 2),
        ("k", ["--scenario", "abba", "--strategy", "pct", "--k", "3"], "k", 3),
        (
            "preemption bound",
            ["--scenario", "abba", "--strategy", "dfs", "--preemption-bound", "1"],
            "preemption_bound",
            1,
        ),
        (
            "params",
            ["--scenario", "counter", "--variant", "racy", "--param", "tasks=3"],
            "params",
            {"tasks": 3, "increments": 2},
        ),
    ],
)
def test_a_failure_found_with_a_setting_replays_from_its_file_alone(
    tmp_path: Path, setting: str, args: list[str], field: str, value: object
) -> None:
    p = _cli("explore", *args, "--schedules", "200", "--save", str(tmp_path), "--json", cwd=ROOT)
    assert p.returncode == 1, (setting, p.stderr)
    d = json.loads(p.stdout.strip().splitlines()[-1])
    path = Path(d["first_failure"]["replay_file"])
    cfg = config_of_replay(load_replay(path))
    assert getattr(cfg, field) == value
    _replays_alone(path, tmp_path)
    # and the same through run: schedule 0 of the stored configuration, replayed exactly
    again = concsim.replay(str(path))
    assert again.reproduced


def test_a_version_1_file_still_replays_and_a_bad_config_is_one_line(tmp_path: Path) -> None:
    res = concsim.run("abba", seed=0)
    assert not res.ok
    concsim.save_failure(res, str(tmp_path))
    assert res.replay_file is not None
    data = json.loads(Path(res.replay_file).read_text())
    v1 = {k: v for k, v in data.items() if k != "config"} | {"version": 1}
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(v1))
    assert concsim.replay(str(old)).reproduced
    data["config"]["depth"] = "deep"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    p = _cli("replay", str(bad), cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1
    assert "field 'config'" in p.stderr
    assert "depth" in p.stderr
    data["version"] = 3
    bad.write_text(json.dumps(data))
    p = _cli("replay", str(bad), cwd=tmp_path)
    assert p.returncode == 2
    assert "version 3 is not supported" in p.stderr


def test_run_config_is_frozen_and_checked() -> None:
    cfg = RunConfig(scenario="counter", strategy="pct", k=4)
    with pytest.raises(AttributeError):
        cfg.seed = 3  # type: ignore[misc]
    assert RunConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(concsim.UsageError, match="unknown strategy"):
        RunConfig(strategy="bfs")
    with pytest.raises(concsim.UsageError, match="unknown field 'sead'"):
        RunConfig.from_json({"sead": 1})


# ---------------------------------------------------------------- layered defaults


def test_defaults_come_from_cli_then_env_then_pyproject_then_builtin(tmp_path: Path) -> None:
    from concsim.runs._defaults import resolve_settings

    pp = tmp_path / "pyproject.toml"
    pp.write_text('[tool.concsim]\nseed = 7\nstrategy = "pct"\nmax_preemptions = 2\n')
    env = {"CONCSIM_SEED": "5"}
    r = resolve_settings({}, environ=env, pyproject=pp)
    assert (r["seed"].value, r["seed"].source) == (5, "environment (CONCSIM_SEED)")
    assert r["strategy"].value == "pct"
    assert r["strategy"].source.startswith("pyproject.toml")
    assert r["preemption_bound"].value == 2
    assert (r["depth"].value, r["depth"].source) == (3, "built-in")
    r = resolve_settings({"seed": 1}, environ=env, pyproject=pp)
    assert (r["seed"].value, r["seed"].source) == (1, "command line")
    with pytest.raises(concsim.UsageError, match="CONCSIM_SEED: seed='x' is not a valid int"):
        resolve_settings({}, environ={"CONCSIM_SEED": "x"}, pyproject=pp)
    pp.write_text("[tool.concsim]\nsead = 7\n")
    with pytest.raises(concsim.UsageError, match="no setting 'sead'"):
        resolve_settings({}, environ={}, pyproject=pp)


def test_concsim_config_and_run_read_the_environment_and_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.concsim]\nstrategy = "pct"\n')
    env = {**__import__("os").environ, "CONCSIM_SEED": "2"}
    p = subprocess.run(
        [sys.executable, "-m", "concsim", "config", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["seed"] == {"value": 2, "source": "environment (CONCSIM_SEED)"}
    assert d["strategy"]["value"] == "pct"
    assert "pyproject.toml" in d["strategy"]["source"]
    p = subprocess.run(
        [sys.executable, "-m", "concsim", "run", "--scenario", "abba", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    d = json.loads(p.stdout.strip().splitlines()[-1])
    assert (d["seed"], d["strategy"]) == (2, "pct")
    assert d["schedule"] == concsim.run("abba", strategy="pct", seed=2).schedule


def test_check_takes_its_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCSIM_SCHEDULES", "3")
    monkeypatch.setenv("CONCSIM_SEED", "4")
    res = concsim.check("counter")
    assert (res.schedules, res.seed) == (3, 4)
