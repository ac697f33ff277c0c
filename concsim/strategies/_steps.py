"""What each step of a run touched (its footprint): the input of partial-order reduction.

A *step* is one resumption of one task (see the engine's module doc).  Its footprint is

* the operation the task announced at the scheduling point it resumes from
  (``op`` on ``obj``, a read when the point said ``read=True``; a blocked task announces
  ``wake`` on what it waits for, so the step that wakes it conflicts with it);
* every access the step reported with :meth:`Runtime.access
  <concsim.engine.Runtime.access>` while it ran: the kernel model reports each shared
  object it reads or writes (locks and their releases, wait queues, the page table, the
  VMAs, the page allocator's refcounts, the SLAT, the notifier's sequence numbers, the
  driver's ``mreg_pfns``, refcounts and region list), and so do the oracles and assertion
  points for what they read inside the step.  A step hook (an audit every N steps) runs
  right after a step, so what it reads counts for that step;
* an environment choice (``rt.choose``) inside a step is no access of its own: the search
  branches on every outcome wherever the step runs, so the step is like a task that took
  a different local path; DFS's sleep sets use the union of the footprints the step had
  over all its outcomes (:func:`concsim.strategies._dfs.union`).

Nothing here reads the trace: the engine tells the observer where each step begins
(:class:`concsim.engine.StepListener`), so the footprints are the same whether a trace is
recorded or not.  What the final hooks read after the last step is not recorded: the final
state is the same for every order of the same dependent pairs, since every write is.

Two steps are *dependent* iff they belong to the same task, or they touch a common object
and not both only read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concsim.engine import Runtime, Task

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
    if len(a) > len(b):
        a, b = b, a
    for obj, _op, read in a:
        for obj2, _op2, read2 in b:
            if obj == obj2 and not (read and read2):
                return True
    return False


class StepObserver:
    """Records the :class:`StepRecord` of every step of one run while it runs.

    Attach with :meth:`attach` before ``rt.run()`` (it becomes ``rt.observer``); the
    records are up to date at every choice (the step that is running is still open) and
    :meth:`finish_steps` closes the last one after the run.  ``on_step`` is called with each
    record as it closes (sleep sets use it).
    """

    def __init__(self) -> None:
        self.steps: list[StepRecord] = []
        self.rt: Runtime | None = None
        # The open step: task id, choice index, accesses by object (obj -> its Access).
        self._tid = -1
        self._choice = -1
        self._op = ""
        self._acc: dict[str, Access] | None = None
        self._env = False

    def attach(self, rt: Runtime) -> None:
        self.rt = rt
        rt.observer = self

    # ------------------------------------------------------------------ StepListener

    def begin_step(self, task: Task, choice: int) -> None:
        if self._acc is not None:
            self._close()
        self._tid = task.id
        self._choice = choice
        self._op = task.op
        self._env = False
        obj = task.obj
        self._acc = {} if obj == "" else {obj: (obj, task.op, task.read)}

    def touch(self, obj: str, write: bool) -> None:
        acc = self._acc
        if acc is None:
            return  # the world is being built
        rt = self.rt
        if rt is not None and rt.current is None:
            return  # the final hooks run (see the module doc)
        old = acc.get(obj)
        if old is None:
            acc[obj] = (obj, self._op, not write)
        elif write and old[2]:
            acc[obj] = (obj, old[1], False)

    def env(self, label: str, n: int) -> None:
        if self._acc is not None:
            self._env = True

    # ------------------------------------------------------------------ records

    def sync(self) -> None:
        """Close the step that just ran.  Call it only between steps (a strategy does at
        every task choice, where the previous step is complete): its record is then in
        :attr:`steps` and ``on_step`` has seen it."""
        if self._acc is not None:
            self._close()

    def unfinished(self) -> tuple[int, ...]:
        """After a run that a failure stopped: the tasks that were still runnable."""
        rt = self.rt
        return rt.unfinished if rt is not None and rt.failure is not None else ()

    def finish_steps(self) -> list[StepRecord]:
        """After the run: close the last step and return every record."""
        if self._acc is not None:
            self._close()
        return self.steps

    def _close(self) -> None:
        acc = self._acc
        assert acc is not None
        self._acc = None
        rec = StepRecord(len(self.steps), self._tid, tuple(acc.values()), self._choice)
        self.steps.append(rec)
        self.on_step(rec)

    def on_step(self, rec: StepRecord) -> None:
        """Override to follow steps as they complete."""
