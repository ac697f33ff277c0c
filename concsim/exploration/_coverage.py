"""Coverage of an exploration: how much of the interleaving space the runs have seen.

Two measures, both cheap and both deterministic:

* the PCT bound.  With ``n`` tasks and ``k`` scheduling points (task choices per run, the
  most seen), one PCT run finds a given depth-``d`` bug with probability at least
  ``1 / (n * k**(d-1))`` (Burckhardt et al. 2010), so ``runs`` runs find it with probability
  at least ``1 - (1 - 1/(n*k**(d-1)))**runs``.  The figure is the guarantee PCT would give
  for this many runs; it is a yardstick for other strategies, not a guarantee for them.
* racing pairs.  Two operations *conflict* when different tasks perform them on the same
  object and at least one writes.  A pair is keyed by ``(op, obj, op)``; it is covered when
  it has been seen in both orders (for two equal operations: with either task first).
  Chess and other tools found that bugs hide in the pairs seen in one order only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from concsim.strategies import ALL, StepRecord
from concsim.strategies._pct import DEFAULT_DEPTH

PairKey = tuple[str, str, str]


@dataclass
class Coverage:
    depth: int = DEFAULT_DEPTH
    ntasks: int = 0
    points: int = 0  # the most task choices seen in one run
    runs: int = 0
    #: (op_lo, obj, op_hi) -> orientations seen (True: op_lo first / lower task id first).
    pairs: dict[PairKey, set[bool]] = field(default_factory=dict)
    #: the last run's records (a DFS run starts with the previous run's own records)
    _last: list[StepRecord] = field(default_factory=list, init=False, repr=False, compare=False)
    # What each task did on each object after the last run (obj -> tid -> (op, read)), and
    # when each entry came in: (step, the task's entries, the entry), in step order.
    _seen: dict[str, dict[int, dict[tuple[str, bool], None]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _added: list[tuple[int, dict[tuple[str, bool], None], tuple[str, bool]]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def observe(self, steps: list[StepRecord], ntasks: int, task_choices: int) -> int:
        """Add one run; return how many new pair orientations it showed.

        The leading records that are the last run's own objects (a DFS run shares its
        replayed prefix with the previous run) are not looked at again: every pair among
        them was counted when the last run was observed, and what each task had done by
        the end of them is the last run's, less what its later steps added."""
        self.runs += 1
        self.ntasks = max(self.ntasks, ntasks)
        self.points = max(self.points, task_choices)
        new = 0
        pairs = self.pairs
        last = self._last
        shared = 0
        most = min(len(steps), len(last))
        while shared < most and steps[shared] is last[shared]:
            shared += 1
        self._last = steps
        added = self._added
        if shared:
            # obj -> tid -> (op, read) pairs that task has performed on obj so far
            seen = self._seen
            while added and added[-1][0] >= shared:
                _, accs, k = added.pop()
                del accs[k]  # (an emptied entry is as good as none)
        else:
            seen = self._seen = {}
            added.clear()
        for i in range(shared, len(steps)):
            rec = steps[i]
            if rec.accesses is ALL:
                continue
            tid = rec.tid
            for obj, op, read in rec.accesses:
                per_task = seen.get(obj)
                if per_task is None:
                    per_task = seen[obj] = {}
                for other, accs in per_task.items():
                    if other == tid:
                        continue
                    for op0, read0 in accs:
                        if read0 and read:
                            continue
                        if op0 == op:
                            key, first = (op, obj, op), other < tid
                        elif op0 < op:
                            key, first = (op0, obj, op), True
                        else:
                            key, first = (op, obj, op0), False
                        got = pairs.setdefault(key, set())
                        if first not in got:
                            got.add(first)
                            new += 1
                mine = per_task.get(tid)
                if mine is None:
                    mine = per_task[tid] = {}
                k = (op, read)
                if k not in mine:
                    mine[k] = None
                    added.append((i, mine, k))
        return new

    @property
    def pairs_both_orders(self) -> int:
        return sum(1 for v in self.pairs.values() if len(v) == 2)

    def pct_bound(self, runs: int | None = None) -> float:
        n = max(self.ntasks, 1)
        k = max(self.points, 1)
        r = self.runs if runs is None else runs
        # in logs: k ** (depth - 1) overflows a float for deep bugs in long runs
        p = math.exp(-(math.log(n) + (self.depth - 1) * math.log(k)))
        return float(1.0 - (1.0 - p) ** r)

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": self.ntasks,
            "points": self.points,
            "depth": self.depth,
            "runs": self.runs,
            "pct_bound": round(self.pct_bound(), 6),
            "racing_pairs": len(self.pairs),
            "racing_pairs_both_orders": self.pairs_both_orders,
            "one_order_only": [
                f"{a} {obj} {b}" for (a, obj, b), v in sorted(self.pairs.items()) if len(v) < 2
            ][:20],
        }
