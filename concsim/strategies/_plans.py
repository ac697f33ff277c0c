"""Strategies own their sequence of runs (as shuttle's ``Scheduler::new_execution``).

A :class:`Planner` hands out the plan of each next run: the engine strategy that decides
its choices, the seed it stands for, and the observer the run must feed (DFS learns from
each run's steps).  Every front end asks the same planner for schedule ``i``, so "strategy
X, seed s, schedule i" is one schedule wherever it runs:

* the random walk and PCT: schedule ``i`` is the strategy seeded with ``seed + i`` (PCT's
  ``depth`` and ``k`` are fixed by the configuration, never measured along the way);
* DFS: schedule ``i`` is the search's ``(seed + i)``-th execution (the seed is where the
  sequence starts; the search itself has no randomness).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from concsim.engine import Strategy
from concsim.strategies._dfs import DfsSearch
from concsim.strategies._steps import StepObserver, StepRecord


@dataclass(frozen=True)
class RunPlan:
    """What the next run needs: its strategy, the seed it stands for, its observer."""

    #: the schedule's index in the planner's sequence (from 0)
    index: int
    strategy: Strategy
    #: the seed a report shows for this run (``None`` for DFS)
    seed: int | None
    #: an observer the run must attach and feed (the DFS run itself), else ``None``
    observer: StepObserver | None = None


class Planner(Protocol):
    """A strategy's sequence of runs."""

    #: the strategy's name as configurations and reports spell it
    name: str
    #: whether :meth:`finished` needs the run's steps (a run then attaches an observer)
    needs_steps: bool

    def next_run(self) -> RunPlan | None:
        """The plan of the next run, or ``None`` when the strategy has no more (DFS is
        complete)."""
        ...

    def finished(self, plan: RunPlan, steps: list[StepRecord], *, pruned: bool) -> None:
        """Tell the planner how the run of ``plan`` went."""
        ...


class SeededPlanner:
    """Schedule ``i`` is ``make(seed + i)``: the random walk and PCT."""

    needs_steps = False

    def __init__(self, name: str, make: Callable[[int], Strategy], seed: int) -> None:
        self.name = name
        self.make = make
        self.seed = seed
        self.index = 0

    def next_run(self) -> RunPlan:
        i = self.index
        self.index += 1
        return RunPlan(i, self.make(self.seed + i), self.seed + i)

    def finished(self, plan: RunPlan, steps: list[StepRecord], *, pruned: bool) -> None:
        pass


class DfsPlanner:
    """Schedule ``i`` is the search's ``(seed + i)``-th execution; the first ``seed`` are
    run by whoever steps the planner, and only ``seed`` is skipped in the index."""

    name = "dfs"
    needs_steps = True

    def __init__(self, search: DfsSearch, seed: int = 0) -> None:
        self.search = search
        self.seed = seed
        self.executions = 0
        self.complete = False

    def next_run(self) -> RunPlan | None:
        if self.complete:
            return None
        run = self.search.new_run()
        return RunPlan(self.executions - self.seed, run, None, observer=run)

    def finished(self, plan: RunPlan, steps: list[StepRecord], *, pruned: bool) -> None:
        self.executions += 1
        obs = plan.observer
        unfinished = obs.unfinished() if obs is not None and not pruned else ()
        if not self.search.finish_run(steps, pruned=pruned, unfinished=unfinished):
            self.complete = True
