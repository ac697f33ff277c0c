"""Wait queues and completions: ``wait_event``, ``wake_up_all``, ``struct completion``.

``wait_event(wq, cond)`` sleeps until ``cond()`` is true, re-testing it after every
wake-up, like the kernel macro.  ``wake_up_all``, ``complete`` and ``complete_all`` are
scheduling points (before they publish).  A waiter that nobody ever wakes is reported as a deadlock
("nothing will wake it") when every other task has finished or blocked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from concsim.engine import Runtime, Task
from concsim.kernel._sched import might_sleep


class WaitQueue:
    def __init__(self, rt: Runtime, name: str) -> None:
        self.rt = rt
        self.name = name
        self.waiters: list[Task] = []

    def holders(self) -> list[Task]:
        return []

    async def wait_event(
        self, cond: Callable[[], bool], what: str = "wait_event", reads: Sequence[str] = ()
    ) -> None:
        """Sleep until ``cond()``; ``reads`` names the objects ``cond`` reads (footprint)."""
        rt = self.rt
        might_sleep(rt, what, self.name)
        await rt.point(what, self.name, read=True)
        while True:
            for obj in reads:
                rt.access(obj, write=False)
            if cond():
                return
            t = rt.current
            assert t is not None
            self.waiters.append(t)
            await rt.block(self)

    async def wake_up_all(self) -> None:
        """``wake_up_all``: a scheduling point (it publishes the condition), then the wake."""
        await self.rt.point("wake_up_all", self.name)
        self._wake()

    def _wake(self) -> None:
        self.rt.access(self.name)
        if self.waiters:
            self.rt.wake_all(self.waiters)


class Completion:
    """``struct completion``: ``wait_for_completion``, ``complete``, ``complete_all``."""

    def __init__(self, rt: Runtime, name: str) -> None:
        self.rt = rt
        self.name = name
        self.done = 0
        self._all = False
        self.wq = WaitQueue(rt, name)

    async def wait_for_completion(self) -> None:
        await self.wq.wait_event(lambda: self._all or self.done > 0, "wait_for_completion")
        if not self._all:
            self.rt.access(self.name)  # consuming a done is a write (the wait only reads)
            self.done -= 1

    async def complete(self) -> None:
        """``complete``: a scheduling point, then one more done and the wake-up."""
        await self.rt.point("complete", self.name)
        self.done += 1
        self.wq._wake()

    async def complete_all(self) -> None:
        await self.rt.point("complete_all", self.name)
        self._all = True
        self.wq._wake()
