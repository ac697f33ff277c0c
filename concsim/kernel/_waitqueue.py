"""Wait queues and completions: ``wait_event``, ``wake_up_all``, ``struct completion``.

``wait_event(wq, cond)`` sleeps until ``cond()`` is true, re-testing it after every
wake-up, like the kernel macro.  A waiter that nobody ever wakes is reported as a deadlock
("nothing will wake it") when every other task has finished or blocked.
"""

from __future__ import annotations

from collections.abc import Callable

from concsim.engine import Runtime, Task
from concsim.kernel._sched import might_sleep


class WaitQueue:
    def __init__(self, rt: Runtime, name: str) -> None:
        self.rt = rt
        self.name = name
        self.waiters: list[Task] = []

    def holders(self) -> list[Task]:
        return []

    async def wait_event(self, cond: Callable[[], bool], what: str = "wait_event") -> None:
        rt = self.rt
        might_sleep(rt, f"{what}({self.name})")
        await rt.point(what, self.name, read=True)
        while not cond():
            t = rt.current
            assert t is not None
            self.waiters.append(t)
            await rt.block(self)

    def wake_up_all(self) -> None:
        self.rt.event("wake_up_all", self.name, len(self.waiters))
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
            self.done -= 1

    def complete(self) -> None:
        self.done += 1
        self.wq.wake_up_all()

    def complete_all(self) -> None:
        self._all = True
        self.wq.wake_up_all()
