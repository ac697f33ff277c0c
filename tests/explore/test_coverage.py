"""Coverage: the PCT bound and racing pairs."""

from __future__ import annotations

import math

import concsim
from concsim.exploration import Coverage


def test_pct_bound_formula() -> None:
    c = Coverage(depth=2, ntasks=4, points=200, runs=3684)
    assert math.isclose(c.pct_bound(), 1 - (1 - 1 / 800) ** 3684)
    assert 0.98 < c.pct_bound() < 0.995
    c3 = Coverage(depth=3, ntasks=4, points=200, runs=10)
    assert math.isclose(c3.pct_bound(), 1 - (1 - 1 / 160_000) ** 10)


def test_racing_pairs_seen_in_both_orders_by_dfs() -> None:
    r = concsim.explore("counter", variant="racy", strategy="dfs", stop_on_failure=False)
    cov = r.coverage
    assert cov.ntasks == 2
    assert cov.points > 0
    # load/store and store/store on the counter, each seen in both orders.
    assert ("load", "counter", "store") in cov.pairs
    assert ("store", "counter", "store") in cov.pairs
    assert cov.pairs_both_orders == len(cov.pairs)
    j = r.to_json()["coverage"]
    assert j["racing_pairs"] == len(cov.pairs)
    assert 0 < j["pct_bound"] <= 1


def test_disjoint_tasks_have_no_racing_pairs() -> None:
    r = concsim.explore("independent", strategy="random", schedules=20)
    assert r.coverage.pairs == {}


def test_until_coverage_stops_early() -> None:
    r = concsim.explore(
        "counter",
        variant="locked",
        strategy="random",
        schedules=100_000,
        until_coverage=True,
        coverage_window=50,
    )
    assert r.stopped_by == "coverage"
    assert r.executions < 1000
    assert r.coverage.pairs_both_orders == len(r.coverage.pairs)


def test_shared_prefix_counts_what_a_whole_pass_counts() -> None:
    """A DFS run's records start with the previous run's own objects; coverage skips the
    pairs among those, and counts the same new orientations per run as over copies."""
    from concsim.exploration import execute, make_target
    from concsim.strategies import DfsSearch, StepRecord

    t = make_target("small", "after-patch", {})
    search = DfsSearch()
    shared, whole = Coverage(), Coverage()
    new_shared: list[int] = []
    new_whole: list[int] = []
    for _ in range(200):
        run = search.new_run()
        ex = execute(t, run, "dfs", None, observer=run)
        new_shared.append(shared.observe(ex.steps, ex.ntasks, ex.task_choices))
        copies = [StepRecord(r.index, r.tid, r.accesses, r.choice) for r in ex.steps]
        new_whole.append(whole.observe(copies, ex.ntasks, ex.task_choices))
        if not search.finish_run(ex.steps, pruned=ex.pruned, unfinished=run.unfinished()):
            break
    assert search.shared_steps > 0
    assert new_shared == new_whole
    assert sum(new_shared) > 0
    assert shared.pairs == whole.pairs
