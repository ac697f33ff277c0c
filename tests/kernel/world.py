"""Tiny kernel worlds on the engine: an mm, a page allocator, interval notifiers.

Each test builds one of these on a fresh :class:`Runtime`, spawns a few model tasks that
call the kernel model directly, runs it, and then asserts on what the tasks recorded.
Orderings that a test depends on are forced with completions and :func:`until`, never by
a particular schedule, so the tests hold on every seed.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np

from concsim.engine import BLOCKED, DONE, Failure, Runtime, Task
from concsim.kernel import Completion
from concsim.kernel._mm import MM, VM_READ, VM_WRITE
from concsim.kernel._mmu_notifier import (
    MMUIntervalNotifier,
    MMUNotifierRange,
    MMUNotifierSubscriptions,
    mmu_interval_notifier_insert,
    mmu_interval_set_seq,
    subscriptions,
)
from concsim.kernel._pagealloc import PageAllocator
from concsim.strategies import RandomWalk, Replay

SEEDS = range(12)


class Tiny:
    """An address space of ``nr_vpns`` pages with one rw VMA over [base, base + npages)."""

    def __init__(
        self,
        rt: Runtime,
        *,
        nr_vpns: int = 4096,
        capacity: int = 8192,
        base: int = 1024,
        npages: int = 1024,
        vm_flags: int = VM_READ | VM_WRITE,
    ) -> None:
        self.rt = rt
        self.pages = PageAllocator(rt, capacity)
        self.mm = MM(rt, nr_vpns, self.pages)
        self.base = base
        if npages:
            self.mm.mmap(base, npages, vm_flags)
        self.log: list[tuple[Any, ...]] = []
        self.out: dict[str, Any] = {}

    @property
    def subs(self) -> MMUNotifierSubscriptions:
        return subscriptions(self.mm)

    def completion(self, name: str) -> Completion:
        return Completion(self.rt, name)

    def populate(self, vpns: list[int], *, write: bool = True) -> np.ndarray:
        """Make ``vpns`` present (before any task runs): fresh pages, as the VMM touched them."""
        from concsim.kernel._mm import PTE_PRESENT

        idx = np.array(vpns, dtype=np.int64)
        pfns = self.pages.alloc_pages_bulk(idx.size)
        self.mm.pte_state[idx] = PTE_PRESENT
        self.mm.pte_pfn[idx] = pfns
        self.mm.pte_write[idx] = write
        return pfns

    def callback(
        self,
        name: str,
        *,
        ok: bool = True,
        gate: Completion | None = None,
        started: Completion | None = None,
        set_seq: bool = True,
    ) -> Callable[[MMUIntervalNotifier, MMUNotifierRange, int], Coroutine[Any, Any, bool]]:
        """An invalidate callback that logs ``("cb", name, cur_seq)`` and behaves as told:
        signal ``started``, wait for ``gate``, set the notifier's seq, return ``ok``."""

        async def cb(mni: MMUIntervalNotifier, r: MMUNotifierRange, cur_seq: int) -> bool:
            self.log.append(("cb", name, cur_seq, r.blockable))
            if started is not None:
                await started.complete_all()
            if gate is not None:
                await gate.wait_for_completion()
            if set_seq:
                await mmu_interval_set_seq(mni, cur_seq)
            return ok

        return cb

    async def insert(self, name: str, start: int, length: int, **cb: Any) -> MMUIntervalNotifier:
        mni = MMUIntervalNotifier(name)
        ret = await mmu_interval_notifier_insert(
            mni, self.mm, start, length, self.callback(name, **cb)
        )
        assert ret == 0
        return mni


async def until(rt: Runtime, pred: Callable[[], bool], what: str = "until") -> None:
    """Yield until ``pred()`` holds (another task makes it true)."""
    while not pred():
        await rt.point("spin", what, read=True)


def blocked_or_done(t: Task) -> Callable[[], bool]:
    return lambda: t.state in (BLOCKED, DONE)


def run_tiny(
    build: Callable[[Runtime], Tiny],
    seed: int | None = None,
    *,
    trace: bool = True,
    max_steps: int = 20_000,
) -> tuple[Tiny, Runtime, Failure | None]:
    """Build and run a tiny world.  ``seed=None``: every choice is 0 (the current task keeps
    running, every environment outcome is the ordinary one)."""
    strat = Replay([], strict=False) if seed is None else RandomWalk(seed)
    rt = Runtime(strat, max_steps=max_steps, trace=trace)
    w = build(rt)
    return w, rt, rt.run()


def clean(f: Failure | None) -> None:
    """Assert the run had no failure, showing the model traceback when it had one."""
    if f is not None:
        raise AssertionError(
            f"{f.kind} ({f.invariant}): {f.message}\n{f.details.get('traceback', '')}"
        )
