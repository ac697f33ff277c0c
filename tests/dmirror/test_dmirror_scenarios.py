"""The dmirror scenarios: the correct driver is clean, every mutant is caught with its
invariant, and the scenarios and variants are listed like the mshv ones."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from concsim.cli._main import cli
from concsim.driver.dmirror import MUTANTS
from concsim.exploration._explorer import explore


@pytest.mark.parametrize("name", list(MUTANTS))
def test_each_mutant_is_caught_with_its_invariant(name: str) -> None:
    cls = MUTANTS[name]
    res = explore(
        cls.catch_scenario,
        variant=name,
        params=dict(cls.catch_params),
        strategy="pct",
        schedules=400,
        seed=0,
        shrink_failure=False,
    )
    ff = res.first_failure
    assert ff is not None, f"{name} not caught in 400 PCT schedules"
    assert ff.kind in cls.expect_kinds, (ff.kind, ff.message)
    assert ff.invariant in cls.expect_invariants, (ff.invariant, ff.message)


def test_correct_variant_is_clean_under_random_and_pct() -> None:
    for strategy in ("random", "pct"):
        res = explore("dmirror", strategy=strategy, schedules=150, seed=7, shrink_failure=False)
        assert res.first_failure is None, res.first_failure.message
        assert res.schedules_run == 150


def test_correct_variant_is_clean_with_every_event_but_exit() -> None:
    params = {
        "events": "migrate,reclaim,munmap,oom,madvise,mprotect,numa,thp,fork",
        "mirrors": 2,
        "readers": 2,
        "cpu_writes": 3,
    }
    res = explore(
        "dmirror", params=params, strategy="random", schedules=120, seed=3, shrink_failure=False
    )
    assert res.first_failure is None, res.first_failure.message


def test_small_is_exhausted_by_dfs_and_clean() -> None:
    res = explore("dmirror-small", strategy="dfs", shrink_failure=False)
    assert res.complete
    assert res.first_failure is None
    assert res.executions > 50


def test_an_exited_mm_makes_the_copy_loop_spin() -> None:
    """lib/test_hmm.c: dmirror_fault returns 0 when mmget_not_zero fails, so a READ on a
    mirror whose mm has exited never returns (reported as L1 by the model's watchdog)."""
    res = explore(
        "dmirror",
        params={"events": "exit", "writers": 0, "snapshots": 0, "cpu_writes": 0},
        strategy="random",
        schedules=200,
        seed=0,
        shrink_failure=False,
    )
    ff = res.first_failure
    assert ff is not None
    assert (ff.kind, ff.invariant) == ("liveness", "L1"), ff.message


def test_scenarios_and_variants_are_listed() -> None:
    r = CliRunner().invoke(cli, ["scenarios", "--json"])
    names = {s["name"]: s for s in json.loads(r.output)["scenarios"]}
    assert {"dmirror", "dmirror-small"} <= set(names)
    assert names["dmirror"]["default_variant"] == "dmirror"
    r = CliRunner().invoke(cli, ["variants", "--scenario", "dmirror", "--json"])
    variants = {v["name"]: v for v in json.loads(r.output)["variants"]}
    assert variants["dmirror"]["mutant"] is False
    assert set(MUTANTS) <= {k for k, v in variants.items() if v["mutant"]}


def test_unknown_event_is_a_usage_error() -> None:
    r = CliRunner().invoke(cli, ["run", "--scenario", "dmirror", "--param", "events=nope"])
    assert r.exit_code == 2
    assert "unknown event 'nope'" in r.output


def test_exclusive_races_madvise_without_a_sequence_check() -> None:
    """lib/test_hmm.c: dmirror_exclusive maps the page for atomic access after
    make_device_exclusive returned, with no mmu_interval_read_retry; a MADV_DONTNEED (under
    mmap_lock for read, like the ioctl) can zap the device-exclusive entry in between, and
    the device then holds an atomic mapping of a page the process no longer maps (D4)."""
    res = explore(
        "dmirror",
        params={
            "exclusives": 1,
            "readers": 0,
            "writers": 0,
            "snapshots": 0,
            "cpu_writes": 0,
            "events": "madvise",
        },
        strategy="pct",
        schedules=400,
        seed=0,
        shrink_failure=False,
    )
    ff = res.first_failure
    assert ff is not None
    assert (ff.kind, ff.invariant) == ("safety", "D4"), ff.message
