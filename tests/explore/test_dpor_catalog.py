"""Partial-order reduction is sound on the mshv catalog (``small``).

For each catalog mutant whose bug the unreduced search reaches on ``small`` within one
preemption, in the world that reaches it (the event or parameter it needs): the bounded
unreduced search fails with the mutant's own signature, and the reduced search (no bound)
fails with the same one, early.  The correct variant in the same world does not fail that
way within the bound, so each row is a test both ways: the mutant's bug is visible, and it
is the mutant's.

The whole matrix (every variant and mutant, every world, large budgets, a bounded pass
that completes) is ``stress/dpor_catalog.py``.
"""

from __future__ import annotations

import pytest

import concsim

#: mutant -> (world, signature of its own bug): each reached within one preemption on small
CASES: dict[str, tuple[dict[str, object], str]] = {
    "no-read-retry": ({"events": "exit"}, "safety/S1/slat_write"),
    "retry-before-lock": ({"events": "exit"}, "safety/S1/slat_write"),
    "process-pfns-tail-drop": ({}, "safety/S2/mshv_region_collect_and_map"),
    "nonblock-mutex-lock": ({"events": "oom"}, "sleep-in-atomic/S6/"),
    "pinned-unpin-before-unmap": ({"destroy": 1}, "safety/S1/guest_access"),
}


def _dfs(
    variant: str,
    params: dict[str, object],
    *,
    reduction: bool,
    bound: int | None = None,
    schedules: int = 3000,
    stop: bool = False,
) -> concsim.ExploreResult:
    return concsim.explore(
        "small",
        variant=variant,
        params=params,
        strategy="dfs",
        reduction=reduction,
        preemption_bound=bound,
        schedules=schedules,
        shrink_failure=False,
        stop_on_failure=stop,
    )


@pytest.mark.parametrize("mutant", sorted(CASES))
def test_reduced_dfs_finds_what_bounded_unreduced_dfs_finds(mutant: str) -> None:
    params, sig = CASES[mutant]
    full = _dfs(mutant, params, reduction=False, bound=1)
    assert full.complete
    assert sig in full.signatures
    reduced = _dfs(mutant, params, reduction=True, schedules=1000, stop=True)
    assert list(reduced.signatures) == [sig]
    # the correct driver does not fail this way in the same world, within the bound
    correct = _dfs("after-patch", params, reduction=False, bound=1)
    assert correct.complete
    assert sig not in correct.signatures
