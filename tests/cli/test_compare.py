"""``concsim compare``: the table, the JSON, the plot, and numbers equal to the model's."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import concsim
from concsim._compare import COUNTERS, compare

from ..conftest import run_cli

PNG = b"\x89PNG\r\n\x1a\n"
ARGS = ("before-patch", "after-patch", "--param", "populated=1.0", "--schedules", "30")


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def _sums(variant: str, n: int) -> dict[str, int]:
    """The same sums, one concsim.run per seed (the seeds compare uses)."""
    out = dict.fromkeys((*COUNTERS, "failures"), 0)
    for seed in range(n):
        r = concsim.run(
            "default", variant=variant, seed=seed, trace=False, params={"populated": 1.0}
        )
        for k in COUNTERS:
            out[k] += r.stats.get(k, 0)
        out["failures"] += not r.ok
    return out


def test_compare_prints_the_table_and_json_equal_to_the_model_counters() -> None:
    p = run_cli("compare", *ARGS)
    assert p.returncode == 0, p.stderr
    for label in (
        "faults handled",
        "-EBUSY retries per fault, p99",
        "hmm_range_fault restarts",
        "hypercall reps",
        "pages mapped at creation",
        "steps per schedule, mean",
        "A: before-patch",
        "B: after-patch",
        "B - A",
        "B / A",
    ):
        assert label in p.stdout, label
    j = run_cli("compare", *ARGS, "--json")
    assert j.returncode == 0, j.stderr
    d = _last_json(j.stdout)
    assert set(d) >= {"a", "b", "diff", "scenario", "schedules", "seed", "strategy", "params"}
    assert (d["scenario"], d["schedules"], d["seed"], d["strategy"]) == ("default", 30, 0, "random")
    a, b = _sums("before-patch", 30), _sums("after-patch", 30)
    for k in (*COUNTERS, "failures"):
        assert d["a"][k] == a[k], k
        assert d["b"][k] == b[k], k
        assert d["diff"][k]["b_minus_a"] == b[k] - a[k], k
    # The patch maps populated pages at creation, so the guest faults less.
    assert d["diff"]["faults_handled"]["b_minus_a"] < 0
    assert d["b"]["pages_mapped_at_creation"] > 0 == d["a"]["pages_mapped_at_creation"]
    assert d["diff"]["faults_handled"]["ratio"] == round(
        b["faults_handled"] / a["faults_handled"], 6
    )
    # The human table shows the same fault counts.
    assert f"{a['faults_handled']:,}" in p.stdout
    assert f"{b['faults_handled']:,}" in p.stdout


def test_retries_per_fault_percentiles_over_schedules_with_faults() -> None:
    cmp = compare("before-patch", "after-patch", schedules=25, params={"populated": 1.0})
    ratios = []
    for seed in range(25):
        r = concsim.run(
            "default", variant="after-patch", seed=seed, trace=False, params={"populated": 1.0}
        )
        if r.stats.get("faults_handled", 0):
            ratios.append(r.stats.get("ebusy_retries", 0) / r.stats["faults_handled"])
    m = cmp.b.metrics()
    assert m["ebusy_retries_per_fault_p50"] == round(float(np.percentile(ratios, 50)), 6)
    assert m["ebusy_retries_per_fault_p99"] == round(float(np.percentile(ratios, 99)), 6)
    assert m["ebusy_retries_per_fault_mean"] == round(float(np.mean(ratios)), 6)
    # Same seeds, same numbers.
    again = compare("before-patch", "after-patch", schedules=25, params={"populated": 1.0})
    assert again.to_json() == cmp.to_json()


def test_compare_with_pct_and_a_user_variant(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        textwrap.dedent(
            """
        from concsim.driver import AfterPatch, MshvDriverBase, patched

        class NoReadRetry(AfterPatch):
            mshv_region_hmm_fault_and_lock = patched(
                MshvDriverBase.mshv_region_hmm_fault_and_lock,
                ("if await mmu_interval_read_retry(mni, seq):  # B3.7", "if False:"),
            )
        """
        )
    )
    p = run_cli(
        "compare", "after-patch", "mine.py:NoReadRetry", "--schedules", "60", "--json", cwd=tmp_path
    )
    assert p.returncode == 0, p.stderr
    d = _last_json(p.stdout)
    assert d["a"]["failures"] == 0
    assert d["b"]["failures"] > 0
    assert any("S1" in k for k in d["b"]["failure_kinds"])
    assert d["b"]["variant"] == "mine.py:NoReadRetry"
    q = run_cli(
        "compare",
        "before-patch",
        "after-patch",
        "--scenario",
        "small",
        "--strategy",
        "pct",
        "--schedules",
        "10",
        "--json",
    )
    assert q.returncode == 0, q.stderr
    assert _last_json(q.stdout)["strategy"] == "pct"


def test_the_plot_is_written_and_deterministic(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "retries.png"
    p = run_cli("compare", *ARGS, "--plot", str(out))
    assert p.returncode == 0, p.stderr
    assert f"written to {out}" in p.stdout
    first = out.read_bytes()
    assert first.startswith(PNG)
    q = run_cli("compare", *ARGS, "--plot", str(out), "--json")
    assert q.returncode == 0, q.stderr
    assert _last_json(q.stdout)["plot"] == str(out)
    assert out.read_bytes() == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("before-patch", "no-such-variant"), "unknown variant 'no-such-variant'"),
        (("before-patch", "missing.py:X"), "variant file 'missing.py' not found"),
        (
            ("racy", "locked", "--scenario", "counter", "--plot", "/proc/x/y.png"),
            "cannot write plot",
        ),
        (("before-patch", "after-patch", "--plot", "out.txt"), "give it a FILE.png"),
        (("before-patch", "after-patch", "--schedules", "0"), "at least 1"),
        (("before-patch", "after-patch", "--param", "nope=1"), "has no parameter 'nope'"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: tuple[str, ...], message: str) -> None:
    p = run_cli("compare", *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert message in lines[0]


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_variant_is_caught_and_its_plot_is_there(tmp_path: Path) -> None:
    text = README.read_text()
    section = text[text.index("## Reviewing a patch") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    (tmp_path / "no_read_retry.py").write_text(code.group(1))
    res = concsim.run(
        "default", variant=f"{tmp_path / 'no_read_retry.py'}:NoReadRetry", seed=16, trace=False
    )
    assert res.failure is not None
    assert res.failure.invariant == "S1"
    assert (README.parent / "docs" / "compare-retries.png").read_bytes().startswith(PNG)


PATHS = ("creation", "fault", "invalidate", "destroy")


@pytest.mark.parametrize("variant", ["before-patch", "after-patch", "stateless"])
def test_hypercalls_by_path_add_up_to_the_total(variant: str) -> None:
    """Every hypercall of the default world is made from one of the labelled driver paths."""
    seen = dict.fromkeys(PATHS, 0)
    for seed in range(12):
        r = concsim.run(
            "default",
            variant=variant,
            seed=seed,
            trace=False,
            params={"destroy": True, "regions": 2, "events": "migrate,reclaim,oom,ksm,thp"},
        )
        by_path = [r.stats.get(f"hypercalls.{p}", 0) for p in PATHS]
        assert sum(by_path) == r.stats.get("hypercalls", 0), (seed, r.stats)
        for p, n in zip(PATHS, by_path, strict=True):
            seen[p] += n
    assert all(seen.values()), seen


def test_creation_hypercalls_count_the_validity_runs_the_patch_maps() -> None:
    """Before the patch creation maps each region NO_ACCESS in one call; after it, with no
    event racing, a fully populated region is one run (one call) and a half-populated one is
    one call per run of populated or unpopulated pages."""
    quiet = {"events": "", "regions": 2}
    for seed in range(5):
        r = concsim.run(
            "default",
            variant="before-patch",
            seed=seed,
            trace=False,
            params={**quiet, "populated": 0.5},
        )
        assert r.stats["hypercalls.creation"] == 2
        r = concsim.run(
            "default",
            variant="after-patch",
            seed=seed,
            trace=False,
            params={**quiet, "populated": 1.0},
        )
        assert r.stats["hypercalls.creation"] == 2
    r = concsim.run(
        "default", variant="after-patch", seed=0, trace=False, params={**quiet, "populated": 0.5}
    )
    assert r.stats["hypercalls.creation"] > 2


def test_compare_takes_its_defaults_from_the_environment_and_pyproject(tmp_path: Path) -> None:
    """As run and explore do: CONCSIM_*, then [tool.concsim], then the built-ins; the
    command line wins."""
    (tmp_path / "pyproject.toml").write_text('[tool.concsim]\nscenario = "counter"\n')

    def cmp(*extra: str, env: dict[str, str] | None = None) -> dict:
        p = run_cli("compare", "racy", "locked", "--json", *extra, env=env, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        d = json.loads(p.stdout.strip().splitlines()[-1])
        return {k: d[k] for k in ("scenario", "schedules", "seed", "strategy")}

    env = {"CONCSIM_SCHEDULES": "6", "CONCSIM_SEED": "3", "CONCSIM_STRATEGY": "pct"}
    assert cmp(env=env) == {"scenario": "counter", "schedules": 6, "seed": 3, "strategy": "pct"}
    got = cmp("--schedules", "4", "--seed", "1", "--strategy", "random", env=env)
    assert got == {"scenario": "counter", "schedules": 4, "seed": 1, "strategy": "random"}
