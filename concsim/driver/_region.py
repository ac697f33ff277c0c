"""The driver's objects: ``struct mshv_mem_region`` and the partition's region list.

Field names follow drivers/hv/mshv_root.h as changed by the series ("mshv: Convert
mreg_pages to PFNs" renames ``nr_pages`` to ``nr_pfns`` and ``mreg_pages[]`` to
``mreg_pfns[]``).  Addresses are in pages: ``start_uaddr`` is the first hva page number.

Footprint (``rt.access``, for partial-order reduction): every use of ``region.mreg_pfns``
counts as a write of ``"<region>.mreg_pfns"`` (the attribute reports it, so a variant's
or a mutant's code is covered too; a reference kept across a scheduling point is not, so
the driver never keeps one); the region's refcount is ``"<region>.kref"``; the set of live
regions (creation, ``mreg_type``, the free) is ``"regions"``; the partition's list
``"pt_mem_regions"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from concsim.engine import Runtime
from concsim.kernel import Mutex, SpinLock
from concsim.kernel._mmu_notifier import MMUIntervalNotifier

MSHV_INVALID_PFN = np.uint64((1 << 64) - 1)
U64_MAX = (1 << 64) - 1

MSHV_REGION_TYPE_MEM_PINNED = "MEM_PINNED"
MSHV_REGION_TYPE_MEM_MOVABLE = "MEM_MOVABLE"
MSHV_REGION_TYPE_MMIO = "MMIO"

#: Fault-in window of one GPA intercept (PTRS_PER_PMD).
MSHV_MAP_FAULT_IN_PAGES = 512
#: v3's creation chunk (SZ_2M / PAGE_SIZE).
MSHV_MAX_PFN_BATCH = 512

# MSHV_SET_MEM flags (uapi)
MSHV_SET_MEM_BIT_WRITABLE = 0
MSHV_SET_MEM_BIT_EXECUTABLE = 1
MSHV_SET_MEM_BIT_UNMAP = 2

HV_INTERCEPT_ACCESS_READ = 0
HV_INTERCEPT_ACCESS_WRITE = 1
HV_INTERCEPT_ACCESS_EXECUTE = 2
ACCESS_NAMES = ("read", "write", "execute")


@dataclass
class MshvUserMemRegion:
    """``struct mshv_user_mem_region`` (the MSHV_SET_GUEST_MEMORY argument), in pages."""

    guest_pfn: int
    size: int  # pages
    userspace_addr: int  # first hva page
    flags: int


class MshvMemRegion:
    """``struct mshv_mem_region``."""

    def __init__(
        self,
        rt: Runtime,
        name: str,
        nr_pfns: int,
        start_gfn: int,
        start_uaddr: int,
        hv_map_flags: int,
        partition: MshvPartition,
    ) -> None:
        self.name = name
        self.nr_pfns = nr_pfns
        self.start_gfn = start_gfn
        self.start_uaddr = start_uaddr
        self.hv_map_flags = hv_map_flags
        self.partition = partition
        self.mreg_type = MSHV_REGION_TYPE_MEM_PINNED
        self.mreg_refcount = 1
        self.mreg_mni = MMUIntervalNotifier(f"{name}.mreg_mni")
        self.mreg_mni.owner = self
        # Not initialised until mshv_region_create (or, in mainline, movable_init) says so.
        self.mreg_mutex = Mutex(rt, f"{name}.mreg_mutex", "mreg_mutex", initialized=False)
        self._rt = rt
        self._pfns_obj = f"{name}.mreg_pfns"
        self._mreg_pfns: npt.NDArray[np.uint64] | None = None
        self.mreg_mmio_pfn = 0
        # Model bookkeeping (not kernel fields): lifetime and list membership.
        self.freed = False
        self.listed = False

    @property
    def mreg_pfns(self) -> npt.NDArray[np.uint64] | None:
        rt = self._rt
        if rt.observer is not None:  # the footprint: recorded only for an observer
            rt.access(self._pfns_obj)
        return self._mreg_pfns

    @mreg_pfns.setter
    def mreg_pfns(self, value: npt.NDArray[np.uint64] | None) -> None:
        self._rt.access(self._pfns_obj)
        self._mreg_pfns = value

    def gfn_of(self, vpn: int) -> int:
        return self.start_gfn + (vpn - self.start_uaddr)

    def __repr__(self) -> str:
        return f"<region {self.name} gfn {self.start_gfn}+{self.nr_pfns} uaddr {self.start_uaddr}>"


RegionHook = Callable[[MshvMemRegion], None]


class MshvPartition:
    """``struct mshv_partition``: the region list and its lock, the ioctl mutex."""

    def __init__(self, rt: Runtime, pt_id: int = 1, *, encrypted: bool = False) -> None:
        self.rt = rt
        self.pt_id = pt_id
        self.pt_mem_regions: list[MshvMemRegion] = []
        self.pt_mem_regions_lock = SpinLock(rt, "pt_mem_regions_lock")
        self.pt_mutex = Mutex(rt, "pt_mutex")
        self.encrypted = encrypted
        # Every region ever created, for the oracles (a freed one stays here, marked).
        self.all_regions: list[MshvMemRegion] = []
        # Oracle hooks: a region was created / is being freed / a driver dropped mreg_mutex.
        self.on_region_created: list[RegionHook] = []
        self.on_region_free: list[RegionHook] = []
        self.on_installed: list[Callable[[MshvMemRegion, int, int], None]] = []
