"""``spinlock_t``: short critical sections in atomic context.

A contended spinlock spins; in the model the spinning task simply is not runnable until the
lock is released, which explores the same orders.  While a task holds a spinlock it is in
atomic context: anything that may sleep (``mutex_lock``, ``wait_event``, a GFP_KERNEL
allocation) is a ``sleep-in-atomic`` failure.
"""

from __future__ import annotations

from concsim.engine import Runtime, Task
from concsim.kernel._lockbase import LockBase


class SpinLock(LockBase):
    kind = "spinlock"
    atomic = True

    def __init__(self, rt: Runtime, name: str, cls: str | None = None) -> None:
        super().__init__(rt, name, cls)
        self.owner: Task | None = None

    def holders(self) -> list[Task]:
        return [self.owner] if self.owner is not None else []

    async def lock(self) -> None:
        """``spin_lock``."""
        rt = self.rt
        t = rt.current
        assert t is not None
        await rt.point("spin_lock", self.name)
        if self.owner is t:
            raise rt.fail(
                "lock-misuse",
                f"spin_lock on {self.name} by task {t.name!r}, which already holds it: "
                "recursive spinlock deadlocks",
                lock=self.name,
            )
        while self.owner is not None:
            self.waiters.append(t)
            await rt.block(self)
        self.owner = t
        self._acquired(t)

    async def unlock(self) -> None:
        """``spin_unlock``: a scheduling point, then the release."""
        await self.rt.point("spin_unlock", self.name)
        self._release_owned("spin_unlock")
