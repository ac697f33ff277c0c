"""The mutant catalog (spec section E): deliberately broken variants concsim must catch.

Each mutant is the smallest change to a correct variant: it overrides one method (two for
``mutex-init-after-insert``, whose bug *is* moving a line from one function to another),
usually as a textual patch of the correct method (see ``_patching``), so its definition
reads like the kernel patch that would introduce the bug.  ``catch_params`` say on which
parameterisation of ``catch_scenario`` the bug is reachable, and ``expect_kinds`` /
``expect_invariants`` what the checker must report.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from concsim.driver._driver import MshvDriverBase
from concsim.driver._patching import patched
from concsim.driver._region import MshvMemRegion
from concsim.driver._regions import MshvRegions
from concsim.driver._root_main import MshvRootMain
from concsim.driver._variants import V3, AfterPatch
from concsim.kernel._hmm import HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE
from concsim.kernel._mm import VMA

# A small world in which an invalidation's NO_ACCESS remap can fail on its last call (a
# hole) after the page before it was torn down: the kernel then WARNs and the slot keeps its
# stale pfn (B5.5), without any page being left mapped.
_STALE_SLOT_WORLD: dict[str, object] = {
    "pages": 16,
    "vcpus": 1,
    "accesses": 2,
    "events": "madvise",
    "hv_fail": "holes",
}


class Mutant(MshvDriverBase):
    mutant = True


class NoReadRetry(Mutant, AfterPatch):
    name = "no-read-retry"
    summary = "B3.7 removed: no mmu_interval_read_retry after taking mreg_mutex"
    expect_kinds = ("safety",)
    expect_invariants = ("S1",)

    mshv_region_hmm_fault_and_lock = patched(
        MshvRegions.mshv_region_hmm_fault_and_lock,
        ("if await mmu_interval_read_retry(mni, seq):  # B3.7", "if False:  # B3.7 removed"),
    )


class RetryBeforeLock(Mutant, AfterPatch):
    name = "retry-before-lock"
    summary = "the read_retry check done before mutex_lock instead of after"
    expect_kinds = ("safety",)
    expect_invariants = ("S1",)

    mshv_region_hmm_fault_and_lock = patched(
        MshvRegions.mshv_region_hmm_fault_and_lock,
        (
            "    await region.mreg_mutex.lock()  # B3.6\n"
            "    if await mmu_interval_read_retry(mni, seq):  # B3.7\n"
            "        await region.mreg_mutex.unlock()\n"
            "        await cond_resched(self.rt)\n"
            "        return -EBUSY\n",
            "    if await mmu_interval_read_retry(mni, seq):  # checked too early\n"
            "        await cond_resched(self.rt)\n"
            "        return -EBUSY\n"
            "    await region.mreg_mutex.lock()\n",
        ),
    )


class ProcessPfnsTailDrop(Mutant, AfterPatch):
    name = "process-pfns-tail-drop"
    summary = (
        "(real, v2) process_range's final run stops after its first stride: its tail is "
        "never mapped nor torn down"
    )
    expect_kinds = ("liveness", "safety")
    expect_invariants = ("L3", "S1", "S2")
    catch_params: ClassVar[dict[str, object]] = {"populated": 1.0}

    mshv_region_process_range = patched(
        MshvRegions.mshv_region_process_range,
        (
            "        if valid[a]:\n",
            "        if valid[a] and b == count:  # the final process_chunk after the loop\n"
            "            ret = await self.mshv_region_process_pfns(region, off + a, 1, handler)\n"
            "        elif valid[a]:\n",
        ),
    )


class MapFailVfree(Mutant, AfterPatch):
    name = "map-fail-vfree"
    summary = "(real) creation's error path vfree()s the region without removing its notifier"
    expect_kinds = ("safety",)
    expect_invariants = ("S5",)
    catch_params: ClassVar[dict[str, object]] = {"alloc_fail": True, "events": "migrate"}

    async def mshv_map_user_memory_errout(self, region: MshvMemRegion) -> None:
        self._vfree(region)


class NoInterceptAccessCheck(Mutant, AfterPatch):
    name = "no-intercept-access-check"
    summary = (
        "(real) B9.3 removed: write/exec intercepts on regions without that permission are handled"
    )
    expect_kinds = ("liveness",)
    expect_invariants = ("L3",)
    catch_params: ClassVar[dict[str, object]] = {
        "writable": False,
        "events": "migrate,reclaim,oom",
    }

    def mshv_intercept_access_allowed(self, region: MshvMemRegion, access: int) -> bool:
        return True


class AlwaysReqWrite(Mutant, AfterPatch):
    name = "always-req-write"
    summary = "(real) HMM_PFN_REQ_WRITE requested whatever VM_WRITE says"
    expect_kinds = ("liveness", "safety")
    expect_invariants = ("L3", "S7")
    catch_params: ClassVar[dict[str, object]] = {"writable": False, "vma_prot": "ro"}

    def hmm_default_flags(self, region: MshvMemRegion, vma: VMA, do_fault: bool) -> np.uint64:
        if not do_fault:
            return np.uint64(0)
        return np.uint64(HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)


class RemapFailNoUnlock(Mutant, AfterPatch):
    name = "remap-fail-no-unlock"
    summary = (
        "(real, original movable patch) the invalidate callback returns on remap failure "
        "without mutex_unlock"
    )
    expect_kinds = ("deadlock",)
    expect_invariants = ("L4",)
    catch_params = _STALE_SLOT_WORLD

    mshv_region_interval_invalidate = patched(
        MshvRegions.mshv_region_interval_invalidate,
        (
            "    if ret:  # B5.5\n        await region.mreg_mutex.unlock()\n",
            "    if ret:  # B5.5, jumping to out_fail\n",
        ),
    )


class CreateMapsCowWritable(Mutant, V3):
    name = "create-maps-cow-writable"
    summary = "creation maps present read-only pages (zero page, COW) writable"
    expect_kinds = ("safety",)
    expect_invariants = ("S7",)
    catch_params: ClassVar[dict[str, object]] = {"zero_pages": 4}

    # v3's COW skip reverted: keep every VALID entry, as v1/v2 do.
    collect_filter = MshvRegions.collect_filter


class SkipKeepsStalePfn(Mutant, AfterPatch):
    name = "skip-keeps-stale-pfn"
    summary = (
        "the review's question made real: the fault path first collects without "
        "faulting, so a slot left stale by a failed invalidate remap is skipped and remapped"
    )
    expect_kinds = ("assertion", "safety")
    expect_invariants = ("S2", "S1")
    catch_params = _STALE_SLOT_WORLD

    mshv_region_handle_gfn_fault = patched(
        MshvRegions.mshv_region_handle_gfn_fault,
        (
            "    ret = await self.mshv_region_range_fault(region, off, count)\n",
            "    # map what is already present first, fault only if that was not enough\n"
            "    ret = await self.mshv_region_collect_and_map(region, off, count, False)\n"
            "    if ret == 0 and not self.hv.slat.grants(gfn):\n"
            "        ret = await self.mshv_region_range_fault(region, off, count)\n",
        ),
    )


class NonblockMutexLock(Mutant, AfterPatch):
    name = "nonblock-mutex-lock"
    summary = "the callback takes mutex_lock even when the range is not blockable"
    expect_kinds = ("sleep-in-atomic",)
    expect_invariants = ("S6",)

    mshv_region_interval_invalidate = patched(
        MshvRegions.mshv_region_interval_invalidate,
        (
            "    if mmu_notifier_range_blockable(r):  # B5.2\n",
            "    if True:  # mmu_notifier_range_blockable() ignored\n",
        ),
    )


class MutexInitAfterInsert(Mutant, AfterPatch):
    name = "mutex-init-after-insert"
    summary = "(mainline..v3 order) mreg_mutex initialised after the notifier is inserted"
    expect_kinds = ("lock-misuse",)
    expect_invariants = ("S3",)

    mshv_region_create = patched(
        MshvRegions.mshv_region_create,
        ("    await region.mreg_mutex.mutex_init()\n", ""),
    )
    mshv_region_movable_init = patched(
        MshvRegions.mshv_region_movable_init,
        (
            "    return ret == 0\n",
            "    await region.mreg_mutex.mutex_init()\n    return ret == 0\n",
        ),
    )


class GfnOverlapOverflow(Mutant, AfterPatch):
    name = "gfn-overlap-overflow"
    summary = "(real) overlap check without the overflow check on start_gfn + nr_pages"
    expect_kinds = ("safety",)
    expect_invariants = ("gfn-overlap",)
    catch_params: ClassVar[dict[str, object]] = {"overflow_region": True}

    check_add_overflow = patched(
        MshvRootMain.check_add_overflow,
        ("    return a + b > U64_MAX\n", "    return False\n"),
    )


class PinnedUnpinBeforeUnmap(Mutant, AfterPatch):
    name = "pinned-unpin-before-unmap"
    summary = (
        "(beyond the catalog) destroy unpins a pinned region's pages before unmapping them "
        "from the SLAT"
    )
    expect_kinds = ("safety",)
    expect_invariants = ("S1",)
    # A page the process has already unmapped is held by the pin alone: unpinning it first
    # frees it while the SLAT still maps it.
    catch_params: ClassVar[dict[str, object]] = {
        "pinned": True,
        "destroy": True,
        "events": "munmap",
    }

    mshv_region_destroy = patched(
        MshvRegions.mshv_region_destroy,
        (
            "    await self.mshv_region_unmap(region)\n    self.mshv_region_invalidate(region)\n",
            "    self.mshv_region_invalidate(region)\n    await self.mshv_region_unmap(region)\n",
        ),
    )


MUTANTS: dict[str, type[MshvDriverBase]] = {
    m.name: m
    for m in (
        NoReadRetry,
        RetryBeforeLock,
        ProcessPfnsTailDrop,
        MapFailVfree,
        NoInterceptAccessCheck,
        AlwaysReqWrite,
        RemapFailNoUnlock,
        CreateMapsCowWritable,
        SkipKeepsStalePfn,
        NonblockMutexLock,
        MutexInitAfterInsert,
        GfnOverlapOverflow,
        PinnedUnpinBeforeUnmap,
    )
}
