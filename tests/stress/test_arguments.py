"""Bad arguments give one line on stderr and exit code 2; named campaigns; the strategy."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from concsim._errors import UsageError
from concsim.runs import make_strategy

from ..conftest import run_cli
from .helpers import last_json, one_line_exit_2


@pytest.mark.parametrize(
    ("seeds", "says"),
    [("5:5", "empty"), ("9:3", "reversed"), ("x:3", "A:B"), ("-1:3", "A:B")],
)
def test_bad_seed_ranges(tmp_path: Path, seeds: str, says: str) -> None:
    err = one_line_exit_2(run_cli("stress", "--seeds", seeds, "--out", str(tmp_path / "o")))
    assert says in err
    assert not (tmp_path / "o").exists()


def test_bad_budget_and_scenario(tmp_path: Path) -> None:
    one_line_exit_2(run_cli("stress", "--budget", "soon", "--out", str(tmp_path / "o")))
    one_line_exit_2(run_cli("stress", "--budget", "0s", "--out", str(tmp_path / "o")))
    one_line_exit_2(run_cli("stress", "--scenario", "nope", "--out", str(tmp_path / "o")))
    one_line_exit_2(run_cli("stress", "--param", "nope=1", "--out", str(tmp_path / "o")))


def test_unreachable_scheduler(tmp_path: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    p = run_cli(
        "stress",
        "--backend",
        "dask",
        "--scheduler",
        f"tcp://127.0.0.1:{port}",
        "--connect-timeout",
        "1",
        "--seeds",
        "0:10",
        "--out",
        str(tmp_path / "o"),
    )
    err = one_line_exit_2(p)
    assert f"127.0.0.1:{port}" in err
    assert "cannot reach" in err


def test_scheduler_needs_dask_backend(tmp_path: Path) -> None:
    one_line_exit_2(run_cli("stress", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path)))


def test_unwritable_out_folder(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    err = one_line_exit_2(run_cli("stress", "--seeds", "0:10", "--out", str(f / "sub")))
    assert "cannot write" in err


def test_existing_campaign_needs_resume_and_resume_needs_a_campaign(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("stress", "--seeds", "0:50", "--out", str(out)).returncode == 0
    err = one_line_exit_2(run_cli("stress", "--seeds", "0:50", "--out", str(out)))
    assert "--resume" in err
    err = one_line_exit_2(run_cli("stress", "--resume", "--seeds", "0:60", "--out", str(out)))
    assert "different seeds" in err
    one_line_exit_2(run_cli("stress", "--resume", "--out", str(tmp_path / "none")))
    p = run_cli("stress", "--resume", "--out", str(out), "--json")  # complete: nothing to do
    assert p.returncode == 0, p.stderr
    assert last_json(p.stdout)["session_schedules"] == 0


def test_named_campaign_from_the_stress_folder_and_shipped(tmp_path: Path) -> None:
    (tmp_path / "stress").mkdir()
    (tmp_path / "stress" / "mine.toml").write_text(
        'scenario = "counter"\nvariant = "racy"\nseeds = "0:60"\n[params]\nincrements = 1\n'
    )
    p = run_cli("stress", "--campaign", "mine", "--out", "o", "--json", cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    d = last_json(p.stdout)
    assert d["schedules"] == 60
    assert d["failures"] > 0
    saved = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert saved["campaign"]["params"] == {"tasks": 2, "increments": 1}
    assert saved["name"] == "mine"
    (tmp_path / "stress" / "bad.toml").write_text('scenario = "counter"\nwhat = 1\n')
    assert "unknown key 'what'" in one_line_exit_2(
        run_cli("stress", "--campaign", "bad", cwd=tmp_path)
    )
    assert "unknown campaign" in one_line_exit_2(
        run_cli("stress", "--campaign", "absent", cwd=tmp_path)
    )
    p = run_cli(
        "stress", "--campaign", "smoke", "--seeds", "0:30", "--out", "s", "--json", cwd=tmp_path
    )
    assert p.returncode == 0, p.stderr
    assert last_json(p.stdout)["schedules"] == 30


def _has_pct() -> bool:
    try:
        make_strategy("pct", 0)
    except UsageError:
        return False
    return True


def test_strategy_pct_until_it_exists_is_a_clear_error(tmp_path: Path) -> None:
    p = run_cli(
        "stress", "--strategy", "pct", "--seeds", "0:20", "--out", str(tmp_path / "o"), "--json"
    )
    if _has_pct():
        assert p.returncode == 0, p.stderr
        return
    assert "--strategy pct" in one_line_exit_2(p)
    p = run_cli("stress", "--seeds", "0:20", "--out", str(tmp_path / "d"), "--json")
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert m["campaign"]["strategy"] == "random"


def test_stress_takes_its_defaults_from_the_environment_and_pyproject(tmp_path: Path) -> None:
    """As run and explore do: what the command line does not say comes from CONCSIM_*,
    then [tool.concsim] in the nearest pyproject.toml, then the campaign's built-ins; the
    command line wins over both."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.concsim]\nscenario = "counter"\nvariant = "locked"\nstrategy = "random"\n'
    )
    common = ("stress", "--seeds", "0:20", "--workers", "1", "--json", "--db", "off")

    def campaign(*extra: str, env: dict[str, str] | None = None) -> dict:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        p = run_cli(*common, "--out", str(out), *extra, env=env, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        return json.loads((out / "manifest.json").read_text())["campaign"]

    c = campaign()
    assert (c["scenario"], c["variant"], c["strategy"]) == ("counter", "locked", "random")
    c = campaign(env={"CONCSIM_STRATEGY": "pct", "CONCSIM_DEPTH": "2"})
    assert (c["strategy"], c["depth"]) == ("pct", 2)
    c = campaign("--strategy", "random", env={"CONCSIM_STRATEGY": "pct"})
    assert c["strategy"] == "random"


@pytest.mark.parametrize("kind", ["scenario", "sweep"])
def test_workers_are_capped_with_a_message_for_every_campaign(tmp_path: Path, kind: str) -> None:
    """Issue 14: --workers above 4 per core is capped, with a line saying so; a sweep takes
    the same path (it used to skip the cap)."""
    import os

    from concsim.cli._stress import max_local_workers

    what = ("--campaign", "sweep") if kind == "sweep" else ("--scenario", "small")
    p = run_cli(
        "stress",
        *what,
        "--workers",
        "100000",
        "--seeds",
        "0:4",
        "--out",
        str(tmp_path / "o"),
        "--json",
        "--db",
        "off",
    )
    assert p.returncode == 0, p.stderr
    cap = max_local_workers()
    assert f"--workers 100000 is more than {cap}" in p.stderr
    assert last_json(p.stdout)["workers"] == cap
    assert cap == 4 * (os.cpu_count() or 1)


def test_a_sweep_takes_every_campaign_option(tmp_path: Path) -> None:
    """A sweep used to build its own spec and dropped --keep-per-signature and
    --batch-timeout; one spec is now built for every campaign."""
    from concsim.cli._stress import build_spec

    common: dict = {
        "scenario": None,
        "variant": None,
        "strategy": None,
        "seeds": "0:10",
        "budget": None,
        "workers": 1,
        "backend": "local",
        "scheduler": None,
        "connect_timeout": 10.0,
        "out": str(tmp_path / "o"),
        "resume": False,
        "params": (),
        "max_steps": None,
        "imports": (),
        "keep_per_signature": 3,
        "batch_timeout": 7.0,
    }
    for campaign in (None, "sweep"):
        spec = build_spec(campaign=campaign, **common)
        assert spec.keep_per_signature == 3
        assert spec.batch_timeout_s == 7.0
    assert build_spec(campaign="sweep", **common).job.sweep == "mshv"
