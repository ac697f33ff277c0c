"""drivers/hv/mshv_regions.c, after "mshv: Map populated pages on movable region creation".

This is the *after-patch* (v1/v2) driver, written to be read beside the C: one method per
kernel function, the kernel's names, the spec step each line implements.  Variants
(``before-patch``, ``v3``, ``stateless``) and the mutants subclass it and override single
methods (see concsim.driver._variants and _mutants).

Addresses are in pages (``region.start_uaddr`` is a page number), so ``PAGE_SIZE``
arithmetic disappears; gfns and pfns are page numbers as in the kernel.

Scheduling points come from the kernel model (locks, the notifier's sequence reads, the
HMM walk per PMD, each hypercall); the driver adds none of its own except where it
touches shared state that no primitive covers (the GPA intercept's SLAT read).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from concsim.driver._region import (
    MSHV_INVALID_PFN,
    MSHV_MAP_FAULT_IN_PAGES,
    MSHV_REGION_TYPE_MEM_MOVABLE,
    MSHV_REGION_TYPE_MEM_PINNED,
    MshvMemRegion,
)
from concsim.driver._state import MshvDriverState
from concsim.driver._tracepoints import (
    WARN_INVALIDATE_REMAP_FAILED,
    WARN_NONBLOCK_TRYLOCK_FAILED,
    WARN_RANGE_FAULT,
)
from concsim.kernel._bounds import check_range
from concsim.kernel._hmm import (
    EBUSY,
    HMM_PFN_FLAGS,
    HMM_PFN_REQ_FAULT,
    HMM_PFN_REQ_WRITE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    HMMRange,
    hmm_range_fault,
)
from concsim.kernel._hv import (
    HV_MAP_GPA_LARGE_PAGE,
    HV_MAP_GPA_NO_ACCESS,
    HV_MAP_GPA_WRITABLE,
    PAGES_PER_2M,
)
from concsim.kernel._mm import VM_WRITE, VMA
from concsim.kernel._mm_fault import pin_user_pages_fast
from concsim.kernel._mmu_notifier import (
    MMUIntervalNotifier,
    MMUNotifierRange,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
    mmu_notifier_range_blockable,
)
from concsim.kernel._sched import cond_resched

if TYPE_CHECKING:
    from collections.abc import Callable

    ChunkHandler = Callable[[MshvMemRegion, int, int, bool], Awaitable[int]]

ENOMEM = 12
EFAULT = 14
#: Pages pinned per pin_user_pages_fast call when mapping a pinned region (B8).
MSHV_PIN_PAGES_BATCH_SIZE = 65536


#: Up to this many slots, ranges are cut into runs with a Python loop; beyond, with numpy
#: (each numpy call costs about a microsecond whatever its size).
SMALL_RANGE = 64


def validity_runs(valid: npt.NDArray[np.bool_] | list[bool]) -> list[tuple[int, int]]:
    """Maximal runs [a, b) of equal validity, in order."""
    n = len(valid)
    if isinstance(valid, list) or n <= SMALL_RANGE:
        vals = valid if isinstance(valid, list) else valid.tolist()
        edges = [0, *[i for i in range(1, n) if vals[i] != vals[i - 1]], n]
    else:
        edges = [0, *(np.flatnonzero(np.diff(valid.astype(np.int8))) + 1).tolist(), n]
    return [(a, b) for a, b in itertools.pairwise(edges) if a < b]


EINVAL = 22
PMD_ORDER = 9
_INVALID_PFN = int(MSHV_INVALID_PFN)  # for comparisons with plain ints
#: hmm_default_flags' three results
_NO_REQ = np.uint64(0)
_REQ_FAULT = np.uint64(HMM_PFN_REQ_FAULT)
_REQ_FAULT_WRITE = np.uint64(HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)


class MshvRegions(MshvDriverState):
    """The functions of mshv_regions.c.  Mixed into the driver class."""

    # ------------------------------------------------------------------ range processing

    def mshv_chunk_stride(self, region: MshvMemRegion, off: int, count: int) -> int:
        """512 when the page starts a PMD-sized folio and both pfn and gfn are 2 MiB aligned
        and at least 512 pages remain (B7); else 1."""
        assert region.mreg_pfns is not None
        self._region_range(region, off, count, "mshv_chunk_stride")
        pfn = int(region.mreg_pfns[off])
        self.rt.access("pages", write=False)  # the folio's order
        if (
            count >= PAGES_PER_2M
            and self.mm.pages.order[pfn] >= PMD_ORDER
            and pfn % PAGES_PER_2M == 0
            and (region.start_gfn + off) % PAGES_PER_2M == 0
        ):
            return PAGES_PER_2M
        return 1

    def mshv_region_process_pfns(
        self,
        region: MshvMemRegion,
        off: int,
        count: int,
        handler: ChunkHandler,
    ) -> Awaitable[int]:
        """A run of valid slots: cut it into chunks of equal stride and hand each over.

        Awaited by the caller like the kernel function is called; written as a tail call
        (it returns the handler's coroutine, or the strided loop's, instead of awaiting it)
        so that every scheduling point below it resumes one coroutine frame fewer: the
        checks run at the call, before anything is awaited, as they did."""
        pfns = region.mreg_pfns
        assert pfns is not None
        if not 0 <= off <= off + count <= region.nr_pfns:  # S9 (the call only when out)
            self._region_range(region, off, count, "mshv_region_process_pfns")
        if self.rt.observer is not None:  # the footprint (folio orders), for an observer
            self.rt.access("pages", write=False)
        order = self.mm.pages.order
        # Fast path: no page of the run belongs to a PMD-sized folio, so the stride is 1
        # everywhere and the whole run is one chunk.
        if count == 1:
            if order.item(pfns.item(off)) < PMD_ORDER:
                return handler(region, off, count, False)
        elif not np.count_nonzero(order[pfns[off : off + count].astype(np.int64)] >= PMD_ORDER):
            return handler(region, off, count, False)
        return self._process_pfns_strided(region, off, count, handler)

    async def _process_pfns_strided(
        self,
        region: MshvMemRegion,
        off: int,
        count: int,
        handler: ChunkHandler,
    ) -> int:
        """The loop of mshv_region_process_pfns when a PMD-sized folio is in the run."""
        pfns = region.mreg_pfns
        assert pfns is not None
        end = off + count
        i = off
        while i < end:
            stride = self.mshv_chunk_stride(region, i, end - i)
            j = i + stride
            while (
                j < end
                and pfns[j] != MSHV_INVALID_PFN
                and (self.mshv_chunk_stride(region, j, end - j) == stride)
            ):
                j += stride
            ret = await handler(region, i, j - i, stride == PAGES_PER_2M)
            if ret:
                return ret
            i = j
        return 0

    def mshv_region_process_hole(
        self,
        region: MshvMemRegion,
        off: int,
        count: int,
        handler: ChunkHandler,
    ) -> Awaitable[int]:
        return handler(region, off, count, False)  # a tail call (see process_pfns)

    async def mshv_region_process_range(
        self,
        region: MshvMemRegion,
        off: int,
        count: int,
        handler: ChunkHandler,
    ) -> int:
        """B7: split [off, off+count) into maximal runs of equal validity."""
        pfns = region.mreg_pfns
        assert pfns is not None
        if not 0 <= off <= off + count <= region.nr_pfns:  # S9 (the call only when out)
            self._region_range(region, off, count, "mshv_region_process_range")
        mask = pfns[off : off + count] != MSHV_INVALID_PFN
        # A small range as plain bools: valid[a] below is then a list access.
        valid: npt.NDArray[np.bool_] | list[bool] = mask.tolist() if count <= SMALL_RANGE else mask
        for a, b in validity_runs(valid):
            if valid[a]:
                ret = await self.mshv_region_process_pfns(region, off + a, b - a, handler)
            else:
                ret = await self.mshv_region_process_hole(region, off + a, b - a, handler)
            if ret:
                return ret
        return 0

    def mshv_region_chunk_remap(
        self,
        region: MshvMemRegion,
        flags: int,
        off: int,
        count: int,
        huge: bool,
    ) -> Awaitable[int]:
        """Map a chunk: holes NO_ACCESS (dirty tracking), valid pfns with ``flags``.  A tail
        call: returns the hypercall's coroutine for the caller to await (see
        mshv_region_process_pfns)."""
        pfns = region.mreg_pfns
        assert pfns is not None
        if not 0 <= off <= off + count <= region.nr_pfns:  # S9 (the call only when out)
            self._region_range(region, off, count, "mshv_region_chunk_remap")
        first = pfns.item(off)
        if first == _INVALID_PFN:
            flags = HV_MAP_GPA_NO_ACCESS
        if huge:
            flags |= HV_MAP_GPA_LARGE_PAGE
        # The pfns as the call reads them now, as int64 (a one-entry chunk as a plain int).
        arg: npt.NDArray[np.int64] | list[int]
        if count == 1:
            arg = [first if first < 1 << 63 else first - (1 << 64)]
        else:
            arg = pfns[off : off + count].astype(np.int64)
        return self.hv.hv_call_map_ram_pfns(region.start_gfn + off, count, flags, arg)

    async def mshv_region_chunk_unmap(
        self, region: MshvMemRegion, off: int, count: int, huge: bool
    ) -> int:
        assert region.mreg_pfns is not None
        self._region_range(region, off, count, "mshv_region_chunk_unmap")
        if region.mreg_pfns[off] == MSHV_INVALID_PFN:
            return 0  # holes are skipped
        return await self.hv.hv_call_unmap_gpa_pages(
            region.start_gfn + off, count, HV_MAP_GPA_LARGE_PAGE if huge else 0
        )

    def mshv_region_remap_pfns(
        self, region: MshvMemRegion, flags: int, off: int, count: int
    ) -> Awaitable[int]:
        """A tail call, as in the kernel (see mshv_region_process_pfns)."""

        def remap(region: MshvMemRegion, off: int, count: int, huge: bool) -> Awaitable[int]:
            return self.mshv_region_chunk_remap(region, flags, off, count, huge)

        return self.mshv_region_process_range(region, off, count, remap)

    def mshv_region_invalidate_pfns(self, region: MshvMemRegion, off: int, count: int) -> None:
        """Forget the pfns of [off, off+count): every slot becomes MSHV_INVALID_PFN."""
        assert region.mreg_pfns is not None
        self._region_range(region, off, count, "mshv_region_invalidate_pfns")
        region.mreg_pfns[off : off + count] = MSHV_INVALID_PFN
        if self.rt.tracing:
            self.rt.event("invalidate_pfns", f"{region.name}.mreg_pfns", off, off + count)

    async def mshv_region_unmap(self, region: MshvMemRegion) -> int:
        return await self.mshv_region_process_range(
            region, 0, region.nr_pfns, self.mshv_region_chunk_unmap
        )

    # ------------------------------------------------------------------ create / lifetime

    async def mshv_region_create(
        self, start_gfn: int, nr_pfns: int, start_uaddr: int, flags: int
    ) -> MshvMemRegion | None:
        """Allocate the region, every slot MSHV_INVALID_PFN, kref = 1, mutex initialised
        (v4 order: the mutex is ready before the notifier is inserted)."""
        if not await self.kalloc.gfp_kernel("vzalloc(region)"):
            return None
        region = self._new_region(start_gfn, nr_pfns, start_uaddr, flags)
        region.mreg_pfns = np.full(nr_pfns, MSHV_INVALID_PFN, dtype=np.uint64)
        await region.mreg_mutex.mutex_init()
        return region

    async def mshv_region_movable_init(self, region: MshvMemRegion) -> bool:
        ret = await mmu_interval_notifier_insert(
            region.mreg_mni,
            self.mm,
            region.start_uaddr,
            region.nr_pfns,
            self.mshv_region_interval_invalidate,
        )
        return ret == 0

    async def mshv_region_movable_fini(self, region: MshvMemRegion) -> None:
        await mmu_interval_notifier_remove(region.mreg_mni)

    async def mshv_region_get(self, region: MshvMemRegion) -> bool:
        """kref_get_unless_zero: an atomic on the refcount, a scheduling point."""
        await self.rt.point("kref_get_unless_zero", f"{region.name}.kref")
        self._check_alive(region, "mshv_region_get")
        if region.mreg_refcount == 0:
            return False
        region.mreg_refcount += 1
        return True

    async def mshv_region_put(self, region: MshvMemRegion) -> None:
        """kref_put: an atomic on the refcount, a scheduling point; the last one destroys."""
        await self.rt.point("kref_put", f"{region.name}.kref")
        self._check_alive(region, "mshv_region_put")
        region.mreg_refcount -= 1
        if region.mreg_refcount == 0:
            await self.mshv_region_destroy(region)

    async def mshv_region_destroy(self, region: MshvMemRegion) -> None:
        """The kref release (B10.2): notifier first, then the SLAT, then the memory."""
        if region.mreg_type == MSHV_REGION_TYPE_MEM_MOVABLE:
            await self.mshv_region_movable_fini(region)
        await self.mshv_region_unmap(region)
        self.mshv_region_invalidate(region)
        self._vfree(region)

    def mshv_region_invalidate(self, region: MshvMemRegion) -> None:
        if region.mreg_pfns is None:
            return
        if region.mreg_type == MSHV_REGION_TYPE_MEM_PINNED:
            valid = region.mreg_pfns != MSHV_INVALID_PFN
            self.mm.pages.unpin_user_pages(region.mreg_pfns[valid].astype(np.int64))
        region.mreg_pfns[:] = MSHV_INVALID_PFN

    # ------------------------------------------------------------------ the fault path

    def hmm_default_flags(self, region: MshvMemRegion, vma: VMA, do_fault: bool) -> np.uint64:
        """B3.3: REQ_FAULT when faulting; REQ_WRITE only if the VMA is writable.  (The three
        values are numpy scalars built once: building one costs more than the test.)"""
        if not do_fault:
            return _NO_REQ
        if vma.vm_flags & VM_WRITE:
            return _REQ_FAULT_WRITE
        return _REQ_FAULT

    async def mshv_region_hmm_fault_and_lock(
        self,
        region: MshvMemRegion,
        start: int,
        end: int,
        pfns: npt.NDArray[np.uint64],
        do_fault: bool,
    ) -> int:
        """B3: snapshot [start, end) with HMM, then take mreg_mutex and re-check the seq.

        Returns 0 with ``mreg_mutex`` held, -EBUSY (retry) or another error, unlocked.
        """
        mni = region.mreg_mni
        mm = self.mm
        seq = await mmu_interval_read_begin(mni)  # B3.1: may sleep; no locks held
        await mm.mmap_lock.down_read()  # B3.2
        ret = 0
        addr = start
        while addr < end:  # B3.3: one HMM range per VMA piece
            vma = mm.vma_lookup(addr)
            if vma is None:
                ret = -EFAULT
                break
            piece_end = min(vma.vm_end, end)
            check_range(
                self.rt,
                "pfns",
                addr - start,
                piece_end - start,
                len(pfns),
                "mshv_region_hmm_fault_and_lock",
            )
            r = HMMRange(
                mni,
                seq,
                addr,
                piece_end,
                pfns[addr - start : piece_end - start],
                self.hmm_default_flags(region, vma, do_fault),
            )
            ret = await hmm_range_fault(mm, r)
            if ret:
                break
            addr = piece_end
        await mm.mmap_lock.up_read()  # B3.4
        if ret:
            return ret  # B3.5: -EBUSY bubbles up to the caller's loop
        await region.mreg_mutex.lock()  # B3.6
        if await mmu_interval_read_retry(mni, seq):  # B3.7
            await region.mreg_mutex.unlock()
            await cond_resched(self.rt)
            return -EBUSY
        return 0

    def mshv_region_collect_pfns(
        self,
        region: MshvMemRegion,
        off: int,
        count: int,
        pfns: npt.NDArray[np.uint64],
        do_fault: bool,
    ) -> None:
        """B2.5, the loop of collect_and_map under mreg_mutex: keep what HMM returned.

        Entries without HMM_PFN_VALID are skipped, leaving the slot as it was; the code
        relies on that slot already being MSHV_INVALID_PFN (the review's question, an
        assertion point).
        """
        mreg_pfns = region.mreg_pfns
        assert mreg_pfns is not None
        self._region_range(region, off, count, "mshv_region_collect_pfns")
        check_range(self.rt, "pfns", 0, count, len(pfns), "mshv_region_collect_pfns")
        valid = (pfns & HMM_PFN_VALID) != 0
        keep = self.collect_filter(region, pfns, valid, do_fault)
        slots = mreg_pfns[off : off + count]
        stale = ~keep & (slots != MSHV_INVALID_PFN)
        if np.count_nonzero(stale):
            i = int(np.argmax(stale))
            raise self.rt.fail(
                "assertion",
                f"collect_and_map skipped slot {off + i} whose mreg_pfns entry is not "
                "MSHV_INVALID_PFN (the review's assumption)",
                invariant="S2",
                where="mshv_region_collect_and_map",
                region=region.name,
                gfn=region.start_gfn + off + i,
                pfn=int(slots[i]),
            )
        np.copyto(slots, pfns & ~HMM_PFN_FLAGS, where=keep)

    def collect_filter(
        self,
        region: MshvMemRegion,
        pfns: npt.NDArray[np.uint64],
        valid: npt.NDArray[np.bool_],
        do_fault: bool,
    ) -> npt.NDArray[np.bool_]:
        """Which HMM entries collect_and_map keeps (v1/v2: every VALID one)."""
        return valid

    async def mshv_region_collect_and_map(
        self, region: MshvMemRegion, off: int, count: int, do_fault: bool
    ) -> int:
        """B2: collect the pfns of [off, off+count) and map them into the hypervisor."""
        self._region_range(region, off, count, "mshv_region_collect_and_map")
        pfns = await self.kalloc.vmalloc_array(count, 8)  # B2.1
        if pfns is None:
            return -ENOMEM
        start = region.start_uaddr + off  # B2.2
        end = start + count
        ret = await self.hmm_fault_and_lock_loop(region, start, end, pfns, do_fault)  # B2.3
        if ret:
            return ret  # B2.4: mreg_mutex not held
        self.mshv_region_collect_pfns(region, off, count, pfns, do_fault)  # B2.5
        ret = await self.mshv_region_remap_pfns(region, region.hv_map_flags, off, count)
        self._installed(region, off, count, ret)
        await region.mreg_mutex.unlock()  # B2.7
        return ret

    async def hmm_fault_and_lock_loop(
        self,
        region: MshvMemRegion,
        start: int,
        end: int,
        pfns: npt.NDArray[np.uint64],
        do_fault: bool,
    ) -> int:
        """B2.3: ``do ret = hmm_fault_and_lock(...) while (ret == -EBUSY)``.

        The loop is a retry loop: each -EBUSY is counted.  L1 is "the loop terminates once
        invalidations stop", so only retries that no invalidation of the region explains
        count against ``retry_bound``: a round that hits the region moves its notifier's
        seq by 2 and costs a reader at most two attempts (one whose callback ran after
        read_begin, one that read_begin let through before the callback ran), so the loop
        may retry ``retry_bound`` times plus the distance the seq moved.  Past that it is
        reported as a livelock (L1) with its trace.  (Many vCPUs breaking COW on zero pages
        of one region invalidate each other hundreds of times, and each break is progress.)
        """
        mni = region.mreg_mni
        start_seq = mni.invalidate_seq
        retries = 0
        while True:
            ret = await self.mshv_region_hmm_fault_and_lock(region, start, end, pfns, do_fault)
            if ret != -EBUSY:
                return ret
            retries += 1
            self.rt.count("ebusy_retries")
            if retries > self.retry_bound + max(0, mni.invalidate_seq - start_seq):
                raise self.rt.fail(
                    "liveness",
                    f"the -EBUSY loop around hmm_range_fault on {region.name} retried "
                    f"{retries} times, more than the invalidations of the region explain "
                    f"(its seq moved {mni.invalidate_seq - start_seq}; suspected livelock)",
                    invariant="L1",
                    where="mshv_region_collect_and_map",
                    region=region.name,
                    retries=retries,
                )

    def mshv_region_range_fault(
        self, region: MshvMemRegion, off: int, count: int
    ) -> Awaitable[int]:
        return self.mshv_region_collect_and_map(region, off, count, True)  # a tail call

    async def mshv_region_handle_gfn_fault(self, region: MshvMemRegion, gfn: int) -> bool:
        """B9.5-7: fault in the 512-page window around ``gfn``."""
        off = gfn - region.start_gfn
        off -= off % MSHV_MAP_FAULT_IN_PAGES
        count = min(region.nr_pfns - off, MSHV_MAP_FAULT_IN_PAGES)
        self._region_range(region, off, count, "mshv_region_handle_gfn_fault")
        ret = await self.mshv_region_range_fault(region, off, count)
        if ret:
            self.rt.count("fault_errors")
            self.rt.event("WARN_ONCE", region.name, WARN_RANGE_FAULT, gfn, ret)
        return ret == 0

    def mshv_map_movable_region(self, region: MshvMemRegion) -> Awaitable[int]:
        """Creation (B1.6, after the patch): map what is already populated (a tail call)."""
        return self.mshv_region_collect_and_map(region, 0, region.nr_pfns, False)

    # ------------------------------------------------------------------ the notifier callback

    async def mshv_region_interval_invalidate(
        self, mni: MMUIntervalNotifier, r: MMUNotifierRange, cur_seq: int
    ) -> bool:
        """B5: tear down the SLAT for the invalidated part of the region."""
        region: MshvMemRegion = mni.owner
        self._check_alive(region, "mshv_region_interval_invalidate")
        mstart = max(r.start, region.start_uaddr)  # B5.1, before locking
        mend = min(r.end, region.start_uaddr + region.nr_pfns)
        off = mstart - region.start_uaddr
        count = mend - mstart
        self.rt.check(
            off >= 0 and count > 0 and off + count <= region.nr_pfns,
            f"invalidation [{r.start},{r.end}) clipped to a range outside {region.name}",
            invariant="S8",
            where="mshv_region_interval_invalidate",
        )
        if mmu_notifier_range_blockable(r):  # B5.2
            await region.mreg_mutex.lock()
        elif not await region.mreg_mutex.trylock():
            self.rt.event("WARN", region.name, WARN_NONBLOCK_TRYLOCK_FAILED, 0)
            self.rt.count("invalidate_trylock_failed")
            return False
        await mmu_interval_set_seq(mni, cur_seq)  # B5.3
        ret = await self.mshv_region_remap_pfns(region, HV_MAP_GPA_NO_ACCESS, off, count)
        if ret:  # B5.5
            await region.mreg_mutex.unlock()
            self.rt.event("WARN", region.name, WARN_INVALIDATE_REMAP_FAILED, ret)
            return False
        self.mshv_region_invalidate_pfns(region, off, count)  # B5.6
        await region.mreg_mutex.unlock()  # B5.7
        self.rt.count("invalidate_callbacks")
        return True

    # ------------------------------------------------------------------ pinned and MMIO

    async def mshv_map_pinned_region(self, region: MshvMemRegion) -> int:
        """B8: pin the pages in batches (FOLL_WRITE | FOLL_LONGTERM); on a short pin, unpin
        what was pinned; then map them all with the region's flags."""
        assert region.mreg_pfns is not None
        done = 0
        while done < region.nr_pfns:
            nr = min(region.nr_pfns - done, MSHV_PIN_PAGES_BATCH_SIZE)
            self._region_range(region, done, nr, "mshv_map_pinned_region")
            # GUP fills the slots as it goes; the model hands it a scratch array and copies
            # it into mreg_pfns when it returns (nobody else can see the region yet).
            pages = np.full(nr, MSHV_INVALID_PFN, dtype=np.uint64)
            ret = await pin_user_pages_fast(self.mm, region.start_uaddr + done, nr, pages)
            if ret > 0:
                region.mreg_pfns[done : done + ret] = pages[:ret]
            if ret != nr:
                self.mshv_region_invalidate(region)  # unpins the pages pinned so far
                return ret if ret < 0 else -ENOMEM  # a short pin, as mshv_region_pin says
            done += nr
        return await self.mshv_region_remap_pfns(region, region.hv_map_flags, 0, region.nr_pfns)

    # ------------------------------------------------------------------ helpers (not kernel)

    def _installed(self, region: MshvMemRegion, off: int, count: int, ret: int) -> None:
        """Oracle hook: collect_and_map is about to drop mreg_mutex after mapping."""
        for hook in region.partition.on_installed:
            hook(region, off, count if ret == 0 else 0)

    def _writable_region(self, region: MshvMemRegion) -> bool:
        return bool(region.hv_map_flags & HV_MAP_GPA_WRITABLE)

    @staticmethod
    def _hmm_write(pfns: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        return np.asarray((pfns & HMM_PFN_WRITE) != 0)
