"""What every modelled lock shares: a name, a lock class, holders, waiters, lock tracking.

Lock *instances* have a ``name`` ("region0.mreg_mutex"); lockdep reasons about lock
*classes* (``cls``, "mreg_mutex"), as the kernel does.  When a lock tracker is attached to
the runtime (``rt.ext["lockdep"]``, see concsim.checks), every acquire and release is
reported to it so it can build the lock-order graph.
"""

from __future__ import annotations

from typing import Any

from concsim.engine import Runtime, Task


class LockBase:
    atomic = False  # a spinlock makes its holder atomic (no sleeping)
    kind = "lock"

    def __init__(self, rt: Runtime, name: str, cls: str | None = None) -> None:
        self.rt = rt
        self.name = name
        self.cls = cls or name
        self.waiters: list[Task] = []

    def holders(self) -> list[Task]:  # pragma: no cover - overridden
        return []

    def _acquired(self, t: Task, *, read: bool = False, trylock: bool = False) -> None:
        t.held.append(self)
        if self.atomic:
            t.atomic += 1
        tracker: Any = self.rt.ext.get("lockdep")
        if tracker is not None:
            tracker.acquire(t, self, read=read, trylock=trylock)

    def _released(self, t: Task) -> None:
        held = t.held
        if held and held[-1] is self:  # released in LIFO order (the common case)
            held.pop()
        else:
            for i in range(len(held) - 1, -1, -1):
                if held[i] is self:
                    del held[i]
                    break
        if self.atomic:
            t.atomic -= 1
        tracker: Any = self.rt.ext.get("lockdep")
        if tracker is not None:
            tracker.release(t, self)

    def _release_owned(self, what: str) -> None:
        """Unlock of an owner lock (mutex, spinlock): only the owner may, then wake all.

        The caller awaited the release's scheduling point (``what`` on the lock) first: a
        release publishes the critical section, so other tasks may run right before it.
        """
        rt = self.rt
        t = rt.current
        assert t is not None
        owner: Task | None = getattr(self, "owner", None)
        if owner is not t:
            raise rt.fail(
                "lock-misuse",
                f"{what} on {self.kind} {self.name} by task {t.name!r}, which does not own it "
                f"(owner: {owner.name if owner is not None else 'nobody'})",
                lock=self.name,
            )
        self.owner: Task | None = None
        self._released(t)
        rt.access(self.name)
        if self.waiters:
            rt.wake_all(self.waiters)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class LockdepMap(LockBase):
    """A lockdep pseudo-lock (``struct lockdep_map``): never blocks, only orders.

    ``__mmu_notifier_invalidate_range_start_map`` is one: every blockable invalidation
    "holds" it while the notifier callbacks run, and ``mmu_interval_read_begin`` and
    ``mmu_interval_notifier_remove`` "acquire" it for a moment, because both may wait for
    an invalidation to end.  So "mreg_mutex held, then read_begin" closes a cycle with
    "invalidate_range_start_map, then mreg_mutex (in the callback)" in the lock-order graph
    even on a schedule where nothing actually waits.
    """

    kind = "lockdep_map"

    def holders(self) -> list[Task]:
        return []

    def lock_map_acquire(self) -> None:
        t = self.rt.current
        assert t is not None
        self._acquired(t)

    def lock_map_release(self) -> None:
        t = self.rt.current
        assert t is not None
        self._released(t)
