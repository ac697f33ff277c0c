"""The mshv model end to end: correct variants clean, every catalog mutant caught."""

from __future__ import annotations

import pytest

import concsim
from concsim.driver import CORRECT_VARIANTS, MUTANTS

CLEAN_SEEDS = 120


@pytest.mark.parametrize("scenario", ["default", "small"])
@pytest.mark.parametrize("variant", list(CORRECT_VARIANTS))
def test_correct_variants_are_clean(scenario: str, variant: str) -> None:
    retries = 0
    # PCT too on small: with every release a scheduling point, the random walk seldom puts
    # an invalidation inside a 4-page fault's window.
    strategies = ("random", "pct") if scenario == "small" else ("random",)
    for strategy in strategies:
        for seed in range(CLEAN_SEEDS):
            res = concsim.run(scenario, variant=variant, seed=seed, trace=False, strategy=strategy)
            assert res.ok, (strategy, seed, res.failure)
            retries += res.stats.get("ebusy_retries", 0)
    # The -EBUSY retry loop is really taken in these runs.
    assert retries > 0


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_mutant_is_caught_with_the_expected_failure(name: str) -> None:
    cls = MUTANTS[name]
    for seed in range(3000):
        res = concsim.run(
            cls.catch_scenario, variant=name, seed=seed, params=cls.catch_params, trace=False
        )
        if not res.ok:
            break
    else:
        pytest.fail(f"{name} not caught in 3000 schedules")
    f = res.failure
    assert f is not None
    assert f.kind in cls.expect_kinds, f
    assert f.invariant in cls.expect_invariants, f


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_counterexample_replays(name: str) -> None:
    cls = MUTANTS[name]
    for seed in range(3000):
        res = concsim.run(
            cls.catch_scenario, variant=name, seed=seed, params=cls.catch_params, trace=False
        )
        if not res.ok:
            break
    assert res.failure is not None
    again = concsim.run(
        cls.catch_scenario, variant=name, params=cls.catch_params, schedule=res.schedule
    )
    assert again.failure is not None
    assert (again.failure.kind, again.failure.invariant) == (
        res.failure.kind,
        res.failure.invariant,
    )


def test_review_assertion_point_holds_on_correct_variants_in_the_stale_slot_world() -> None:
    """The world where an invalidate remap fails on a hole: the kernel WARNs and leaves a
    stale slot, yet no correct variant ever skips it (the review's question answered)."""
    params = MUTANTS["skip-keeps-stale-pfn"].catch_params
    warned = 0
    for variant in CORRECT_VARIANTS:
        for seed in range(600):
            res = concsim.run("default", variant=variant, seed=seed, params=params, trace=False)
            assert res.ok, (variant, seed, res.failure)
            warned += res.stats.get("kernel_warn", 0)
    assert warned > 0  # the failed remap really happened in these runs


def test_before_patch_faults_more_than_after_patch_on_a_populated_region() -> None:
    params = {"populated": 1.0, "events": ""}
    faults = {}
    for v in ("before-patch", "after-patch"):
        faults[v] = sum(
            concsim.run("default", variant=v, seed=s, params=params, trace=False).stats.get(
                "faults_handled", 0
            )
            for s in range(50)
        )
    assert faults["after-patch"] == 0
    assert faults["before-patch"] >= 50


def test_cow_break_rechecks_the_pte_when_reclaim_races_it() -> None:
    """Regression: a write fault's COW break on the zero page raced a reclaim of the same
    page; wp_page_copy must see pte_same() fail and drop its copy (schedule #1327 of this
    exploration used to underflow a page refcount)."""
    res = concsim.explore(
        "default",
        variant="v3",
        params={"zero_pages": 2},
        strategy="pct",
        schedules=1400,
        shrink_failure=False,
    )
    assert res.ok, res.first_failure


@pytest.mark.parametrize("name", list(MUTANTS))
@pytest.mark.parametrize("strategy", ["pct", "random"])
def test_every_mutant_counterexample_shrinks_to_few_preemptions_and_replays(
    name: str, strategy: str
) -> None:
    """Issue 5's bar: the shrunk counterexample has at most 3 preemptions (every catalog bug
    allows it), at most as many steps, and replays to the same kind and invariant."""
    cls = MUTANTS[name]
    res = concsim.explore(
        cls.catch_scenario,
        variant=name,
        params=cls.catch_params,
        strategy=strategy,
        schedules=3000,
    )
    ff = res.first_failure
    assert ff is not None, f"{name} not caught by {strategy}"
    assert ff.shrunk_preemptions <= min(3, ff.preemptions), ff
    assert ff.shrunk_steps <= ff.steps
    again = concsim.run(
        cls.catch_scenario, variant=name, params=cls.catch_params, schedule=ff.shrunk_schedule
    )
    assert again.failure is not None
    assert (again.failure.kind, again.failure.invariant) == (ff.kind, ff.invariant)
