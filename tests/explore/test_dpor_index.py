"""The indexed race computation of DFS (per object: last writer, readers since) adds the
same backtrack points as the pairwise scan it replaced (issue 16: DFS speed).

The reference below is the quadratic scan: every earlier step, the dependency relation
tested pair by pair.  Both searches run side by side on the same worlds; every execution
must be the same schedule, so the trees they explore are the same.
"""

from __future__ import annotations

import pytest

from concsim.exploration import Target, execute, make_target
from concsim.strategies import DfsSearch, StepRecord, dependent
from concsim.strategies._steps import ALL
from tests.explore.dpor_programs import build, generate


class PairwiseSearch(DfsSearch):
    """DFS with the pairwise race scan (the reference)."""

    def _add_backtracks(self, steps: list[StepRecord], pending: tuple[int, ...] = ()) -> None:
        m = len(steps)
        hb = [0] * (m + 1)
        for j in range(m + len(pending)):
            if j < m:
                sj, seq = steps[j], steps
            else:
                sj = StepRecord(m, pending[j - m], ALL, -1)
                seq = [*steps, sj]
            direct = 0
            racing: list[int] = []
            for i in range(min(j, m)):
                si = steps[i]
                if si.tid == sj.tid:
                    direct |= 1 << i
                elif dependent(si.accesses, sj.accesses):
                    direct |= 1 << i
                    racing.append(i)
            covered = 0
            for i in range(min(j, m)):
                if (direct >> i) & 1:
                    covered |= hb[i]
            hb[min(j, m)] = direct | covered
            for i in racing:
                if not (covered >> i) & 1:
                    self._reverse(seq, hb, i, min(j, m))


def _schedules(t: Target, search: DfsSearch, limit: int) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    while len(out) < limit:
        run = search.new_run()
        ex = execute(t, run, "dfs", None, observer=run)
        out.append((*ex.tasks, -1, *ex.envs, ex.pruned))
        if not search.finish_run(ex.steps, pruned=ex.pruned, unfinished=run.unfinished()):
            break
    return out


@pytest.mark.parametrize(
    ("scenario", "variant", "params", "limit"),
    [
        ("small", "after-patch", {}, 300),
        ("small", "after-patch", {"destroy": 1}, 300),
        ("dmirror-small", "dmirror-update-outside-lock", {}, 300),
        ("abba", "abba", {"rounds": 2}, 10_000),
    ],
)
def test_indexed_races_explore_the_same_tree(
    scenario: str, variant: str, params: dict[str, int], limit: int
) -> None:
    t = make_target(scenario, variant, params)
    new = _schedules(t, DfsSearch(), limit)
    ref = _schedules(t, PairwiseSearch(), limit)
    assert len(new) > 20
    assert new == ref


def test_indexed_races_on_generated_programs() -> None:
    from tests.explore.dpor_programs import dfs

    compared = 0
    for seed in range(40):
        b = build(generate(seed))
        full = dfs(b, reduction=False, limit=800)
        if not full.complete:
            continue
        compared += 1
        new = dfs(b, reduction=True, limit=800)
        # The reference, through the same driver loop.
        import tests.explore.dpor_programs as dp

        real = dp.DfsSearch
        dp.DfsSearch = PairwiseSearch  # type: ignore[misc]
        try:
            ref = dfs(b, reduction=True, limit=800)
        finally:
            dp.DfsSearch = real  # type: ignore[misc]
        assert (new.signatures, new.executions) == (ref.signatures, ref.executions), seed
    assert compared >= 10
