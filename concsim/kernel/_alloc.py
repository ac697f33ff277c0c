"""Kernel memory allocation as the driver sees it: kmalloc_array, vmalloc_array, GFP_KERNEL.

* ``kmalloc_array`` fails above KMALLOC_MAX_SIZE (4 MiB with 4 KiB pages and the default
  MAX_PAGE_ORDER): a pfn array of more than 524,288 entries, i.e. a region over 2 GiB mapped
  in one call.  ``vmalloc_array`` has no such limit.  That is why the patch switched
  ``mshv_region_collect_and_map`` from one to the other (spec D.5).
* Every GFP_KERNEL allocation may sleep (``might_sleep``), and may fail when the scenario
  enables allocation failures (an environment choice, so it replays).
* With ``direct_reclaim`` enabled, a GFP_KERNEL allocation may enter direct reclaim, which
  may invalidate any page of the process (spec D.4), in the allocating task's context: the
  S4 hazard of allocating under ``mreg_mutex``.  Lockdep sees it through the ``fs_reclaim``
  pseudo-lock: as in the kernel (mm/page_alloc.c ``fs_reclaim_acquire``, since "mm: Track
  mmu notifiers in fs_reclaim_acquire/release", which replaced the older priming at
  notifier registration), acquiring ``fs_reclaim`` also acquires and releases the
  notifier's ``mmu_notifier_invalidate_range_start`` map, so an allocation under a lock
  that an invalidate callback takes is reported whether or not reclaim actually runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import numpy.typing as npt

from concsim.engine import Runtime
from concsim.kernel._lockbase import LockdepMap
from concsim.kernel._sched import might_sleep

KMALLOC_MAX_SIZE = 1 << 22
ENOMEM = 12

ReclaimFn = Callable[[], Awaitable[None]]


class KernelAllocator:
    """Per-world allocation policy: failure injection and direct reclaim."""

    def __init__(
        self, rt: Runtime, *, alloc_fail: bool = False, direct_reclaim: ReclaimFn | None = None
    ) -> None:
        self.rt = rt
        self.alloc_fail = alloc_fail
        self.direct_reclaim = direct_reclaim
        self.fs_reclaim = LockdepMap(rt, "fs_reclaim", "fs_reclaim")
        # Same lockdep class as every mm's subs.start_map (lockdep reasons about classes).
        self.notifier_start_map = LockdepMap(
            rt, "invalidate_range_start_map", "mmu_notifier_invalidate_range_start"
        )

    def _fs_reclaim_acquire(self) -> None:
        """``fs_reclaim_acquire(GFP_KERNEL)``: the reclaim context, which may invalidate."""
        self.fs_reclaim.lock_map_acquire()
        self.notifier_start_map.lock_map_acquire()
        self.notifier_start_map.lock_map_release()

    async def gfp_kernel(self, what: str) -> bool:
        """The common part of a GFP_KERNEL allocation; False means it failed."""
        rt = self.rt
        might_sleep(rt, what, suffix=" (GFP_KERNEL)")
        if self.direct_reclaim is not None:
            self._fs_reclaim_acquire()  # might_alloc()
            self.fs_reclaim.lock_map_release()
            if rt.choose("direct_reclaim", 2):
                rt.count("direct_reclaims")
                self._fs_reclaim_acquire()  # __perform_reclaim()
                try:
                    await self.direct_reclaim()
                finally:
                    self.fs_reclaim.lock_map_release()
        if self.alloc_fail and rt.choose(f"alloc_fail({what})", 2):
            rt.count("alloc_failures")
            return False
        return True

    async def kmalloc_array(self, n: int, size: int) -> npt.NDArray[np.uint64] | None:
        if n * size > KMALLOC_MAX_SIZE:
            self.rt.event("kmalloc_array", "alloc", n, size)
            return None
        if not await self.gfp_kernel("kmalloc_array"):
            return None
        return np.zeros(n, dtype=np.uint64)

    async def vmalloc_array(self, n: int, size: int) -> npt.NDArray[np.uint64] | None:
        if not await self.gfp_kernel("vmalloc_array"):
            return None
        return np.zeros(n, dtype=np.uint64)
