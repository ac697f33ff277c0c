"""The CLI contract: output, exit codes, replay files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from ..conftest import run_cli


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_run_json_fields_and_exit_code_0() -> None:
    p = run_cli("run", "--seed", "11", "--json")
    assert p.returncode == 0, p.stderr
    d = _last_json(p.stdout)
    for k in (
        "ok",
        "seed",
        "scenario",
        "variant",
        "strategy",
        "steps",
        "trace_sha256",
        "schedule",
        "failure",
        "replay_file",
        "stats",
    ):
        assert k in d
    assert d["ok"] is True
    assert d["failure"] is None
    assert d["seed"] == 11
    assert len(d["trace_sha256"]) == 64


def test_failing_run_saves_a_replay_that_reproduces(tmp_path: Path) -> None:
    p = run_cli("run", "--scenario", "abba", "--seed", "0", "--json", "--save", str(tmp_path))
    assert p.returncode == 1, p.stderr
    d = _last_json(p.stdout)
    assert d["failure"]["kind"] == "deadlock"
    path = Path(d["replay_file"])
    assert path.exists()
    saved = json.loads(path.read_text())
    assert saved["format"] == "concsim-replay"
    assert saved["version"] == 2
    assert saved["config"]["scenario"] == "abba"
    r = run_cli("replay", str(path), "--json")
    assert r.returncode == 1
    rd = _last_json(r.stdout)
    assert rd["reproduced"] is True
    assert rd["failure"]["kind"] == "deadlock"
    assert rd["trace_sha256"] == d["trace_sha256"]


def test_human_output_prints_the_replay_command() -> None:
    p = run_cli("run", "--scenario", "counter", "--variant", "racy", "--seed", "3")
    assert p.returncode == 1
    assert "FAILURE assertion" in p.stdout
    cmd = next(line for line in p.stdout.splitlines() if line.startswith("replay with: "))
    args = cmd.removeprefix("replay with: concsim ").split()
    again = run_cli(*args, "--json")
    assert again.returncode == 1
    assert _last_json(again.stdout)["failure"]["kind"] == "assertion"


def test_abba_deadlocks_within_1000_seeds_and_names_both() -> None:
    import concsim

    for seed in range(1000):
        res = concsim.run("abba", seed=seed, trace=False)
        if not res.ok:
            break
    else:
        raise AssertionError("no deadlock in 1000 seeds")
    f = res.failure
    assert f is not None
    assert f.kind == "deadlock"
    assert "t_ab" in f.message
    assert "t_ba" in f.message
    assert "lock_a" in f.message
    assert "lock_b" in f.message


def _one_line_exit_2(p) -> None:  # type: ignore[no-untyped-def]
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in p.stderr


def test_unknown_scenario_exit_2() -> None:
    p = run_cli("run", "--scenario", "nope")
    _one_line_exit_2(p)
    assert "unknown scenario 'nope'" in p.stderr


def test_unknown_variant_and_bad_param_exit_2() -> None:
    _one_line_exit_2(run_cli("run", "--scenario", "counter", "--variant", "nope"))
    _one_line_exit_2(run_cli("run", "--scenario", "counter", "--param", "tasks=x"))
    _one_line_exit_2(run_cli("run", "--scenario", "counter", "--param", "nope=1"))
    _one_line_exit_2(run_cli("run", "--scenario", "counter", "--param", "tasks"))


def test_malformed_replay_files_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _one_line_exit_2(run_cli("replay", str(bad)))
    bad.write_text(json.dumps({"format": "concsim-replay", "version": 99}))
    p = run_cli("replay", str(bad))
    _one_line_exit_2(p)
    assert "version 99" in p.stderr
    bad.write_text(json.dumps({"format": "concsim-replay", "version": 1, "schedule": "cs1:0"}))
    p = run_cli("replay", str(bad))
    _one_line_exit_2(p)
    assert "missing field" in p.stderr
    _one_line_exit_2(run_cli("replay", str(tmp_path / "absent.json")))


def test_schedule_that_does_not_fit_exit_2(tmp_path: Path) -> None:
    p = run_cli("run", "--scenario", "abba", "--seed", "0", "--json", "--save", str(tmp_path))
    path = Path(_last_json(p.stdout)["replay_file"])
    data = json.loads(path.read_text())
    data["schedule"] = "cs1:9"
    path.write_text(json.dumps(data))
    r = run_cli("replay", str(path))
    _one_line_exit_2(r)
    assert "does not fit the model at step" in r.stderr
    _one_line_exit_2(run_cli("run", "--scenario", "abba", "--schedule", "cs1:zzz"))


def test_unwritable_save_folder_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    _one_line_exit_2(run_cli("run", "--scenario", "abba", "--seed", "0", "--save", str(f / "sub")))


def test_bench_prints_both_rates_and_ratio() -> None:
    p = run_cli("bench", "--steps", "20000", "--repeats", "1", "--json")
    assert p.returncode == 0, p.stderr
    d = _last_json(p.stdout)
    assert d["engine_steps_per_s"] > 0
    assert d["floor_steps_per_s"] > 0
    assert abs(d["ratio"] - d["engine_steps_per_s"] / d["floor_steps_per_s"]) < 0.01


def test_bench_model_prints_the_model_against_the_floor() -> None:
    p = run_cli(
        "bench", "--model", "--schedules", "5", "--repeats", "1", "--steps", "20000", "--json"
    )
    assert p.returncode == 0, p.stderr
    d = _last_json(p.stdout)
    assert d["scenario"] == "default"
    assert d["schedules"] == 5
    assert d["failures"] == 0
    assert d["steps_per_schedule"] > 10
    assert d["schedules_per_s"] > 0
    assert abs(d["model_steps_per_s"] / d["schedules_per_s"] - d["steps_per_schedule"]) < 1
    assert abs(d["ratio"] - d["model_steps_per_s"] / d["floor_steps_per_s"]) < 0.001
    _one_line_exit_2(run_cli("bench", "--model", "--region"))


def test_scenarios_and_variants_list() -> None:
    p = run_cli("scenarios", "--json")
    names = [s["name"] for s in _last_json(p.stdout)["scenarios"]]
    assert "counter" in names
    assert "abba" in names
    p = run_cli("variants")
    assert p.returncode == 0
    assert "racy" in p.stdout


def test_bench_region_reports_creation_and_invalidation() -> None:
    p = run_cli("bench", "--region", "--pages", "4096", "--repeats", "1", "--json")
    assert p.returncode == 0, p.stderr
    d = _last_json(p.stdout)
    assert d["pages"] == 4096
    assert d["pages_mapped_at_creation"] == 4096
    for k in ("after_patch_create_ms", "after_patch_invalidate_ms", "before_patch_create_ms"):
        assert d[k] > 0


def test_failure_json_always_names_its_invariant() -> None:
    p = run_cli("run", "--variant", "no-read-retry", "--seed", "8", "--strategy", "pct", "--json")
    d = _last_json(p.stdout)
    assert d["failure"]["invariant"] == "S1"
    assert {"gfn", "pfn", "hva"} <= set(d["failure"]["details"])
    p = run_cli("run", "--scenario", "abba", "--seed", "0", "--json")
    d = _last_json(p.stdout)
    assert d["failure"]["kind"] == "deadlock"
    assert "invariant" in d["failure"]
