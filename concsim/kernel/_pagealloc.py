"""The page allocator: refcounted physical pages, deterministic reuse, and a free hook.

Pfn 0 is never handed out (it stands for "no page"); pfn ``ZERO_PFN`` is the shared zero
page, permanently allocated and never writable.  Freed pages go on a LIFO free list, so
the next allocation hands the most recently freed page out again: a stale mapping then
points at someone else's data quickly, which is what makes a use-after-free observable.

``on_free`` hooks run for every page that is about to return to the free list (the S1
oracle checks there that no SLAT entry still grants access to it).

Footprint: the allocator (free list, refcounts, pins, folio orders) is one object,
``"pages"``: every allocation, reference change and pin writes it; a pin or order test
reads it.  The pages' contents (``data``) are another, ``"page_data"`` (:data:`PAGE_DATA`):
every copy, load or store of a token reports it.

Long-term pins (``pin_user_pages`` with FOLL_LONGTERM) are counted apart from plain
references, as the kernel's pin bias does, so that ``folio_maybe_dma_pinned`` can be asked:
migration, reclaim, KSM and NUMA hinting leave a pinned page alone.  A pin also holds a
reference, so a pinned page is not freed when the process unmaps it.

``data`` holds each page's contents as one int64 token standing for the whole page (0: a
zeroed page, which every allocation hands out).  Whoever moves a page's contents to
another page copies the token (migration, the COW break, swap-out and swap-in), so a
reader can tell which page it reached by what it reads (the HMM conformance cases compare
what a device read or wrote with what the process sees).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from concsim.engine import Runtime
from concsim.kernel._views import scalar_view

ZERO_PFN = 1
FIRST_PFN = 2
#: The footprint object of the pages' contents (``PageAllocator.data``).
PAGE_DATA = "page_data"
#: :meth:`PageAllocator.put_pages` of up to this many pages goes page by page.
SMALL_PUT = 64

FreeHook = Callable[[npt.NDArray[np.int64]], None]


class PageAllocator:
    def __init__(self, rt: Runtime, capacity: int) -> None:
        self.rt = rt
        self.capacity = capacity
        self.refcount = np.zeros(capacity, dtype=np.int32)
        self.refcount[ZERO_PFN] = 1
        # Folio order of each allocated page (0: 4 KiB, 9: part of a 2 MiB folio).
        self.order = np.zeros(capacity, dtype=np.int8)
        # Bumped at every allocation: a holder of a stale pfn can tell the page was reused.
        self.generation = np.zeros(capacity, dtype=np.int64)
        self.pincount = np.zeros(capacity, dtype=np.int32)
        self.data = np.zeros(capacity, dtype=np.int64)
        # Memoryviews of the same arrays, for one-page reads and writes with plain ints (a
        # numpy scalar access costs several times as much).
        self._refcount_mv = scalar_view(self.refcount)
        self._order_mv = scalar_view(self.order)
        self._generation_mv = scalar_view(self.generation)
        self._data_mv = scalar_view(self.data)
        # The free list is the freed pages (LIFO, most recent last) on top of the pages
        # never handed out, [_fresh, capacity), which go in ascending order: the order a
        # list of every pfn would give, without building it for every world.
        self._free: list[int] = []
        self._fresh = FIRST_PFN
        self.on_free: list[FreeHook] = []

    def nr_free(self) -> int:
        return len(self._free) + self.capacity - self._fresh

    def alloc_page(self) -> int:
        """One 4 KiB page with refcount 1, or -1 when memory is exhausted."""
        if self.rt.observer is not None:  # the footprint: recorded only for an observer
            self.rt.access("pages")
        if self._free:
            pfn = self._free.pop()
        elif self._fresh < self.capacity:
            pfn = self._fresh
            self._fresh += 1
        else:
            return -1
        self._refcount_mv[pfn] = 1
        self._order_mv[pfn] = 0
        self._data_mv[pfn] = 0
        self._generation_mv[pfn] += 1
        self.rt.count("pages_allocated")
        return pfn

    def alloc_pages_bulk(self, n: int) -> npt.NDArray[np.int64]:
        """``n`` pages at once (used to pre-populate large regions)."""
        self.rt.access("pages")
        if n > self.nr_free():
            raise MemoryError(f"page allocator exhausted: {n} pages wanted, {self.nr_free()} free")
        k = min(n, len(self._free))  # freed pages first, most recent first, then fresh ones
        if k == 0:  # only never-used pages (building a world): one range, slices
            a = self._fresh
            b = self._fresh = a + n
            self.refcount[a:b] = 1
            self.order[a:b] = 0
            self.data[a:b] = 0
            self.generation[a:b] += 1
            self.rt.count("pages_allocated", n)
            return np.arange(a, b, dtype=np.int64)
        taken = self._free[len(self._free) - k :]
        del self._free[len(self._free) - k :]
        fresh = np.arange(self._fresh, self._fresh + n - k, dtype=np.int64)
        self._fresh += n - k
        pfns = np.concatenate([np.array(taken[::-1], dtype=np.int64), fresh])
        self.refcount[pfns] = 1
        self.order[pfns] = 0
        self.data[pfns] = 0
        self.generation[pfns] += 1
        self.rt.count("pages_allocated", n)
        return pfns

    def copy_highpage(self, dst: int, src: int) -> None:
        """Copy a page's contents (its token) to another page."""
        self.rt.access(PAGE_DATA)
        self.data[dst] = self.data[src]

    def get_page(self, pfn: int) -> None:
        self.rt.access("pages")
        self._refcount_mv[pfn] += 1

    def pin_user_page(self, pfn: int) -> None:
        """A FOLL_PIN | FOLL_LONGTERM pin: a reference that also marks the page pinned."""
        self.rt.access("pages")
        self.refcount[pfn] += 1
        self.pincount[pfn] += 1

    def unpin_user_pages(self, pfns: npt.NDArray[np.int64]) -> None:
        """Drop one pin on each page (and its reference: the page may be freed)."""
        self.rt.access("pages")
        pc = self.pincount
        u, c = np.unique(pfns, return_counts=True)
        pc[u] -= c.astype(np.int32)
        if np.count_nonzero(pc[u] < 0):
            bad = int(u[pc[u] < 0][0])
            raise self.rt.fail("memory", f"unpin of pfn {bad}, which is not pinned", pfn=bad)
        self.put_pages(pfns)

    def folio_maybe_dma_pinned(self, pfn: int) -> bool:
        self.rt.access("pages", write=False)
        return bool(self.pincount[pfn])

    def put_pages(self, pfns: npt.NDArray[np.int64]) -> None:
        """Drop one reference on each page; pages reaching zero are freed (hooks first)."""
        if pfns.size == 0:
            return
        self.rt.access("pages")
        pfns = pfns[pfns != ZERO_PFN]
        if pfns.size == 0:
            return
        if pfns.size <= SMALL_PUT:
            self._put_few(pfns.tolist())
            return
        rc = self.refcount
        if np.count_nonzero(pfns[1:] <= pfns[:-1]) == 0:
            u = pfns  # increasing: already the sorted distinct pfns, each once
            rc[u] -= 1
        else:
            u, c = np.unique(pfns, return_counts=True)  # np.subtract.at, but much faster
            rc[u] -= c.astype(np.int32)
        left = rc[u]
        if np.count_nonzero(left < 0):
            bad = int(u[left < 0][0])
            raise self.rt.fail("memory", f"page refcount underflow on pfn {bad}", pfn=bad)
        dead = u[left == 0]
        if dead.size == 0:
            return
        for hook in self.on_free:
            hook(dead)
        self.rt.count("pages_freed", int(dead.size))
        self._free.extend(dead[::-1].tolist())

    def _put_few(self, pfns: list[int]) -> None:
        """:meth:`put_pages` of a few pages with plain ints: the same counts, the same first
        underflow, the same pages freed in the same order."""
        times: dict[int, int] = {}
        for p in pfns:
            times[p] = times.get(p, 0) + 1
        u = sorted(times)
        rc = self._refcount_mv
        for p in u:
            rc[p] -= times[p]
        for p in u:
            if rc[p] < 0:
                raise self.rt.fail("memory", f"page refcount underflow on pfn {p}", pfn=p)
        dead = [p for p in u if rc[p] == 0]
        if not dead:
            return
        if self.on_free:
            arr = np.array(dead, dtype=np.int64)
            for hook in self.on_free:
                hook(arr)
        self.rt.count("pages_freed", len(dead))
        self._free.extend(reversed(dead))

    def put_page(self, pfn: int) -> None:
        """:meth:`put_pages` of one page, with plain ints."""
        self.rt.access("pages")  # a refcount, and maybe the free list: as put_pages
        if pfn == ZERO_PFN:
            return
        rc = self._refcount_mv
        left = rc[pfn] - 1
        rc[pfn] = left
        if left < 0:
            raise self.rt.fail("memory", f"page refcount underflow on pfn {pfn}", pfn=pfn)
        if left:
            return
        if self.on_free:
            dead = np.array([pfn], dtype=np.int64)
            for hook in self.on_free:
                hook(dead)
        self.rt.count("pages_freed", 1)
        self._free.append(pfn)
