"""Partial-order reduction is sound: tested differentially on generated programs.

Each program (see ``dpor_programs``) is explored exhaustively with and without reduction;
the sets of failure signatures must be equal and reduction must never run more executions.
The slow run (thousands of programs) is ``python -m tests.explore.dpor_programs``.
"""

from __future__ import annotations

import pytest

from tests.explore.dpor_programs import Program, build, compare, dfs, generate

SEEDS = range(0, 200)
LIMIT = 800  # full-DFS executions; a bigger program is skipped


@pytest.mark.parametrize("chunk", range(8))
def test_reduction_finds_the_same_failures_as_full_search(chunk: int) -> None:
    compared = failing = 0
    for seed in SEEDS[chunk::8]:
        c = compare(seed, limit=LIMIT)
        if c is None:
            continue
        compared += 1
        failing += bool(c.full.signatures)
        assert c.reduced.complete
        assert c.reduced.signatures == c.full.signatures, c.program.describe()
        assert c.reduced.executions <= c.full.executions, c.program.describe()
    assert compared >= 8  # most programs are small enough to compare
    assert failing >= 4  # and many of them can fail: the comparison means something


def test_generated_programs_are_deterministic_and_varied() -> None:
    assert generate(7) == generate(7)
    assert generate(7) != generate(8)
    kinds = {op[0] for s in range(60) for ops in generate(s).tasks for op in ops}
    assert {"read", "write", "cs", "wait_var", "write_wake", "complete"} <= kinds
    assert any(generate(s).spawned for s in range(60))


def test_a_missed_race_is_caught_by_the_comparison() -> None:
    """The check can fail: a reduction that ignores what an assertion point reads inside a
    step (here: every access reported with rt.access is dropped) misses a failure."""
    from concsim.engine import Runtime

    # t1 asserts v0 != 0 from inside its first step; t0 writes v0 = 1.  Only the order
    # "t1 before t0's write" fails, and it is not the first one DFS runs.
    prog = Program(-1, 1, ((("write", 0, 0, 1),), (("assert_var", "A1", 0, 0),)), False, (0, 9))
    b = build(prog)

    def blind(rt: Runtime) -> None:
        b(rt)
        rt.access = lambda obj, write=True: None  # type: ignore[method-assign]

    full = dfs(b, reduction=False)
    assert full.signatures == {"assertion:A1"}
    assert dfs(b, reduction=True).signatures == {"assertion:A1"}
    assert dfs(blind, reduction=True).signatures == frozenset()
