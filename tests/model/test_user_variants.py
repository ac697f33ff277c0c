"""User-written driver variants: ``file.py:Class`` and ``package.module:Class`` specs."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

import concsim
from concsim.driver import AfterPatch
from concsim.driver._loader import load_variant, module_name_for

from ..conftest import run_cli

NO_RETRY = textwrap.dedent(
    '''
    """after-patch without the mmu_interval_read_retry check (B3.7)."""
    from concsim.driver import AfterPatch, MshvDriverBase, patched


    class NoReadRetry(AfterPatch):
        mshv_region_hmm_fault_and_lock = patched(
            MshvDriverBase.mshv_region_hmm_fault_and_lock,
            ("if await mmu_interval_read_retry(mni, seq):  # B3.7", "if False:"),
        )


    class Harmless(AfterPatch):
        name = "harmless-override"

        async def mshv_region_range_fault(self, region, off, count):
            self.rt.count("user_range_faults")
            return await super().mshv_region_range_fault(region, off, count)
    '''
)

#: seed 16 of the default scenario's random walk catches NoReadRetry (S1)
CATCHING_SEED = "16"


@pytest.fixture
def vdir(tmp_path: Path) -> Path:
    d = tmp_path / "variants"
    d.mkdir()
    (d / "my_variant.py").write_text(NO_RETRY)
    (d / "bad_import.py").write_text("raise RuntimeError('boom\\nsecond line')\n")
    (d / "not_a_variant.py").write_text("class Foo:\n    pass\n")
    return d


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_a_user_variant_by_path_is_caught_by_run_and_explore(vdir: Path) -> None:
    spec = "my_variant.py:NoReadRetry"
    p = run_cli("run", "--variant", spec, "--seed", CATCHING_SEED, "--json", cwd=vdir)
    assert p.returncode == 1, p.stderr
    d = _last_json(p.stdout)
    assert d["variant"] == spec
    assert d["failure"]["invariant"] == "S1"
    e = run_cli("explore", "--variant", spec, "--schedules", "300", "--json", cwd=vdir)
    assert e.returncode == 1, e.stderr
    assert _last_json(e.stdout)["first_failure"]["invariant"] == "S1"


def test_a_harmless_user_variant_is_clean_and_runs_its_override(vdir: Path) -> None:
    spec = str(vdir / "my_variant.py") + ":Harmless"
    used = 0
    for seed in range(40):
        res = concsim.run("default", variant=spec, seed=seed, trace=False)
        assert res.ok, (seed, res.failure)
        assert res.variant == spec
        used += res.stats.get("user_range_faults", 0)
    assert used > 0
    # The class set its own name; the spec is still what results carry.
    assert load_variant(spec).name == "harmless-override"


def test_the_class_name_defaults_to_the_spec(vdir: Path) -> None:
    spec = str(vdir / "my_variant.py") + ":NoReadRetry"
    cls = load_variant(spec)
    assert issubclass(cls, AfterPatch)
    assert cls.name == spec
    assert load_variant(spec) is cls  # loaded once per process


def test_a_file_is_loaded_under_a_unique_module_name(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "json.py").write_text(NO_RETRY)  # a stem that shadows a stdlib module
    ca = load_variant(f"{a / 'json.py'}:Harmless")
    cb = load_variant(f"{b / 'json.py'}:Harmless")
    assert ca is not cb
    assert ca.__module__ != cb.__module__
    assert ca.__module__ == module_name_for((a / "json.py").resolve())
    assert sys.modules["json"].__name__ == "json"
    assert hasattr(sys.modules["json"], "dumps")


def test_a_user_variant_by_module_name(vdir: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(vdir)}
    p = run_cli(
        "run",
        "--variant",
        "my_variant:NoReadRetry",
        "--seed",
        CATCHING_SEED,
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert p.returncode == 1, p.stderr
    assert _last_json(p.stdout)["failure"]["invariant"] == "S1"
    ok = run_cli("run", "--variant", "my_variant:Harmless", "--seed", "3", env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_a_replay_file_of_a_user_variant_failure_replays(vdir: Path) -> None:
    spec = "my_variant.py:NoReadRetry"
    p = run_cli(
        "run", "--variant", spec, "--seed", CATCHING_SEED, "--json", "--save", "out", cwd=vdir
    )
    assert p.returncode == 1, p.stderr
    d = _last_json(p.stdout)
    path = Path(d["replay_file"])
    assert path.name == f"default-my_variant.NoReadRetry-safety-seed{CATCHING_SEED}.json"
    saved = json.loads((vdir / path).read_text())
    assert saved["variant"] == spec  # stored as given
    assert saved["extra"]["variant_absolute"] == f"{(vdir / 'my_variant.py').resolve()}:NoReadRetry"
    for cwd, arg in ((vdir, str(path)), (vdir / "out", path.name)):  # also from another folder
        r = run_cli("replay", arg, "--json", cwd=cwd)
        assert r.returncode == 1, r.stderr
        rd = _last_json(r.stdout)
        assert rd["reproduced"] is True
        assert rd["trace_sha256"] == d["trace_sha256"]


def test_stress_loads_a_user_variant_in_its_worker(vdir: Path) -> None:
    spec = "my_variant.py:NoReadRetry"
    p = run_cli(
        "stress",
        "--variant",
        spec,
        "--seeds",
        "0:30",
        "--workers",
        "1",
        "--strategy",
        "random",
        "--out",
        "st",
        "--json",
        cwd=vdir,
    )
    assert p.returncode == 1, p.stderr
    d = _last_json(p.stdout)
    assert d["schedules"] == 30
    assert d["failures"] >= 1
    files = sorted((vdir / "st" / "failures").glob("*/seed-*.json"))
    assert files
    assert all("S1" in f.parent.name for f in files)
    r = run_cli("replay", str(files[0]), "--json", cwd=vdir)
    assert r.returncode == 1
    assert _last_json(r.stdout)["reproduced"] is True


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.py:X", "variant file 'missing.py' not found"),
        ("my_variant.py:Nope", "has no class 'Nope' (its driver classes: Harmless, NoReadRetry)"),
        ("not_a_variant.py:Foo", "is not a driver variant"),
        (
            "bad_import.py:X",
            "cannot import variant file 'bad_import.py': RuntimeError: boom second line",
        ),
        ("no_such_pkg.mod:X", "variant module 'no_such_pkg.mod' not found"),
        ("my_variant.py:", "is not a user variant spec"),
    ],
)
def test_bad_specs_are_one_line_errors(vdir: Path, spec: str, message: str) -> None:
    p = run_cli("run", "--variant", spec, cwd=vdir)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert message in lines[0]


def test_a_user_variant_on_an_example_scenario_is_refused(vdir: Path) -> None:
    p = run_cli("run", "--scenario", "counter", "--variant", "my_variant.py:Harmless", cwd=vdir)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1
    assert "takes only its own variants (locked, racy)" in p.stderr


def test_the_pytest_marker_takes_a_user_variant(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(my_variant=NO_RETRY)
    pytester.makepyfile(
        test_mine=textwrap.dedent(
            """
            import pytest

            @pytest.mark.concsim("small", variant="my_variant.py:Harmless", schedules=30)
            def test_harmless():
                pass

            @pytest.mark.concsim("default", variant="my_variant.py:NoReadRetry",
                                 schedules=300, expect="safety")
            def test_caught():
                pass
            """
        )
    )
    r = pytester.runpytest("-q", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=2)
