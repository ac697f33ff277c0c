"""A lockdep-like lock-order graph.

Like the kernel's lockdep, it reasons about lock *classes* (every region's ``mreg_mutex``
is one class) and records an edge A -> B whenever a task acquires B while holding A.  An
acquisition that would close a cycle is reported at once as a potential deadlock, on the
schedule that first shows both orders, even though that schedule did not deadlock.

Pseudo-locks take part like real ones: ``mmu_notifier_invalidate_range_start`` is "held"
by every blockable invalidation while the notifier callbacks run, and "acquired" for a
moment by ``mmu_interval_read_begin`` and ``mmu_interval_notifier_remove`` (both may wait
for an invalidation); ``fs_reclaim`` is "acquired" by every GFP_KERNEL allocation and held
by direct reclaim, when the world models reclaim from allocations.  Trylocks cannot
deadlock and add no edge (they are still recorded as held, as lockdep does).
"""

from __future__ import annotations

from typing import Any

from concsim.checks._catalogue import S4
from concsim.engine import Runtime, Task


class LockDep:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # class -> {class it was taken before -> (task, step) of the first witness}
        self.after: dict[str, dict[str, tuple[str, int]]] = {}

    def _path(self, src: str, dst: str) -> list[str] | None:
        """A path src -> ... -> dst in the graph (depth-first, insertion order)."""
        stack: list[tuple[str, list[str]]] = [(src, [src])]
        seen: list[str] = []
        while stack:
            node, path = stack.pop()
            if node == dst:
                return path
            if node in seen:
                continue
            seen.append(node)
            stack.extend((nxt, [*path, nxt]) for nxt in reversed(list(self.after.get(node, {}))))
        return None

    def acquire(self, t: Task, lock: Any, *, read: bool = False, trylock: bool = False) -> None:
        if trylock:
            return
        new = lock.cls
        for h in t.held[:-1]:  # the last one is the lock being acquired
            held = h.cls
            if held == new:
                continue
            edges = self.after.setdefault(held, {})
            if new in edges:
                continue
            back = self._path(new, held)
            if back is not None:
                chain = " -> ".join(back)
                witness = self.after[back[0]][back[1]]
                raise self.rt.fail(
                    "lock-order",
                    f"possible deadlock: task {t.name!r} takes {new} while holding {held}, but "
                    f"the order {chain} was seen before (first {back[0]} -> {back[1]} by task "
                    f"{witness[0]!r} at step {witness[1]})",
                    invariant=S4,
                    where="lockdep",
                    cycle=[held, *back],
                    witness_task=witness[0],
                    witness_step=witness[1],
                )
            edges[new] = (t.name, self.rt.step)

    def release(self, t: Task, lock: Any) -> None:
        return None
