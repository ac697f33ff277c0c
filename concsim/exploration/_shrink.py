"""Shrinking a failing schedule: fewer preemptions, fewer steps, same failure.

Kept apart from the search and from the data, as in Hypothesis's conjecture engine: the
shrinker only sees functions that run a candidate (a list of choices, or a plan by task
identity) and report what happened.  Choice lists are replayed non-strictly (zeros past the
end, out-of-range values wrapped), so every list of integers is a valid schedule; the
choices the run actually made become the new current schedule when it is better.

Better means, in this order: fewer preemptions, fewer steps, fewer choices, then the
smaller list (lexicographically).  A candidate is kept only if it fails the same way (the
same failure ``kind`` and the same ``invariant``) within the original's number of steps.
The passes, repeated until none helps (or the run budget is spent), each deterministic:

1. truncate (drop the tail: the zeros replayed instead keep the current task running);
2. delete chunks of 8, 4, 2, 1 choices;
3. zero each non-zero choice;
4. lower each non-zero choice (to 1, then by one);
5. when none of those helps: move whole segments (only when the runner can replay a plan by
   task identity, see below);
6. when that does not help either and two or more preemptions are left: try every schedule
   with a single switch, earliest first (``[0] * c + [v]``: the current task runs until
   step ``c``, then the ``v``-th other task; after that zeros, so nothing is preempted
   again), on at most half the run budget.

Passes 1-4 edit choice *indices*, and an index means "the k-th other runnable task", so one
edit changes what every later choice means.  A random walk's counterexample switches task
at most steps; those passes alone leave several preemptions in it.  Pass 5 works on what
the choices meant: the sequence of task ids that ran at each task choice, cut into
*segments* (maximal runs of one task).  As in Jalbert and Sen's trace simplification
(FSE 2010), it tries to join two segments of the same task by moving the later one up to
the earlier one, or the earlier one down to the later one, to let the task before a segment
keep running through it, and to drop a segment (its task then runs when nothing else
wants to).  Each candidate is a plan replayed by task identity
(:class:`concsim.strategies.PreferTasks`): an id that cannot run at its point keeps the
current task running, so every plan is a valid schedule.

Passes 1-5 only ever edit the schedule they were given, so they can get stuck in a local
minimum: a counterexample of a long path (a vCPU fault racing a munmap, 239 steps and four
preemptions) whose failure, under the same signature, a much shorter path also reaches (the
region's creation racing a migration, one preemption).  Pass 6 is a bounded search of the
one-switch schedules, in the spirit of iterative context bounding (Musuvathi and Qadeer,
PLDI 2007): it is what takes such a counterexample down to one preemption.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from concsim.engine import Failure


@dataclass(frozen=True)
class Attempt:
    """What running a candidate gave: its failure, the choices made, its size."""

    failure: Failure | None
    choices: list[int]
    preemptions: int
    steps: int
    #: what the choices meant, from the run's typed record (Runtime.choice_tasks and
    #: choice_envs): the id of the task each task choice ran, and each environment outcome.
    tasks: tuple[int, ...] = ()
    envs: tuple[int, ...] = ()

    def key(self) -> tuple[int, int, int, list[int]]:
        return (self.preemptions, self.steps, len(self.choices), self.choices)


@dataclass
class ShrinkResult:
    best: Attempt
    original: Attempt
    runs: int


def same_failure(a: Failure | None, b: Failure) -> bool:
    return a is not None and a.kind == b.kind and a.invariant == b.invariant


def segments(tasks: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Maximal runs ``(task, start, end)`` of one task id in a plan."""
    out: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(tasks) + 1):
        if i == len(tasks) or tasks[i] != tasks[start]:
            out.append((tasks[start], start, i))
            start = i
    return out


def segment_moves(tasks: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Pass 5's candidates for a plan, most promising first: for each segment, from the
    last, join it to the previous segment of its task (moving it up, or moving that one
    down), let the task before it run through it, or drop it."""
    segs = segments(tasks)
    for j in range(len(segs) - 1, 0, -1):
        tid, a, b = segs[j]
        prev = next((s for s in reversed(segs[:j]) if s[0] == tid), None)
        if prev is not None:
            _, pa, pb = prev
            yield tasks[:pb] + tasks[a:b] + tasks[pb:a] + tasks[b:]  # move up
            yield tasks[:pa] + tasks[pb:a] + tasks[pa:pb] + tasks[a:]  # move down
        yield tasks[:a] + (tasks[a - 1],) * (b - a) + tasks[b:]  # run through
        yield tasks[:a] + tasks[b:]  # drop


def shrink(
    run: Callable[[list[int]], Attempt],
    original: Attempt,
    *,
    max_runs: int = 2000,
    run_plan: Callable[[list[int], list[int]], Attempt] | None = None,
    same: Callable[[Failure | None, Failure], bool] | None = None,
) -> ShrinkResult:
    """Shrink ``original`` (a failing attempt) with at most ``max_runs`` runs.

    ``run(choices)`` replays a list of choice indices; ``run_plan(tasks, envs)``, when given,
    replays a plan by task identity (pass 5).  Both return the :class:`Attempt` the run made.
    ``same(candidate, original)`` says whether a candidate fails the same way (by default
    :func:`same_failure`: kind and invariant).
    """
    is_same = same or same_failure
    target = original.failure
    if target is None:
        raise ValueError("shrink() needs a failing schedule")
    best = original
    runs = 0
    tried: set[tuple[object, ...]] = set()

    def accept(got: Attempt) -> bool:
        nonlocal best
        # Never longer than the original: fewer preemptions bought with more steps than the
        # counterexample had would make it harder to read, not easier.
        if is_same(got.failure, target) and got.key() < best.key() and got.steps <= original.steps:
            best = got
            return True
        return False

    def consider(cand: list[int]) -> bool:
        nonlocal runs
        t = tuple(cand)
        if t in tried or runs >= max_runs:
            return False
        tried.add(t)
        runs += 1
        return accept(run(cand))

    def consider_plan(tasks: tuple[int, ...], envs: tuple[int, ...]) -> bool:
        nonlocal runs
        assert run_plan is not None
        t = ("plan", tasks, envs)
        if t in tried or runs >= max_runs:
            return False
        tried.add(t)
        runs += 1
        return accept(run_plan(list(tasks), list(envs)))

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
        # 5. segment moves, once the index passes are stuck: the first that helps is taken,
        # and the index passes then work on the plan it made.
        if not improved and run_plan is not None and best.tasks:
            improved = any(consider_plan(c, best.envs) for c in segment_moves(best.tasks))
        # 6. one-switch schedules, once everything else is stuck with two or more
        # preemptions left.
        if not improved and best.preemptions >= 2:
            cap = runs + max_runs // 2
            improved = any(consider(c) for c in one_switch(best) if runs < cap)
    return ShrinkResult(best, original, runs)


def one_switch(best: Attempt) -> Iterator[list[int]]:
    """Pass 6's candidates: the schedules that switch task once, at choice ``c`` (earliest
    first) to the ``v``-th other task, as many ``v`` as ``best`` ran tasks."""
    width = max(2, len(set(best.tasks)) if best.tasks else 1 + max(best.choices, default=1))
    for c in range(len(best.choices)):
        for v in range(1, width):
            yield [0] * c + [v]
