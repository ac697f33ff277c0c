"""``struct rw_semaphore`` (``mmap_lock``): shared readers, one exclusive writer.

Like the kernel's rwsem, a reader that arrives while a writer is *waiting* waits too
(writers are not starved), so "read lock, then read lock again while a writer queues"
deadlocks here as it does in the kernel.  ``down_read_trylock`` fails when a writer holds
or waits.  Every acquisition may sleep except the trylocks.  Every operation, both sides
(``up_read``, ``up_write``, ``downgrade_write`` too), is a scheduling point before it.
"""

from __future__ import annotations

from concsim.engine import Runtime, Task
from concsim.kernel._lockbase import LockBase
from concsim.kernel._sched import might_sleep


class RWSem(LockBase):
    kind = "rwsem"

    def __init__(self, rt: Runtime, name: str, cls: str | None = None) -> None:
        super().__init__(rt, name, cls)
        self.readers: list[Task] = []
        self.writer: Task | None = None
        self.writers_waiting = 0

    def holders(self) -> list[Task]:
        if self.writer is not None:
            return [self.writer]
        return list(self.readers)

    def _check_recursion(self, t: Task, what: str) -> None:
        if self.writer is t or (what == "down_write" and t in self.readers):
            raise self.rt.fail(
                "lock-misuse",
                f"{what} on {self.name} by task {t.name!r}, which already holds it: "
                "recursive rwsem acquisition deadlocks",
                lock=self.name,
            )

    async def down_read(self) -> None:
        rt = self.rt
        t = rt.current
        assert t is not None
        might_sleep(rt, "down_read", self.name)
        await rt.point("down_read", self.name)
        self._check_recursion(t, "down_read")
        while self.writer is not None or self.writers_waiting:
            self.waiters.append(t)
            await rt.block(self)
        self.readers.append(t)
        self._acquired(t, read=True)

    async def down_read_trylock(self) -> bool:
        rt = self.rt
        t = rt.current
        assert t is not None
        await rt.point("down_read_trylock", self.name)
        if self.writer is not None or self.writers_waiting:
            rt.event("down_read_trylock_failed", self.name)
            return False
        self.readers.append(t)
        self._acquired(t, read=True, trylock=True)
        return True

    async def up_read(self) -> None:
        rt = self.rt
        t = rt.current
        assert t is not None
        await rt.point("up_read", self.name)
        if t not in self.readers:
            raise rt.fail(
                "lock-misuse",
                f"up_read on {self.name} by task {t.name!r}, which does not hold it for read",
                lock=self.name,
            )
        self.readers.remove(t)
        self._released(t)
        rt.access(self.name)
        if not self.readers and self.waiters:
            rt.wake_all(self.waiters)

    async def down_write(self) -> None:
        rt = self.rt
        t = rt.current
        assert t is not None
        might_sleep(rt, "down_write", self.name)
        await rt.point("down_write", self.name)
        self._check_recursion(t, "down_write")
        if self.writer is not None or self.readers:
            self.writers_waiting += 1
            while self.writer is not None or self.readers:
                self.waiters.append(t)
                await rt.block(self)
            self.writers_waiting -= 1
        self.writer = t
        self._acquired(t)

    async def up_write(self) -> None:
        rt = self.rt
        t = rt.current
        assert t is not None
        await rt.point("up_write", self.name)
        if self.writer is not t:
            raise rt.fail(
                "lock-misuse",
                f"up_write on {self.name} by task {t.name!r}, which does not hold it for write",
                lock=self.name,
            )
        self.writer = None
        self._released(t)
        rt.access(self.name)
        if self.waiters:
            rt.wake_all(self.waiters)

    async def downgrade_write(self) -> None:
        """``downgrade_write``: turn a held write lock into a read lock, atomically."""
        rt = self.rt
        t = rt.current
        assert t is not None
        await rt.point("downgrade_write", self.name)
        if self.writer is not t:
            raise rt.fail(
                "lock-misuse",
                f"downgrade_write on {self.name} by task {t.name!r}, which does not hold it "
                "for write",
                lock=self.name,
            )
        self.writer = None
        self.readers.append(t)
        rt.access(self.name)
        if self.waiters:
            rt.wake_all(self.waiters)
