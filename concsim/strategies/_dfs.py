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

* a failure ends the run: every task that was still runnable then has a next step that
  never ran, and a different order might have let it fail first (or fail otherwise).  Each
  such pending step is treated as conflicting with everything, so the races between it and
  the steps before the failure are reversed too, and the set of failures found with
  reduction is the set found without.

Environment choices (``rt.choose``) are branched exhaustively at every place they occur
(all outcomes, no reduction); a step's footprint is what it accessed, and the sleep sets
use the union of its footprints over every outcome explored.

With a preemption bound the search does not reduce: reversing a race may need a preemption
the bound forbids, and neither source-DPOR's backtrack points (nor Coons, Musuvathi and
McKinley's conservative ones, "Bounded partial-order reduction", OOPSLA 2013) nor sleep
sets then guarantee that an equivalent schedule within the bound is run; the differential
test of generated programs found such misses.  So ``complete`` means: every schedule with
at most ``K`` preemptions was run (bounded), or one schedule of every Mazurkiewicz trace of
the dependency relation (unbounded, with reduction), or every schedule (unbounded, without).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from concsim.engine import RUNNABLE
from concsim.strategies._steps import ALL, Access, StepObserver, StepRecord, dependent

if TYPE_CHECKING:
    from concsim.engine import Runtime, TraceEntry

TASK = 0
ENV = 1

# What an entry of the race index's change log took back (see DfsSearch._add_backtracks).
_TASK, _READ, _WRITE, _READERS, _ALL = range(5)


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
    #: accesses of the step taken with ``chosen`` (TASK): the union over every run that
    #: took it (they differ when the step makes environment choices), None before the first.
    step_access: tuple[Access, ...] | None = None
    #: the steps of the run begun before this choice (``rt.step`` when it was made): the
    #: records of the run that a later run replaying the path up to here shares.
    at_step: int = 0
    #: the trace entries before this choice, or -1 when the run that made it was untraced.
    at_trace: int = -1

    def cost(self, option: int) -> int:
        return 0 if self.kind == ENV or self.free or option == 0 else 1


def union(a: tuple[Access, ...] | None, b: tuple[Access, ...]) -> tuple[Access, ...]:
    """The footprint of a step that did ``a`` in some runs and ``b`` in others."""
    if a is None or a == b:
        return b
    if a is ALL or b is ALL:
        return ALL
    acc: dict[str, tuple[str, bool]] = {obj: (op, read) for obj, op, read in a}
    for obj, op, read in b:
        old = acc.get(obj)
        if old is None or (old[1] and not read):
            acc[obj] = (op, read)
    return tuple((obj, op, read) for obj, (op, read) in acc.items())


class DfsSearch:
    """The search tree and its bookkeeping; one :class:`DfsRun` per execution."""

    def __init__(self, *, reduction: bool = True, preemption_bound: int | None = None) -> None:
        if preemption_bound is not None and preemption_bound < 0:
            raise ValueError("the preemption bound must be >= 0")
        # Reduction only without a bound: with one, the schedule that reverses a race may
        # need a preemption the bound forbids, and neither source-DPOR's backtrack points
        # (even with BPOR's conservative ones) nor sleep sets then guarantee that an
        # equivalent schedule within the bound is run; differential testing of generated
        # programs found such misses.  So a bounded search explores every option within
        # the bound, and its "complete" means exactly that.
        self.reduction = reduction and preemption_bound is None
        self.bound = preemption_bound
        self.sleep_sets = self.reduction
        self.stack: list[Node] = []
        self.executions = 0
        self.pruned = 0
        self.complete = False
        #: reuse the previous run's records and race analysis for the steps a run shares
        #: with it (see :class:`DfsRun`); off, every run is recorded and analysed whole.
        self.share_prefix = True
        #: steps the runs shared with the previous one, over the search (a figure for
        #: benchmarks: the fraction of the work that is replay of a known prefix).
        self.shared_steps = 0
        # The last run: its records, happens-before bit sets, and the DfsRun that made it.
        self._last_steps: list[StepRecord] = []
        self._last_trace: list[TraceEntry] | None = None  # None: the last run was untraced
        self._last_hb: list[int] = []
        # The race index after the last run (per task its last step, per object its last
        # writer and readers since, the last step that touched everything) and the log of
        # its changes, to go back to the end of a shared prefix.
        self._index: tuple[dict[int, int], dict[str, int], dict[str, list[int]]] = ({}, {}, {})
        self._index_all = -1
        self._index_log: list[tuple[int, int, Any, Any]] = []
        self._run: DfsRun | None = None

    def new_run(self) -> DfsRun:
        run = DfsRun(self, len(self.stack))
        self._run = run
        return run

    def open_points(self) -> int:
        """Backtrack options still to explore on the current path: the size of what is
        left of the tree when a budget stops the search (0 once it is complete).  Each one
        is the root of a subtree not yet run, so this is a lower bound on the runs left."""
        n = 0
        for node in self.stack:
            for opt in node.backtrack:
                if opt == node.chosen:
                    continue
                if node.kind == TASK:
                    tid = node.ids[opt]
                    if tid in node.done or tid in node.sleep:
                        continue
                elif opt in node.done:
                    continue
                n += 1
        return n

    def allowed(self, node: Node, option: int) -> bool:
        return self.bound is None or node.preemptions + node.cost(option) <= self.bound

    # ------------------------------------------------------------------ after a run

    def finish_run(
        self, steps: list[StepRecord], *, pruned: bool, unfinished: tuple[int, ...] = ()
    ) -> bool:
        """Account for a finished run; move to the next path.  False when exhausted.

        ``unfinished``: the tasks still runnable when a failure stopped the run.  Each one's
        next step is added as a step that conflicts with everything, so the races between
        the failing step (and its concurrent steps) and what those tasks would have done
        next are reversed too: otherwise a failure that one interleaving reaches first
        could hide another failure that a task it cut short reaches in an equivalent one.
        """
        self.executions += 1
        if pruned:
            self.pruned += 1
        shared = self._take_run(steps)
        self.shared_steps += shared
        stack = self.stack
        depth = len(stack)
        for rec in steps[shared:]:  # the shared steps' unions are in already
            c = rec.choice
            if 0 <= c < depth:
                node = stack[c]
                node.step_access = union(node.step_access, rec.accesses)
        if self.reduction:
            self._add_backtracks(steps, () if pruned else unfinished, shared)
        self._last_steps = steps
        return self._advance()

    def _take_run(self, steps: list[StepRecord]) -> int:
        """Keep the finished run's trace for the next run; return how many leading steps of
        ``steps`` are the previous run's own records (its :class:`DfsRun` reused them), 0
        for steps recorded otherwise."""
        run = self._run
        self._run = None
        rt = run.rt if run is not None else None
        self._last_trace = rt.trace if rt is not None and rt.tracing else None
        k = run.reused if run is not None else 0
        last = self._last_steps
        if k == 0 or k > len(steps) or k > len(last) or steps[k - 1] is not last[k - 1]:
            return 0
        return k

    def _advance(self) -> bool:
        stack = self.stack
        while stack:
            node = stack[-1]
            if node.kind == TASK:
                node.done[node.ids[node.chosen]] = (
                    ALL if node.step_access is None else node.step_access
                )
            else:
                node.done[node.chosen] = ALL
            for opt in node.backtrack:
                if node.kind == TASK:
                    tid = node.ids[opt]
                    if tid in node.done or tid in node.sleep:
                        continue
                elif opt in node.done:
                    continue  # (an outcome is never asleep: the sleep set holds task ids)
                node.chosen = opt
                node.step_access = None
                return True
            stack.pop()
        self.complete = True
        return False

    def _add_backtracks(
        self, steps: list[StepRecord], pending: tuple[int, ...] = (), shared: int = 0
    ) -> None:
        """Source-DPOR: for every race of the run, make sure it is reversed somewhere.

        ``pending``: tasks whose next step a failure cut off; each is examined as a step
        after the last one that conflicts with everything (one at a time: they are not
        steps of the run, so they do not order each other).

        ``shared``: the first ``shared`` steps are the previous run's (the same records, so
        the same ``hb``, kept from its analysis).  Their races were examined then, against
        the same tree nodes (a shared step's choice is on the kept part of the path), and
        examining one again adds nothing: after the first time the node's backtrack set
        holds one of the race's initials or none of them is enabled there, and backtrack
        sets only grow.  So races are looked for from step ``shared`` on, starting from the
        index as it was after the shared steps: the last run's, with the changes its later
        steps made taken back from a log.  The backtrack sets are the same as a whole
        analysis's, and the work is in proportion to the steps not shared.

        Happens-before is built step by step as a bit set per step (``hb[j]``: bit ``i``
        set iff step ``i`` happens before step ``j``), from an index of the run by object
        rather than a scan of every earlier step: per object, its last writer and the
        readers since, and per task, its last step.  An earlier step dependent with step
        ``j`` that is not one of those happens before one of them (two writers of an
        object, or a reader and the next writer, are dependent themselves), so it is
        neither a direct predecessor that adds to ``hb[j]`` nor a race: the races of ``j``
        are the indexed steps of other tasks not covered by the others' ``hb``.  The cost
        is linear in the accesses of the run (plus the bit-set unions), not quadratic in
        its steps; the races and their order (ascending) are the same as the pairwise
        scan's.
        """
        m = len(steps)
        if shared:
            # The index after the shared steps: the last run's, less what its later steps
            # did (taken back from the log, latest first).
            last_of_task, last_write, readers = self._index
            last_all = self._index_all
            log = self._index_log
            while log and log[-1][0] >= shared:
                _j, what, key, old = log.pop()
                if what == _TASK:
                    if old is None:
                        del last_of_task[key]
                    else:
                        last_of_task[key] = old
                elif what == _READ:
                    if old is None:
                        del readers[key]
                    else:
                        readers[key].pop()
                elif what == _WRITE:
                    if old is None:
                        del last_write[key]
                    else:
                        last_write[key] = old
                elif what == _READERS:
                    readers[key] = old
                else:  # _ALL
                    last_write, readers, last_all = old
            hb = self._last_hb[:shared]
            hb.extend([0] * (m + 1 - shared))
        else:
            last_of_task = {}
            last_write = {}
            readers = {}
            last_all = -1  # the last step that touched everything (ALL), if any
            log = []
            hb = [0] * (m + 1)
        # Every change to the index is logged (step, what, key, old value), so that the
        # next run, which shares a prefix with this one, can take back the rest.
        add = log.append
        for j in range(shared, m):
            sj = steps[j]
            tid = sj.tid
            # hb[j] from the direct predecessors found in the index (what _races does,
            # written out: this loop runs for every step not shared)
            direct = covered = 0
            p = last_of_task.get(tid)
            if p is not None:
                direct = 1 << p
                covered = hb[p]
            acc = sj.accesses
            if acc is ALL:
                add((j, _ALL, "", (last_write, readers, last_all)))
                last_write = {}
                readers = {}
                last_all = j
                last_of_task[tid] = j
                add((j, _TASK, tid, p))
                self._races(steps, hb, j, tid, list(range(j)))
                continue
            if last_all >= 0 and not (direct >> last_all) & 1:
                direct |= 1 << last_all
                covered |= hb[last_all]
            for obj, _op, read in acc:
                w = last_write.get(obj)
                if w is not None and not (direct >> w) & 1:
                    direct |= 1 << w
                    covered |= hb[w]
                rs = readers.get(obj)
                if read:
                    if rs is None:
                        readers[obj] = [j]
                    else:
                        rs.append(j)
                    add((j, _READ, obj, rs))
                else:
                    if rs:
                        for r in rs:
                            if not (direct >> r) & 1:
                                direct |= 1 << r
                                covered |= hb[r]
                        readers[obj] = []
                        add((j, _READERS, obj, rs))
                    last_write[obj] = j
                    add((j, _WRITE, obj, w))
            last_of_task[tid] = j
            add((j, _TASK, tid, p))
            hb[j] = direct | covered
            racing = direct & ~covered
            if racing:  # rare: no call for the steps without a race
                self._reverse_racing(steps, hb, racing, j, tid)
        self._index = (last_of_task, last_write, readers)
        self._index_all = last_all
        self._index_log = log
        self._last_hb = hb
        everything = list(range(m))
        for tid in pending:
            self._races([*steps, StepRecord(m, tid, ALL, -1)], hb, m, tid, everything)

    def _races(
        self, steps: list[StepRecord], hb: list[int], j: int, tid: int, preds: list[int]
    ) -> None:
        """Set ``hb[j]`` from the direct predecessors ``preds`` of step ``j`` (dependent
        earlier steps, a superset of the maximal ones) and reverse its races."""
        direct = 0
        covered = 0
        for i in preds:
            bit = 1 << i
            if not direct & bit:
                direct |= bit
                covered |= hb[i]
        hb[j] = direct | covered
        self._reverse_racing(steps, hb, direct & ~covered, j, tid)

    def _reverse_racing(
        self, steps: list[StepRecord], hb: list[int], racing: int, j: int, tid: int
    ) -> None:
        """Reverse the races of step ``j`` (of task ``tid``) with the steps whose bits are
        set in ``racing``: its direct predecessors that no other predecessor covers."""
        while racing:
            low = racing & -racing
            i = low.bit_length() - 1
            racing ^= low
            if steps[i].tid != tid:
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
        node.backtrack.append(ids.index(enabled[0]))


class DfsRun(StepObserver):
    """The strategy of one execution: replay the path, then extend it with defaults.

    The run replays the previous run's choices up to the node that takes a new option (the
    last node of the path it is given), so it repeats the previous run's steps up to
    there: the same steps with the same footprints, since the model is deterministic.
    With the search's ``share_prefix`` on, it does not record them again: it detaches from
    the runtime (``rt.observer`` is ``None``, so model code reports no accesses and builds
    no footprints) until the last task choice at or before that node, and there takes the
    previous run's records of the steps run so far (``reused`` of them) and attaches
    again.  The records are the same as recording them would give (a test compares them
    with a fresh recording), and :meth:`DfsSearch.finish_run` skips the analysis it has
    already done for them.  A traced run likewise stops tracing until there and then
    takes the previous run's trace entries up to that point (when the previous run and
    the one that made that choice were traced).
    """

    name = "dfs"

    def __init__(self, search: DfsSearch, prefix_len: int) -> None:
        super().__init__()
        self.search = search
        self.prefix_len = prefix_len
        self.preemptions = 0
        self.tracking = prefix_len == 0
        self.sleep: dict[int, tuple[Access, ...]] = {}
        #: the leading steps whose records are the previous run's (set where they are taken)
        self.reused = 0
        # The task choice where the run attaches again (-1: it never detaches).
        self._resume = -1
        self._stack = search.stack
        # The trace whose entries up to there this run takes (None: it traces them itself).
        self._trace_from: list[TraceEntry] | None = None
        if search.share_prefix and prefix_len > 0:
            stack = search.stack
            i = prefix_len - 1
            while i >= 0 and stack[i].kind != TASK:
                i -= 1  # an environment choice falls inside a step: resume before it
            if i >= 0 and stack[i].at_step > 0 and search._last_steps:
                self._resume = i

    def attach(self, rt: Runtime) -> None:
        super().attach(rt)
        if self._resume >= 0:
            rt.observer = None  # replaying known steps: see the class doc
            last = self.search._last_trace
            at = self.search.stack[self._resume].at_trace
            if rt.tracing and last is not None and 0 <= at <= len(last):
                self._trace_from = last
                rt.tracing = False

    def finish_steps(self) -> list[StepRecord]:
        if self._resume >= 0:
            raise Diverged(
                "the run ended inside the prefix it replays: the model is not deterministic"
            )
        return super().finish_steps()

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
            if kind == TASK and self.search.sleep_sets:
                self.sleep.update(node.done)
        return node

    def _reattach(self, rt: Runtime, node: Node) -> None:
        k = rt.step
        if k != node.at_step:
            raise Diverged(
                f"{k} steps ran before choice #{self._resume}, {node.at_step} in the previous "
                "run of the same prefix: the model is not deterministic"
            )
        self._resume = -1
        self.steps = self.search._last_steps[:k]
        self.reused = k
        rt.observer = self
        last = self._trace_from
        if last is not None:
            self._trace_from = None
            if rt.trace:
                raise Diverged("the run traced steps while it replayed a known prefix")
            rt.trace.extend(last[: node.at_trace])
            rt.tracing = True

    def pick_task(self, rt: Runtime, n: int) -> int:
        i = len(rt.choices)
        if i < self._resume:  # detached (so inside the prefix): no open step to close
            node = self._stack[i]
            if node.n == n and node.kind == TASK:
                return node.chosen
        if i < self.prefix_len:
            self.sync()
            node = self._replayed(i, TASK, n)
            if i == self._resume:
                self._reattach(rt, node)
            return node.chosen
        self.sync()
        cur = rt.current
        free = cur is None or cur.state != RUNNABLE
        ids = tuple([t.id for t in rt.candidates()])
        search = self.search
        sleep = dict(self.sleep) if search.sleep_sets else {}
        at_trace = len(rt.trace) if rt.tracing else -1
        node = Node(
            TASK, n, ids, free, self.preemptions, sleep, -1, [], at_step=rt.step, at_trace=at_trace
        )
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
        node = Node(
            ENV, n, (), True, self.preemptions, dict(self.sleep), 0, list(range(n)), at_step=rt.step
        )
        self.search.stack.append(node)
        return 0
