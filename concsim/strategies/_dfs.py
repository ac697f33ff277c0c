"""Bounded exhaustive search: every schedule (up to a preemption bound), with reduction.

Stateless model checking, as in CHESS, loom and shuttle: the search never saves a state.
It keeps the tree of choices on the current path (:class:`DfsSearch.stack`, one node per
choice of the last run) and runs the model again from scratch for every execution, with a
strategy (:class:`DfsRun`) that replays the path's choices as a prefix and extends it with
default choices (keep the current task running, the ordinary environment outcome).  After
each run the deepest node that still has an option to try takes it; the rest of the path
is dropped.  When no node has one, the (bounded) space is exhausted: ``complete``.

Preemptions
-----------

A task choice ``k > 0`` where the current task could have continued is a preemption; when
it blocked or finished, any choice is free (the candidate order is the engine's: see its
module doc).  With a bound ``K`` no path makes more than ``K`` preemptions (Musuvathi and
Qadeer, "Iterative context bounding", PLDI 2007).

Reduction
---------

Without reduction every option of every choice within the bound is explored.  With it
(the default), the search is source-DPOR with sleep sets (Abdulla, Aronis, Jonsson,
Sagonas, "Optimal dynamic partial order reduction", POPL 2014, Algorithm 1), over the
dependency relation of :mod:`concsim.strategies._steps` (same object, not both reads):

* a task choice starts with one option (the default) in its backtrack set;
* after each run, every *race* ``e ⋖ e'`` of the run (dependent steps of different tasks,
  ``e`` before ``e'`` with no happens-before chain between them) is examined: with ``v`` the
  steps after ``e`` that do not happen after it, followed by ``e'``, if no task that can
  start ``v`` (its *initials*) is in the backtrack set of the choice before ``e``, one that
  is enabled there is added (``e'``'s own task first).  A race whose initials are all
  disabled at that choice (the later task was blocked on what ``e`` released) cannot be
  reversed and adds nothing;
* sleep sets: once an option was explored at a choice, the later options' subtrees do not
  start with its step again until something dependent on it ran.  A run in which every
  runnable task is asleep is cut short ("pruned"): it is equivalent to one already run.

Environment choices are branched exhaustively (all outcomes, no reduction), and a step that
makes one is dependent on every other step.

With a preemption bound, POR and bounding interact: reversing a race may need one more
preemption than the bound allows, although an equivalent schedule within the bound exists.
Following Coons, Musuvathi and McKinley ("Bounded partial-order reduction", OOPSLA 2013),
the backtrack point is then also added where the racing task's current run of steps began
(switching there costs no extra preemption).  ``complete`` under a bound means the reduced
bounded tree was exhausted; the unbounded search is exact (every Mazurkiewicz trace of the
dependency relation is run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from concsim.engine import RUNNABLE
from concsim.strategies._steps import ALL, Access, StepObserver, StepRecord, dependent

if TYPE_CHECKING:
    from concsim.engine import Runtime

TASK = 0
ENV = 1


class Pruned(Exception):
    """Raised by :class:`DfsRun` to cut a run short (every runnable task is asleep, or
    none may run within the preemption bound).  The explorer catches it."""


class Diverged(RuntimeError):
    """The model made different choices for the same prefix: it is not deterministic."""


@dataclass(slots=True)
class Node:
    """One choice on the current path."""

    kind: int
    n: int
    #: TASK: candidate task ids in choice order (``ids[0]`` is the current task unless
    #: ``free``).
    ids: tuple[int, ...]
    #: TASK: the current task could not continue, so no option is a preemption.
    free: bool
    #: preemptions made on the path before this choice.
    preemptions: int
    #: sleep set on entry: task id -> the accesses of the step it would take.
    sleep: dict[int, tuple[Access, ...]]
    chosen: int
    backtrack: list[int]
    #: TASK: explored task id -> accesses of its step.  ENV: explored outcomes as keys.
    done: dict[int, tuple[Access, ...]] = field(default_factory=dict)
    #: accesses of the step taken with ``chosen`` (TASK).
    step_access: tuple[Access, ...] = ALL

    def cost(self, option: int) -> int:
        return 0 if self.kind == ENV or self.free or option == 0 else 1


class DfsSearch:
    """The search tree and its bookkeeping; one :class:`DfsRun` per execution."""

    def __init__(self, *, reduction: bool = True, preemption_bound: int | None = None) -> None:
        if preemption_bound is not None and preemption_bound < 0:
            raise ValueError("the preemption bound must be >= 0")
        self.reduction = reduction
        self.bound = preemption_bound
        self.stack: list[Node] = []
        self.executions = 0
        self.pruned = 0
        self.complete = False

    def new_run(self) -> DfsRun:
        return DfsRun(self, len(self.stack))

    def allowed(self, node: Node, option: int) -> bool:
        return self.bound is None or node.preemptions + node.cost(option) <= self.bound

    # ------------------------------------------------------------------ after a run

    def finish_run(self, steps: list[StepRecord], *, pruned: bool) -> bool:
        """Account for a finished run; move to the next path.  False when exhausted."""
        self.executions += 1
        if pruned:
            self.pruned += 1
        stack = self.stack
        for rec in steps:
            if 0 <= rec.choice < len(stack):
                stack[rec.choice].step_access = rec.accesses
        if self.reduction:
            self._add_backtracks(steps)
        return self._advance()

    def _advance(self) -> bool:
        stack = self.stack
        while stack:
            node = stack[-1]
            if node.kind == TASK:
                node.done[node.ids[node.chosen]] = node.step_access
            else:
                node.done[node.chosen] = ALL
            for opt in node.backtrack:
                key = node.ids[opt] if node.kind == TASK else opt
                if key in node.done or key in node.sleep:
                    continue
                node.chosen = opt
                node.step_access = ALL
                return True
            stack.pop()
        self.complete = True
        return False

    def _add_backtracks(self, steps: list[StepRecord]) -> None:
        """Source-DPOR: for every race of the run, make sure it is reversed somewhere."""
        m = len(steps)
        hb = [0] * m  # hb[j]: bit i set iff step i happens before step j
        for j in range(m):
            sj = steps[j]
            direct = 0
            racing: list[int] = []
            for i in range(j):
                si = steps[i]
                if si.tid == sj.tid:
                    direct |= 1 << i
                elif dependent(si.accesses, sj.accesses):
                    direct |= 1 << i
                    racing.append(i)
            covered = 0
            bits = direct
            while bits:
                low = bits & -bits
                covered |= hb[low.bit_length() - 1]
                bits ^= low
            hb[j] = direct | covered
            for i in racing:
                if not (covered >> i) & 1:
                    self._reverse(steps, hb, i, j)

    def _reverse(self, steps: list[StepRecord], hb: list[int], i: int, j: int) -> None:
        c = steps[i].choice
        if c < 0:
            return  # only one task could run before step i: nothing to reorder there
        node = self.stack[c]
        vmask = 1 << j
        for k in range(i + 1, j):
            if not (hb[k] >> i) & 1:
                vmask |= 1 << k
        initials: list[int] = []
        bits = vmask
        while bits:
            low = bits & -bits
            k = low.bit_length() - 1
            bits ^= low
            if hb[k] & vmask == 0 and steps[k].tid not in initials:
                initials.append(steps[k].tid)
        ids = node.ids
        if any(ids[opt] in initials for opt in node.backtrack):
            return
        want = steps[j].tid
        order = ([want] if want in initials else []) + sorted(t for t in initials if t != want)
        enabled = [t for t in order if t in ids]
        if not enabled:
            return  # not reversible: the later steps' tasks were blocked here
        for tid in enabled:
            opt = ids.index(tid)
            if self.allowed(node, opt):
                node.backtrack.append(opt)
                return
        # Over the bound here: add it where the racing task's run began (BPOR).
        self._conservative(c, steps[i].tid, enabled[0])

    def _conservative(self, c: int, p: int, q: int) -> None:
        stack = self.stack
        while c >= 0:
            node = stack[c]
            if node.kind == TASK and (node.free or node.chosen != 0):
                if node.ids[node.chosen] == p and q in node.ids:
                    opt = node.ids.index(q)
                    if opt not in node.backtrack and self.allowed(node, opt):
                        node.backtrack.append(opt)
                return
            c -= 1


class DfsRun(StepObserver):
    """The strategy of one execution: replay the path, then extend it with defaults."""

    name = "dfs"

    def __init__(self, search: DfsSearch, prefix_len: int) -> None:
        super().__init__()
        self.search = search
        self.prefix_len = prefix_len
        self.preemptions = 0
        self.tracking = prefix_len == 0
        self.sleep: dict[int, tuple[Access, ...]] = {}

    def on_step(self, rec: StepRecord) -> None:
        if self.tracking and self.sleep:
            acc = rec.accesses
            self.sleep = {
                t: a for t, a in self.sleep.items() if t != rec.tid and not dependent(a, acc)
            }

    def _replayed(self, i: int, kind: int, n: int) -> Node:
        node = self.search.stack[i]
        if node.kind != kind or node.n != n:
            raise Diverged(
                f"choice #{i} differs from the previous run of the same prefix: the model "
                "is not deterministic (a wall clock, hash order or set iteration?)"
            )
        self.preemptions = node.preemptions + node.cost(node.chosen)
        if i == self.prefix_len - 1:
            self.tracking = True
            self.sleep = dict(node.sleep)
            if kind == TASK and self.search.reduction:
                self.sleep.update(node.done)
        return node

    def pick_task(self, rt: Runtime, n: int) -> int:
        self.sync()
        self.note_choice(rt)
        i = len(rt.choices)
        if i < self.prefix_len:
            return self._replayed(i, TASK, n).chosen
        cur = rt.current
        free = cur is None or cur.state != RUNNABLE
        ids = tuple(t.id for t in rt.candidates())
        search = self.search
        sleep = dict(self.sleep) if search.reduction else {}
        node = Node(TASK, n, ids, free, self.preemptions, sleep, -1, [])
        options = [o for o in range(n) if ids[o] not in sleep and search.allowed(node, o)]
        if not options:
            raise Pruned
        node.chosen = options[0]
        node.backtrack = [options[0]] if search.reduction else options
        search.stack.append(node)
        self.preemptions += node.cost(node.chosen)
        return node.chosen

    def pick_env(self, rt: Runtime, label: str, n: int) -> int:
        i = len(rt.choices)
        if i < self.prefix_len:
            return self._replayed(i, ENV, n).chosen
        node = Node(ENV, n, (), True, self.preemptions, dict(self.sleep), 0, list(range(n)))
        self.search.stack.append(node)
        return 0
