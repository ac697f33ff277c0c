"""The process address space: VMAs, the user page table, ``mmap_lock``, notifier subscriptions.

Addresses are in pages: an hva page number ``vpn`` is ``hva >> 12``.  The page table is a
set of numpy arrays indexed by ``vpn`` (from 0 to ``nr_vpns``):

* ``pte_state``: one of the ``PTE_*`` states below (spec D.2);
* ``pte_pfn``: the pfn for PRESENT and PROTNONE entries (and the page under migration for
  MIGRATION entries);
* ``pte_write``: whether a PRESENT entry is writable;
* ``pmd_trans_huge``: per PMD (``vpn // PTRS_PER_PMD``), whether one PMD entry maps a
  transparent huge page (``pmd_trans_huge``): its 512 PTE slots then hold the folio's pages
  with one state and one write bit.  A change to part of such a PMD splits the mapping first
  (``__split_huge_pmd``: the PTEs then map the same pages, the folio stays large); a change
  of all 512 entries to present or protnone keeps it huge (``change_huge_pmd``), to anything
  else clears it (``zap_huge_pmd``).  HMM reports the mapping level from it, not from the
  folio's order.  hugetlb mappings are not marked here: their level is the VMA's.

The page table changes only inside an invalidation of a covering range, except when a page
fault adds a mapping (none/protnone/swap -> present), as in the kernel.  Every change goes
through :meth:`MM.set_ptes`, which runs the ``on_pte_change`` hooks (the S1 oracle checks
there that no SLAT entry still grants access to the page being unmapped).

Footprint (``rt.access``, for partial-order reduction): the page table is the object
``"pt"`` (written by :meth:`MM.set_ptes`, read by whoever looks at an entry: the HMM walk,
the fault handler, the mutators, the oracles) and the VMA list ``"mm.vmas"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from concsim.engine import Runtime
from concsim.kernel._bounds import check_indices, check_range
from concsim.kernel._pagealloc import PageAllocator
from concsim.kernel._rwsem import RWSem
from concsim.kernel._views import scalar_view
from concsim.kernel._waitqueue import WaitQueue

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PTRS_PER_PMD = 512
#: the orders of a PMD and of a PUD leaf (2 MiB and 1 GiB)
PMD_ORDER = 9
PUD_ORDER = 18

PTE_NONE = 0
PTE_PRESENT = 1
PTE_SWAP = 2
PTE_MIGRATION = 3
PTE_PROTNONE = 4
PTE_SPECIAL = 5
#: make_device_exclusive's entry: not present for the CPU, which faults to restore it; the
#: pfn (and the page reference) are kept.
PTE_DEVICE_EXCLUSIVE = 6
PTE_NAMES = ("none", "present", "swap", "migration", "protnone", "special", "device-exclusive")

VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_HUGETLB = 0x400000
VM_HUGEPAGE = 0x20000000
VM_IO = 0x4000
VM_PFNMAP = 0x400
VM_MIXEDMAP = 0x10000000

PteHook = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], None]
#: (vpn, pfn it mapped before) after a one-PTE change (:meth:`MM.set_pte`), as plain ints.
PteOneHook = Callable[[int, int], None]
#: The footprint object of ``MM.exiting`` (set by exit_mmap, read by ``mmget_not_zero``).
MM_EXITING = "mm.exiting"


@dataclass
class VMA:
    vm_start: int  # first vpn
    vm_end: int  # one past the last vpn
    vm_flags: int
    #: the file a file-backed VMA maps (a page cache, see ``_mm_user.PageCacheFile``), and
    #: the file page its vm_start maps (in pages); None for anonymous memory
    vm_file: object | None = None
    vm_pgoff: int = 0
    #: a hugetlb VMA's page size, ``huge_page_order(hstate_vma(vma))``: PMD_ORDER (2 MiB
    #: pages) or PUD_ORDER (1 GiB)
    vm_huge_order: int = PMD_ORDER

    def __contains__(self, vpn: int) -> bool:
        return self.vm_start <= vpn < self.vm_end


class MM:
    """``struct mm_struct`` reduced to what the race needs."""

    def __init__(self, rt: Runtime, nr_vpns: int, pages: PageAllocator, name: str = "mm") -> None:
        self.rt = rt
        self.name = name
        self.nr_vpns = nr_vpns
        self.pages = pages
        self.mmap_lock = RWSem(rt, f"{name}.mmap_lock", "mmap_lock")
        self.vmas: list[VMA] = []
        self.pte_state = np.zeros(nr_vpns, dtype=np.int8)
        self.pte_pfn = np.zeros(nr_vpns, dtype=np.int64)
        self.pte_write = np.zeros(nr_vpns, dtype=np.bool_)
        #: The same three arrays as memoryviews, for one-PTE reads and writes with plain
        #: ints (a numpy scalar access costs several times as much).
        self.pte_state_mv = scalar_view(self.pte_state)
        self.pte_pfn_mv = scalar_view(self.pte_pfn)
        self.pte_write_mv = scalar_view(self.pte_write)
        self.pmd_trans_huge = np.zeros(nr_vpns // PTRS_PER_PMD + 1, dtype=np.bool_)
        #: how many entries of ``pmd_trans_huge`` are set (0: no PMD to split on a change)
        self.nr_pmd_trans_huge = 0
        # Tasks waiting for a migration entry to be replaced (migration_entry_wait).
        self.migration_wq = WaitQueue(rt, f"{name}.migration_wq")
        # Tasks waiting for a folio lock (folio_lock), and the locked pfns.
        self.folio_wq = WaitQueue(rt, f"{name}.folio_wq")
        self.folio_locked: set[int] = set()
        self.on_pte_change: list[PteHook] = []
        #: Hooks for one-PTE changes (:meth:`set_pte`); a subscriber registers in both
        #: lists (a one-PTE change calls only these, :meth:`set_ptes` only the others).
        self.on_pte_change_one: list[PteOneHook] = []
        # The contents of a swapped-out page, by vpn (its swap slot): see PageAllocator.data.
        self.swap_data = np.zeros(nr_vpns, dtype=np.int64)
        self.notifier_subscriptions: object | None = None  # set by mmu_notifier
        #: mm_users dropped to 0 (``mmget_not_zero`` fails); footprint :data:`MM_EXITING`.
        self.exiting = False

    # ---------------------------------------------------------------- VMAs

    def mmap(
        self,
        start: int,
        npages: int,
        flags: int,
        vm_file: object | None = None,
        vm_pgoff: int = 0,
        *,
        vm_huge_order: int = PMD_ORDER,
    ) -> VMA:
        self.rt.access("mm.vmas")
        vma = VMA(start, start + npages, flags, vm_file, vm_pgoff, vm_huge_order)
        if start < 0 or vma.vm_end > self.nr_vpns:
            raise ValueError(f"mmap of [{start}, {vma.vm_end}) outside the address space")
        for v in self.vmas:
            if v.vm_start < vma.vm_end and vma.vm_start < v.vm_end:
                raise ValueError("mmap over an existing VMA")
        self.vmas.append(vma)
        self.vmas.sort(key=lambda v: v.vm_start)
        return vma

    def vma_lookup(self, vpn: int) -> VMA | None:
        if self.rt.observer is not None:  # the footprint: recorded only for an observer
            self.rt.access("mm.vmas", write=False)
        for v in self.vmas:
            if v.vm_start <= vpn < v.vm_end:  # vpn in v, without the method call
                return v
        return None

    def remove_vmas(self, start: int, end: int) -> None:
        """Drop [start, end) from the VMA list, splitting VMAs that straddle it."""
        self.rt.access("mm.vmas")
        out: list[VMA] = []
        for v in self.vmas:
            if v.vm_end <= start or end <= v.vm_start:
                out.append(v)
                continue
            if v.vm_start < start:
                out.append(replace(v, vm_end=start))
            if end < v.vm_end:
                out.append(replace(v, vm_start=end, vm_pgoff=v.vm_pgoff + end - v.vm_start))
        self.vmas = out

    def set_vma_flags(self, start: int, end: int, set_: int, clear: int) -> None:
        """mprotect: split at the edges and change the flags of [start, end).  A huge PMD
        an edge cuts through is split first (``vma_adjust_trans_huge``)."""
        self.rt.access("mm.vmas")
        if self.nr_pmd_trans_huge:
            for edge in (start, end):
                if edge % PTRS_PER_PMD and edge // PTRS_PER_PMD < len(self.pmd_trans_huge):
                    self.set_pmd_trans_huge(edge, False)
        out: list[VMA] = []
        for v in self.vmas:
            if v.vm_end <= start or end <= v.vm_start:
                out.append(v)
                continue
            lo, hi = max(v.vm_start, start), min(v.vm_end, end)
            if v.vm_start < lo:
                out.append(replace(v, vm_end=lo))
            out.append(
                replace(
                    v,
                    vm_start=lo,
                    vm_end=hi,
                    vm_flags=(v.vm_flags | set_) & ~clear,
                    vm_pgoff=v.vm_pgoff + lo - v.vm_start,
                )
            )
            if hi < v.vm_end:
                out.append(replace(v, vm_start=hi, vm_pgoff=v.vm_pgoff + hi - v.vm_start))
        self.vmas = out

    # ---------------------------------------------------------------- page table

    def set_ptes(
        self,
        vpns: npt.NDArray[np.int64],
        state: int,
        pfns: npt.NDArray[np.int64] | int = 0,
        write: npt.NDArray[np.bool_] | bool = False,
    ) -> None:
        """Change PTEs; hooks then see the changed vpns and the pfns they mapped before."""
        if vpns.size == 0:
            return
        self.rt.access("pt")
        check_indices(self.rt, "the page table", vpns, self.nr_vpns, "set_ptes")
        old = self.pte_pfn[vpns].copy()
        self.pte_state[vpns] = state
        self.pte_pfn[vpns] = pfns
        self.pte_write[vpns] = write
        if self.nr_pmd_trans_huge:
            self._split_changed_pmds(vpns, state)
        if self.rt.tracing:
            n = int(vpns.size)
            pfn = int(self.pte_pfn[vpns[0]]) if n == 1 and state == PTE_PRESENT else -1
            self.rt.event("set_pte", "pt", int(vpns[0]), int(vpns[-1]), n, PTE_NAMES[state], pfn)
        for hook in self.on_pte_change:
            hook(vpns, old)

    def set_pte(self, vpn: int, state: int, pfn: int, write: bool) -> None:
        """:meth:`set_ptes` of one PTE, with plain ints (a page fault's change)."""
        if self.rt.observer is not None:  # the footprint: recorded only for an observer
            self.rt.access("pt")
        if not 0 <= vpn < self.nr_vpns:
            self.check_range(vpn, vpn + 1, "set_pte")
        pfns = self.pte_pfn_mv
        old = pfns[vpn]
        self.pte_state_mv[vpn] = state
        pfns[vpn] = pfn
        self.pte_write_mv[vpn] = write
        if self.nr_pmd_trans_huge and self.pmd_trans_huge[vpn // PTRS_PER_PMD]:
            self.set_pmd_trans_huge(vpn, False)  # one PTE of a huge PMD: split first
        if self.rt.tracing:
            shown = pfn if state == PTE_PRESENT else -1
            self.rt.event("set_pte", "pt", vpn, vpn, 1, PTE_NAMES[state], shown)
        for hook in self.on_pte_change_one:
            hook(vpn, old)

    def set_pmd_trans_huge(self, vpn: int, huge: bool) -> None:
        """Mark the PMD holding ``vpn`` as mapping a THP (or, with ``huge=False``, as a
        page table of PTEs: split or cleared)."""
        self.rt.access("pt")
        p = vpn // PTRS_PER_PMD
        if bool(self.pmd_trans_huge[p]) != huge:
            self.pmd_trans_huge[p] = huge
            self.nr_pmd_trans_huge += 1 if huge else -1

    def _split_changed_pmds(self, vpns: npt.NDArray[np.int64], state: int) -> None:
        """After :meth:`set_ptes`: a huge PMD keeps its level only if all of its entries
        changed, to present or protnone (mprotect, fork's write-protect, NUMA hinting of the
        whole PMD); a partial change split it, any other change cleared it."""
        pmds = vpns // PTRS_PER_PMD
        huge = self.pmd_trans_huge[pmds]
        if not huge.any():
            return
        keeps = state in (PTE_PRESENT, PTE_PROTNONE)
        for p in np.unique(pmds[huge]).tolist():
            if not (keeps and np.count_nonzero(pmds == p) == PTRS_PER_PMD):
                self.set_pmd_trans_huge(p * PTRS_PER_PMD, False)

    def check_range(self, start: int, end: int, caller: str) -> None:
        """S9: [start, end) must be inside the page table (never clipped)."""
        check_range(self.rt, "the page table", start, end, self.nr_vpns, caller)

    def present_mask(self, start: int, end: int) -> npt.NDArray[np.bool_]:
        self.rt.access("pt", write=False)
        self.check_range(start, end, "present_mask")
        return np.asarray(self.pte_state[start:end] == PTE_PRESENT)
