"""What each step of a run touched: the input of partial-order reduction and of coverage.

A *step* is one resumption of one task (see the engine's module doc).  What it touches is

* the operation the task announced at the scheduling point it resumes from
  (``op`` on ``obj``, a read when the point said ``read=True``): the model places a point
  before every operation on shared state, so this is the step's main access;
* every event the step recorded in the trace (``mutex_unlock`` of a lock, ``up_write``,
  ``wake_up_all``): the kernel primitives release locks and wake waiters *inside* a step
  without a scheduling point, and those are accesses too (an unlock enables the tasks
  blocked on the lock).  Events count as writes;
* a step that made an environment choice (``rt.choose``) is treated as touching
  everything (:data:`ALL`): its effect depends on an outcome the search branches on, so it
  is never reordered with anything (conservative, and rare: hypercalls, allocations).

The first step of a task (announced as ``start`` on ``""``) touches nothing but its events.

Two steps are *dependent* iff they belong to the same task, or they touch a common object
and not both only read it.  Enabling is covered by the same rule: a task blocked on a
lock announces ``wake`` on the lock's name, and the step that releases it records an event
on that name.

The observer gets the information without touching the engine's hot path: a step hook
(``Runtime.add_step_hook``) notes each task's next announcement right after its step, and
the trace (recorded with ``trace=True``) supplies the task and the events of every step,
including a task's last step (which runs no hook) and a failing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concsim.engine import Runtime

#: An access: (object, op, read).  ``ALL`` touches everything.
Access = tuple[str, str, bool]
ALL: tuple[Access, ...] = (("*", "*", False),)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One executed step: which task, the accesses, and the choice that preceded it."""

    index: int  # 0-based position in the run
    tid: int
    accesses: tuple[Access, ...]
    #: index into the run's choice list of the task choice made right before this step,
    #: or -1 when only one task could run there.
    choice: int


def dependent(a: tuple[Access, ...], b: tuple[Access, ...]) -> bool:
    """Do two steps of different tasks conflict (same object, not both reads)?"""
    if a is ALL or b is ALL:
        return True
    for obj, _op, read in a:
        for obj2, _op2, read2 in b:
            if obj == obj2 and not (read and read2):
                return True
    return False


class StepObserver:
    """Rebuilds the list of :class:`StepRecord` of one run while it runs.

    Attach with :meth:`attach` before ``rt.run()``; call :meth:`sync` whenever an
    up-to-date list is needed (a strategy does it at every choice; the explorer after the
    run).  ``on_step`` is called with each new record (sleep sets use it).
    """

    def __init__(self) -> None:
        self.steps: list[StepRecord] = []
        self._pending: dict[int, tuple[str, str, bool]] = {}
        self._names: dict[str, int] = {}
        self._cursor = 0  # next trace entry to read
        self._open: tuple[int, int, str, str, list[Access], bool, int] | None = None
        self._choice_at: dict[int, int] = {}  # step number -> index of the task choice
        self.rt: Runtime | None = None

    def attach(self, rt: Runtime) -> None:
        if not rt.tracing:
            raise ValueError("the step observer needs a runtime recording its trace")
        self.rt = rt
        for t in rt.tasks:
            self._names[t.name] = t.id
            self._pending[t.id] = (t.op, t.obj, t.read)
        rt.add_step_hook(self._after_step)

    def note_choice(self, rt: Runtime) -> None:
        """Called by a strategy at a task choice: the next step follows choice #len."""
        self._choice_at[rt.step + 1] = len(rt.choices)

    def _after_step(self, rt: Runtime) -> None:
        self.sync()
        t = rt.current
        if t is not None:
            self._pending[t.id] = (t.op, t.obj, t.read)

    def sync(self) -> None:
        """Read the trace entries written since the last call.

        Call it only between steps (a step hook, a task choice, after the run): every step
        up to ``rt.step`` is then complete.
        """
        rt = self.rt
        if rt is None:
            return
        trace = rt.trace
        n = len(trace)
        i = self._cursor
        while i < n:
            step, name, op, obj, _values, _point, _read = trace[i]
            i += 1
            cur = self._open
            if cur is None or step != cur[0]:
                if cur is not None:
                    self._close()
                tid = self._names.get(name, -1)
                if tid < 0:  # a task spawned while the run runs
                    tid = next((t.id for t in rt.tasks if t.name == name), -1)
                    if tid >= 0:
                        self._names[name] = tid
                if step == 0 or tid < 0:
                    continue  # an event while the world was being built
                pop, pobj, pread = self._pending.get(tid, ("start", "", False))
                acc: list[Access] = [] if pobj == "" else [(pobj, pop, pread)]
                self._open = (step, tid, pop, pobj, acc, False, self._choice_at.get(step, -1))
                continue
            if op == "choose":
                self._open = (cur[0], cur[1], cur[2], cur[3], cur[4], True, cur[6])
            elif op != "exit" and obj:
                cur[4].append((obj, op, False))
        self._cursor = n
        if self._open is not None and self._open[0] <= rt.step:
            self._close()

    def finish_steps(self) -> list[StepRecord]:
        """After the run: close the last step and return every record."""
        self.sync()
        if self._open is not None:
            self._close()
        return self.steps

    def _close(self) -> None:
        cur = self._open
        assert cur is not None
        self._open = None
        _step, tid, _op, _obj, acc, env, choice = cur
        accesses = ALL if env else tuple(acc)
        rec = StepRecord(len(self.steps), tid, accesses, choice)
        self.steps.append(rec)
        self.on_step(rec)

    def on_step(self, rec: StepRecord) -> None:
        """Override to follow steps as they complete."""
