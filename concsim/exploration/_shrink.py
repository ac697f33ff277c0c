"""Shrinking a failing schedule: fewer preemptions, fewer steps, same failure.

Kept apart from the search and from the data, as in Hypothesis's conjecture engine: the
shrinker only sees a function that runs a candidate list of choices and reports what
happened.  Candidates are replayed non-strictly (zeros past the end, out-of-range values
wrapped), so every list of integers is a valid schedule; the choices the run actually made
become the new current schedule when it is better.

Better means, in this order: fewer preemptions, fewer steps, fewer choices, then the
smaller list (lexicographically).  A candidate is kept only if it fails the same way: the
same failure ``kind`` and the same ``invariant``.  The passes, repeated until none helps
(or the run budget is spent), each deterministic:

1. truncate (drop the tail: the zeros replayed instead keep the current task running);
2. delete chunks of 8, 4, 2, 1 choices;
3. zero each non-zero choice;
4. lower each non-zero choice (to 1, then by one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from concsim.engine import Failure


@dataclass(frozen=True)
class Attempt:
    """What running a candidate gave: its failure, the choices made, its size."""

    failure: Failure | None
    choices: list[int]
    preemptions: int
    steps: int

    def key(self) -> tuple[int, int, int, list[int]]:
        return (self.preemptions, self.steps, len(self.choices), self.choices)


@dataclass
class ShrinkResult:
    best: Attempt
    original: Attempt
    runs: int


def same_failure(a: Failure | None, b: Failure) -> bool:
    return a is not None and a.kind == b.kind and a.invariant == b.invariant


def shrink(
    run: Callable[[list[int]], Attempt], original: Attempt, *, max_runs: int = 2000
) -> ShrinkResult:
    """Shrink ``original`` (a failing attempt) with at most ``max_runs`` runs."""
    target = original.failure
    if target is None:
        raise ValueError("shrink() needs a failing schedule")
    best = original
    runs = 0
    tried: set[tuple[int, ...]] = set()

    def consider(cand: list[int]) -> bool:
        nonlocal best, runs
        t = tuple(cand)
        if t in tried or runs >= max_runs:
            return False
        tried.add(t)
        runs += 1
        got = run(cand)
        if same_failure(got.failure, target) and got.key() < best.key():
            best = got
            return True
        return False

    improved = True
    while improved and runs < max_runs:
        improved = False
        # 1. truncation: the shortest prefix that still fails, scanning from the front.
        cur = best.choices
        for cut in range(len(cur)):
            if consider(cur[:cut]):
                improved = True
                break
        # 2. chunk deletion.
        for size in (8, 4, 2, 1):
            i = 0
            while i + size <= len(best.choices):
                cur = best.choices
                if not consider(cur[:i] + cur[i + size :]):
                    i += 1
                else:
                    improved = True
        # 3. zeroing, 4. lowering.
        i = 0
        while i < len(best.choices):
            cur = best.choices
            v = cur[i]
            if v:
                for lower in dict.fromkeys((0, 1, v - 1)):
                    if lower < v and consider([*cur[:i], lower, *cur[i + 1 :]]):
                        improved = True
                        break
            i += 1
    return ShrinkResult(best, original, runs)
