"""The indexed race computation of DFS (per object: last writer, readers since) adds the
same backtrack points as the pairwise scan it replaced, and sharing each run's replayed
prefix with the previous run (its records and its race analysis) changes nothing (issue
16: DFS speed).

The reference below is the quadratic scan over every run recorded whole: every earlier
step, the dependency relation tested pair by pair.  Both searches run side by side on the
same worlds; every execution must be the same schedule, so the trees they explore are the
same.
"""

from __future__ import annotations

import pytest

from concsim.exploration import Target, execute, make_target
from concsim.strategies import DfsSearch, Replay, StepRecord, dependent
from concsim.strategies._steps import ALL
from tests.explore.dpor_programs import build, generate


class PairwiseSearch(DfsSearch):
    """DFS with the pairwise race scan (the reference): every run recorded and analysed
    whole, no prefix shared with the previous run."""

    def __init__(self, *, reduction: bool = True, preemption_bound: int | None = None) -> None:
        super().__init__(reduction=reduction, preemption_bound=preemption_bound)
        self.share_prefix = False

    def _add_backtracks(
        self, steps: list[StepRecord], pending: tuple[int, ...] = (), shared: int = 0
    ) -> None:
        assert shared == 0
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


def _schedules(t: Target, search: DfsSearch, limit: int) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
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
    search = DfsSearch()
    new = _schedules(t, search, limit)
    reference = PairwiseSearch()
    ref = _schedules(t, reference, limit)
    assert len(new) > 20
    assert new == ref
    assert search.shared_steps > 0  # the prefixes were shared (and not in the reference)
    assert reference.shared_steps == 0


def test_shared_records_are_what_a_fresh_recording_gives() -> None:
    """Every DFS run's records and trace, the shared prefix included, equal those of the
    same schedule replayed with a fresh observer (so reusing them is what recording them
    would give)."""
    t = make_target("small", "after-patch", {})
    search = DfsSearch()
    reused = 0
    for _ in range(150):
        run = search.new_run()
        ex = execute(t, run, "dfs", None, observer=run)
        reused += run.reused
        fresh = execute(t, Replay(list(ex.result.choices), strict=True), "replay", None)
        assert fresh.steps == ex.steps
        assert fresh.result.trace == ex.result.trace
        assert fresh.result.trace_sha256 == ex.result.trace_sha256
        if not search.finish_run(ex.steps, pruned=ex.pruned, unfinished=run.unfinished()):
            break
    assert reused > 0
    assert search.shared_steps == reused


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
