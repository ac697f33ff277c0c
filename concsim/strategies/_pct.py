"""PCT: probabilistic concurrency testing with priority change points.

Burckhardt, Kothari, Musuvathi, Nagarakatte, "A Randomized Scheduler with Probabilistic
Guarantees of Finding Bugs", ASPLOS 2010.  The scheduler is fully deterministic given its
random draws:

1. every task gets a distinct random initial priority among ``d, d+1, ..., d+n-1``
   (a random permutation, by task id);
2. ``d - 1`` change points are drawn uniformly among the first ``k`` scheduling points;
3. at every choice the runnable task with the highest priority runs; when the ``i``-th
   change point drawn is reached, the priority of the task that was running drops to ``d - i``
   to ``i`` (below every initial priority).

A bug of depth ``d`` (``d`` ordering constraints) in a program with ``n`` tasks and ``k``
points is then found with probability at least ``1 / (n * k**(d-1))`` per run.

Here a scheduling point is a *choice*: a point where at least two tasks can run (a point
with a single candidate orders nothing), so ``k`` is the number of task choices a run makes,
and the change points are numbered by the choices seen.  The explorer estimates ``k`` from
the runs it has made.  Environment choices are drawn from the same generator, the
non-ordinary outcomes each with probability ``env_p`` as in the random walk.

Fairness.  PCT is unfair on purpose: the highest-priority task runs until it blocks.  A
task that spins waiting for another (a correct busy-wait, a retry loop waiting for an
invalidation to end) never blocks, so PCT would starve the task it waits for and the run
would end as a "suspected livelock".  As Coyote and shuttle do, after a bounded number of
choices without progress for the others (``fair_after`` consecutive choices that ran the
same task while another could have run; by default ``10 * k``, past every change point a
depth-``d`` bug of ``k`` points needs) the rest of the run is scheduled by a fair policy, a
seeded uniform random walk.  A spin-wait that would finish then finishes; a task that
retries forever while the others are done or blocked still reaches the step limit.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concsim.engine import Runtime


#: The bug depth every caller uses unless told otherwise (``run``, ``stress``, ``check``,
#: ``explore``).  Depth 3 (two change points) rather than 2: on the ``default`` scenario's
#: mutant catalog the sum of the median schedules to the first failure halves (README,
#: "Benchmarks"), mostly because mutex-init-after-insert, whose racing invalidation must
#: start inside a window early in creation, gets two chances per run to open it.
DEFAULT_DEPTH = 3
#: The deepest bug PCT is asked to look for (a deeper one needs more ordering constraints
#: than any run of the shipped scenarios has change points for).
MAX_DEPTH = 64


class PCT:
    name = "pct"

    def __init__(
        self,
        seed: int,
        *,
        depth: int = DEFAULT_DEPTH,
        k: int = 50,
        env_p: float = 0.1,
        fair_after: int | None = None,
    ) -> None:
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"PCT depth must be between 1 and {MAX_DEPTH}")
        if k < 1:
            raise ValueError("PCT needs k >= 1 expected scheduling points")
        self.seed = seed
        self.depth = depth
        self.k = k
        self.env_p = env_p
        self._rng = random.Random(seed)
        # Change point number (1-based choice count) -> the priority it gives: the i-th
        # point drawn gives priority i (1-based), as in the paper's algorithm.
        points = self._rng.sample(range(1, k + 1), min(depth - 1, k))
        self.change_points: dict[int, int] = {c: i + 1 for i, c in enumerate(points)}
        self._priority: list[int] = []
        self._choices = 0
        self.fair_after = fair_after if fair_after is not None else 10 * k
        if self.fair_after < 1:
            raise ValueError("PCT's fair_after must be at least 1")
        #: the choice at which the run turned fair (0: it did not)
        self.fair_from = 0
        self._streak = 0
        self._last = -1

    def _init_priorities(self, ntasks: int) -> None:
        prio = list(range(self.depth, self.depth + ntasks))
        self._rng.shuffle(prio)
        self._priority = prio

    def pick_task(self, rt: Runtime, n: int) -> int:
        if len(self._priority) < len(rt.tasks):
            self._init_priorities(len(rt.tasks))
        self._choices += 1
        if self.fair_from:
            return int(self._rng.random() * n)
        drop = self.change_points.get(self._choices)
        cur = rt.current
        if drop is not None and cur is not None:
            self._priority[cur.id] = drop
        prio = self._priority
        best = 0
        best_p = -1
        best_id = -1
        for i, t in enumerate(rt.candidates()):
            p = prio[t.id]
            if p > best_p:
                best, best_p, best_id = i, p, t.id
        # Choices that ran the same task while others waited: no progress for them.
        self._streak = self._streak + 1 if best_id == self._last else 1
        self._last = best_id
        if self._streak > self.fair_after:
            self.fair_from = self._choices
            return int(self._rng.random() * n)
        return best

    def pick_env(self, rt: Runtime, label: str, n: int) -> int:
        r = self._rng.random
        if r() >= self.env_p:
            return 0
        return 1 + int(r() * (n - 1))
