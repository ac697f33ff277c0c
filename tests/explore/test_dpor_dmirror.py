"""Partial-order reduction is sound on the dmirror driver (lib/test_hmm.c).

The dmirror model reports every shared access to the dependency relation (its device page
table, the list of mirrors, the pages' contents, ``mm.exiting``, and what its oracles read
inside a step).  Checked differentially on ``dmirror-small``: every failure that the
unreduced search finds within one preemption is found by the reduced search too, and a
reduced search that says "complete" is clean exactly where the unreduced one is.

Before the footprints, reduced DFS said "complete, clean" on
``dmirror-update-outside-lock`` after 2,620 executions, while the unreduced search fails
D1 at its sixth execution: the callback's page-table erase and the oracle's read of the
device page table were invisible to the dependency relation.  The full matrix (the
correct variant, the mutants in the worlds that reach them, larger budgets) is
``stress/dpor_catalog.py --scenario dmirror-small``.
"""

from __future__ import annotations

import pytest

import concsim

FAILING = ["dmirror-no-read-retry", "dmirror-update-outside-lock", "dmirror-no-set-seq"]


def _dfs(
    variant: str,
    *,
    reduction: bool,
    bound: int | None = None,
    params: dict[str, object] | None = None,
) -> concsim.ExploreResult:
    return concsim.explore(
        "dmirror-small",
        variant=variant,
        params=params or {},
        strategy="dfs",
        reduction=reduction,
        preemption_bound=bound,
        schedules=3000,
        shrink_failure=False,
    )


def _sig(r: concsim.ExploreResult) -> str | None:
    f = r.first_failure
    return None if f is None else f"{f.kind}:{f.invariant}"


@pytest.mark.parametrize("variant", FAILING)
def test_reduced_dfs_finds_what_unreduced_dfs_finds(variant: str) -> None:
    full = _dfs(variant, reduction=False, bound=1)
    assert _sig(full) == "safety:D1"  # the unreduced search fails within one preemption
    reduced = _dfs(variant, reduction=True)
    assert _sig(reduced) == _sig(full)
    assert reduced.executions < 1000


def test_the_exclusive_race_is_found_both_ways() -> None:
    """dmirror-exclusive-unlock-early (D4) needs a CPU store between the folio unlock and
    the atomic mapping: a folio lock and the device-exclusive PTE in the footprints.  Two
    pages, no event: reduced DFS reaches it in about 50 runs.  (With 4 pages and a
    migration the reduced search explores the later pages' orders first and passes
    100,000 runs before it; the bounded unreduced search finds it at 6,024.)"""
    params: dict[str, object] = {
        "pages": 2,
        "readers": 0,
        "exclusives": 1,
        "cpu_writes": 1,
        "events": "",
    }
    full = _dfs("dmirror-exclusive-unlock-early", reduction=False, bound=2, params=params)
    assert _sig(full) == "safety:D4"
    reduced = _dfs("dmirror-exclusive-unlock-early", reduction=True, params=params)
    assert _sig(reduced) == "safety:D4"
    assert reduced.executions < 500


def test_the_correct_driver_is_clean_within_one_preemption() -> None:
    """(Reduced DFS to completion on it, 3,243 executions, is the README's command, which
    tests/cli/test_readme_commands.py runs.)"""
    full = _dfs("dmirror", reduction=False, bound=1)
    assert full.complete
    assert full.first_failure is None
    assert full.executions > 50  # the bounded search is not trivial
