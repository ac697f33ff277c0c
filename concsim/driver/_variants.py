"""The correct variants (spec D.8): before the patch, after it (v1/v2), v3, stateless.

Each is the smallest set of overrides on :class:`MshvDriverBase` (which is the after-patch
code) that gives that revision's behaviour, so the diff between two variants reads like the
kernel patch between them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from concsim.driver._driver import MshvDriverBase
from concsim.driver._region import (
    MSHV_INVALID_PFN,
    MSHV_MAX_PFN_BATCH,
    MSHV_REGION_TYPE_MEM_MOVABLE,
    MshvMemRegion,
)
from concsim.driver._regions import validity_runs
from concsim.driver._tracepoints import WARN_INVALIDATE_REMAP_FAILED
from concsim.kernel._hmm import (
    HMM_PFN_FLAGS,
    HMM_PFN_REQ_FAULT,
    HMM_PFN_REQ_WRITE,
    HMM_PFN_VALID,
)
from concsim.kernel._hv import (
    HV_MAP_GPA_LARGE_PAGE,
    HV_MAP_GPA_NO_ACCESS,
    PAGES_PER_2M,
)
from concsim.kernel._mm import VM_WRITE, VMA
from concsim.kernel._mmu_notifier import (
    MMUIntervalNotifier,
    MMUNotifierRange,
    mmu_interval_set_seq,
    mmu_notifier_range_blockable,
)
from concsim.kernel._sched import cond_resched

ENOMEM = 12


class AfterPatch(MshvDriverBase):
    name = "after-patch"
    summary = "v1/v2 of the patch: creation collects populated pages without faulting"


class BeforePatch(MshvDriverBase):
    """Mainline before the series: creation maps the whole region NO_ACCESS and the fault
    path always asks HMM for write access and writes every slot."""

    name = "before-patch"
    summary = "mainline: creation maps everything NO_ACCESS, populated by faults only"
    creation_walks_range = False

    async def mshv_map_movable_region(self, region: MshvMemRegion) -> int:
        # One NO_ACCESS map of the whole range, without mreg_mutex: the array is all
        # invalid and the region is not listed yet, so nothing can race on the slots.
        return await self.hv.hv_call_map_ram_pfns(
            region.start_gfn, region.nr_pfns, HV_MAP_GPA_NO_ACCESS, None
        )

    def hmm_default_flags(self, region: MshvMemRegion, vma: VMA, do_fault: bool) -> np.uint64:
        return np.uint64(HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)

    async def mshv_region_collect_and_map(
        self, region: MshvMemRegion, off: int, count: int, do_fault: bool
    ) -> int:
        # mshv_region_range_fault: kmalloc_array, every slot written unconditionally.
        self._region_range(region, off, count, "mshv_region_collect_and_map")
        pfns = await self.kalloc.kmalloc_array(count, 8)
        if pfns is None:
            return -ENOMEM
        start = region.start_uaddr + off
        ret = await self.hmm_fault_and_lock_loop(region, start, start + count, pfns, True)
        if ret:
            return ret
        assert region.mreg_pfns is not None
        region.mreg_pfns[off : off + count] = pfns & ~HMM_PFN_FLAGS
        ret = await self.mshv_region_remap_pfns(region, region.hv_map_flags, off, count)
        self._installed(region, off, count, ret)
        await region.mreg_mutex.unlock()
        return ret


class V3(MshvDriverBase):
    """v3 (09/11): creation in 512-pfn chunks with cond_resched between them, REQ_WRITE only
    for writable regions, and present-but-read-only pages skipped at creation (COW)."""

    name = "v3"
    summary = "v3: creation in 512-pfn chunks, COW/zero pages left NO_ACCESS at creation"

    async def mshv_map_movable_region(self, region: MshvMemRegion) -> int:
        off = 0
        while off < region.nr_pfns:
            count = min(MSHV_MAX_PFN_BATCH, region.nr_pfns - off)
            ret = await self.mshv_region_collect_and_map(region, off, count, False)
            if ret:
                return ret
            off += count
            if off < region.nr_pfns:
                await cond_resched(self.rt, region.name)
        return 0

    def hmm_default_flags(self, region: MshvMemRegion, vma: VMA, do_fault: bool) -> np.uint64:
        if not do_fault:
            return np.uint64(0)
        flags = HMM_PFN_REQ_FAULT
        if vma.vm_flags & VM_WRITE and self._writable_region(region):
            flags |= HMM_PFN_REQ_WRITE
        return np.uint64(flags)

    def collect_filter(
        self,
        region: MshvMemRegion,
        pfns: npt.NDArray[np.uint64],
        valid: npt.NDArray[np.bool_],
        do_fault: bool,
    ) -> npt.NDArray[np.bool_]:
        if not do_fault and self._writable_region(region):
            return valid & self._hmm_write(pfns)
        return valid


class Stateless(V3):
    """The later revision: movable regions keep no mreg_pfns; collect_and_map stamps
    skipped slots MSHV_INVALID_PFN in its temporary array and maps from it, and the
    invalidate callback remaps the whole clipped range NO_ACCESS (head, 2 MiB-aligned
    middle as large pages, tail)."""

    name = "stateless"
    summary = "later revision: no mreg_pfns for movable regions, skipped slots stamped invalid"
    has_pfns_array = False

    async def mshv_region_movable_init(self, region: MshvMemRegion) -> bool:
        ok = await super().mshv_region_movable_init(region)
        if ok:
            region.mreg_pfns = None  # the array exists only for pinned regions
        return ok

    async def mshv_region_collect_and_map(
        self, region: MshvMemRegion, off: int, count: int, do_fault: bool
    ) -> int:
        if region.mreg_type != MSHV_REGION_TYPE_MEM_MOVABLE and region.mreg_pfns is not None:
            return await super().mshv_region_collect_and_map(region, off, count, do_fault)
        self._region_range(region, off, count, "mshv_region_collect_and_map")
        pfns = await self.kalloc.vmalloc_array(count, 8)
        if pfns is None:
            return -ENOMEM
        start = region.start_uaddr + off
        ret = await self.hmm_fault_and_lock_loop(region, start, start + count, pfns, do_fault)
        if ret:
            return ret
        valid = (pfns & HMM_PFN_VALID) != 0
        keep = self.collect_filter(region, pfns, valid, do_fault)
        tmp = np.where(keep, pfns & ~HMM_PFN_FLAGS, MSHV_INVALID_PFN).astype(np.uint64)
        ret = await self._remap_from(region, region.hv_map_flags, off, tmp)
        self._installed(region, off, count, ret)
        await region.mreg_mutex.unlock()
        return ret

    async def _remap_from(
        self, region: MshvMemRegion, flags: int, off: int, tmp: npt.NDArray[np.uint64]
    ) -> int:
        """remap_pfns with the temporary array: runs of equal validity, holes NO_ACCESS."""
        self._region_range(region, off, len(tmp), "_remap_from")
        valid = tmp != MSHV_INVALID_PFN
        for a, b in validity_runs(valid):
            f = flags if valid[a] else HV_MAP_GPA_NO_ACCESS
            ret = await self.hv.hv_call_map_ram_pfns(
                region.start_gfn + off + a, b - a, f, tmp[a:b].astype(np.int64)
            )
            if ret:
                return ret
        return 0

    async def mshv_region_map_no_access(self, region: MshvMemRegion, off: int, count: int) -> int:
        self._region_range(region, off, count, "mshv_region_map_no_access")
        gfn = region.start_gfn + off
        end = gfn + count
        mid_a = min(end, -(-gfn // PAGES_PER_2M) * PAGES_PER_2M)
        mid_b = max(mid_a, end - end % PAGES_PER_2M)
        for a, b, large in ((gfn, mid_a, False), (mid_a, mid_b, True), (mid_b, end, False)):
            if a < b:
                f = HV_MAP_GPA_NO_ACCESS | (HV_MAP_GPA_LARGE_PAGE if large else 0)
                ret = await self.hv.hv_call_map_ram_pfns(a, b - a, f, None)
                if ret:
                    return ret
        return 0

    async def mshv_region_interval_invalidate(
        self, mni: MMUIntervalNotifier, r: MMUNotifierRange, cur_seq: int
    ) -> bool:
        region: MshvMemRegion = mni.owner
        self._check_alive(region, "mshv_region_interval_invalidate")
        mstart = max(r.start, region.start_uaddr)
        mend = min(r.end, region.start_uaddr + region.nr_pfns)
        off = mstart - region.start_uaddr
        count = mend - mstart
        if mmu_notifier_range_blockable(r):
            await region.mreg_mutex.lock()
        elif not await region.mreg_mutex.trylock():
            self.rt.count("invalidate_trylock_failed")
            return False
        await mmu_interval_set_seq(mni, cur_seq)
        ret = await self.mshv_region_map_no_access(region, off, count)
        await region.mreg_mutex.unlock()
        if ret:
            self.rt.event("WARN", region.name, WARN_INVALIDATE_REMAP_FAILED, ret)
            return False
        self.rt.count("invalidate_callbacks")
        return True

    async def mshv_region_unmap(self, region: MshvMemRegion) -> int:
        if region.mreg_pfns is not None:
            return await super().mshv_region_unmap(region)
        return await self.hv.hv_call_unmap_gpa_pages(region.start_gfn, region.nr_pfns, 0)


CORRECT_VARIANTS: dict[str, type[MshvDriverBase]] = {
    v.name: v for v in (BeforePatch, AfterPatch, V3, Stateless)
}
