"""The sleeping mutex (``struct mutex``): lock, trylock, unlock, owner, initialised state.

Semantics modelled after kernel/locking/mutex.c, reduced to what a race checker needs:

* ``mutex_lock`` may sleep (checked by ``might_sleep`` even when uncontended), then takes
  the mutex or blocks until it is released.  Release wakes every waiter; the schedule
  decides which of them takes it (no hand-off), so every acquisition order is explored.
* ``mutex_trylock`` never sleeps: it takes a free mutex or returns ``False``.
* ``mutex_unlock`` is a scheduling point too (before the release), as every operation
  another task can observe is.
* With CONFIG_DEBUG_MUTEXES the kernel catches the misuses below; here each is a failure:
  locking a mutex that was never ``mutex_init``-ed, locking one the task already holds
  (a certain self-deadlock), and unlocking one the task does not own.
"""

from __future__ import annotations

from concsim.engine import Runtime, Task
from concsim.kernel._lockbase import LockBase
from concsim.kernel._sched import might_sleep


class Mutex(LockBase):
    kind = "mutex"

    def __init__(
        self, rt: Runtime, name: str, cls: str | None = None, *, initialized: bool = True
    ) -> None:
        super().__init__(rt, name, cls)
        self.owner: Task | None = None
        self.initialized = initialized

    async def mutex_init(self) -> None:
        """``mutex_init``: make the mutex usable (and unlocked).

        A scheduling point: initialising writes the mutex, and a task that looks the object
        up concurrently (an invalidate callback) may get there first.
        """
        await self.rt.point("mutex_init", self.name)
        self.initialized = True
        self.owner = None

    def holders(self) -> list[Task]:
        return [self.owner] if self.owner is not None else []

    def _check_usable(self, t: Task, what: str) -> None:
        if not self.initialized:
            raise self.rt.fail(
                "lock-misuse",
                f"{what} on mutex {self.name} before mutex_init (uninitialised mutex)",
                invariant="S3",
                lock=self.name,
            )
        if self.owner is t:
            raise self.rt.fail(
                "lock-misuse",
                f"{what} on mutex {self.name} by task {t.name!r}, which already holds it: "
                "recursive locking deadlocks",
                lock=self.name,
            )

    async def lock(self) -> None:
        """``mutex_lock``."""
        rt = self.rt
        t = rt.current
        assert t is not None
        might_sleep(rt, "mutex_lock", self.name)
        await rt.point("mutex_lock", self.name)
        self._check_usable(t, "mutex_lock")
        while self.owner is not None:
            self.waiters.append(t)
            await rt.block(self)
            self._check_usable(t, "mutex_lock")
        self.owner = t
        self._acquired(t)

    async def trylock(self) -> bool:
        """``mutex_trylock``: take the mutex if it is free; never sleeps."""
        rt = self.rt
        t = rt.current
        assert t is not None
        await rt.point("mutex_trylock", self.name)
        if not self.initialized:
            raise rt.fail(
                "lock-misuse",
                f"mutex_trylock on mutex {self.name} before mutex_init (uninitialised mutex)",
                invariant="S3",
                lock=self.name,
            )
        if self.owner is not None:
            rt.event("mutex_trylock_failed", self.name, self.owner.name)
            return False
        self.owner = t
        self._acquired(t, trylock=True)
        return True

    async def unlock(self) -> None:
        """``mutex_unlock``: a scheduling point, then the release (it publishes what the
        critical section did: another task may run right before it, e.g. see the lock
        still held, or take it right after)."""
        await self.rt.point("mutex_unlock", self.name)
        self._release_owned("mutex_unlock")

    def is_locked(self) -> bool:
        return self.owner is not None
