"""``handle_mm_fault`` for one page, as HMM's fault path drives it (FAULT_FLAG_REMOTE).

* none: a read fault on an anonymous mapping maps the shared zero page read-only; a write
  fault allocates a fresh page, writable.  In a THP-enabled VMA (``VM_HUGEPAGE``) a write
  fault on a PMD that is wholly inside the VMA and wholly empty maps a 2 MiB folio (512
  pages of order 9); a read fault there still maps the 4 KiB zero page (the huge zero page
  is not modelled).  A hugetlb VMA (``VM_HUGETLB``) is always faulted a whole huge page at a
  time, read faults included (no zero page), read-only unless the fault writes.  A
  file-backed VMA (shmem included) maps the page-cache page: shared, writable only once
  written (write-notify); private, read-only, a write fault copying it (COW).
* protnone (NUMA hint): the mapping is restored (adding access needs no invalidation); a
  protnone THP is restored whole, PMD-mapped (``do_huge_pmd_numa_page``).
* swap: the page is read back into a fresh page.
* present but read-only, write fault, shared VMA: the PTE is made writable in place
  (``wp_page_shared``: adding access needs no invalidation).
* present but read-only, write fault, private VMA: copy-on-write break.  The old mapping
  is replaced, so it is an invalidation: ``invalidate_range_start(CLEAR)`` on that page runs every
  notifier covering it - including the region of the task that is faulting - then the
  PTE points at the copy and the old page loses a reference.

Each fault is one atomic step of the model (it holds the PTE lock throughout), except the
COW break, whose invalidation has its own steps.

``migration_entry_wait`` sleeps until a page under migration is mapped again, and
``pin_user_pages_fast`` is GUP's long-term pin (FOLL_WRITE | FOLL_LONGTERM) built on both:
fault each page in for write, wait out a migration, then pin what the PTE maps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from concsim.kernel._bounds import check_range
from concsim.kernel._mm import (
    MM,
    PMD_ORDER,
    PTE_DEVICE_EXCLUSIVE,
    PTE_MIGRATION,
    PTE_NONE,
    PTE_PRESENT,
    PTE_PROTNONE,
    PTE_SWAP,
    PTRS_PER_PMD,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_SHARED,
    VM_WRITE,
    VMA,
)
from concsim.kernel._mmu_notifier import (
    MMU_NOTIFY_CLEAR,
    MMUNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
)
from concsim.kernel._pagealloc import PAGE_DATA, ZERO_PFN
from concsim.kernel._pagecache import PageCacheFile

EFAULT = 14


async def handle_mm_fault(mm: MM, vma: VMA, vpn: int, *, write: bool) -> int:
    rt = mm.rt
    if not 0 <= vpn < mm.nr_vpns:
        mm.check_range(vpn, vpn + 1, "handle_mm_fault")
    await rt.point("handle_mm_fault", "pt", vpn, "write" if write else "read")
    rt.count("mm_faults")
    state = mm.pte_state_mv[vpn]
    vm_flags = vma.vm_flags
    may_write = bool(vm_flags & VM_WRITE)
    if state == PTE_NONE:  # the common fault first (the states are exclusive)
        if vm_flags & VM_HUGETLB:
            return _hugetlb_no_page(mm, vma, vpn, write)
        if vma.vm_file is not None and isinstance(vma.vm_file, PageCacheFile):
            return _do_file_fault(mm, vma, vpn, write, vma.vm_file)
        if write and vm_flags & VM_HUGEPAGE:
            ret = _do_huge_pmd_anonymous_page(mm, vma, vpn)
            if ret <= 0:
                return ret  # mapped (0) or out of memory; 1: fall back to a 4 KiB page
        if not write:
            mm.pages.get_page(ZERO_PFN)
            mm.set_pte(vpn, PTE_PRESENT, ZERO_PFN, False)
            return 0
        pfn = mm.pages.alloc_page()
        if pfn < 0:
            return -EFAULT
        mm.set_pte(vpn, PTE_PRESENT, pfn, may_write)
        return 0
    if state == PTE_DEVICE_EXCLUSIVE:
        return await remove_device_exclusive_entry(mm, vma, vpn)
    if state == PTE_PROTNONE:
        a = vpn - vpn % PTRS_PER_PMD
        if mm.pmd_trans_huge[a // PTRS_PER_PMD]:
            # do_huge_pmd_numa_page: the whole PMD is restored, still huge.
            idx = np.arange(a, a + PTRS_PER_PMD, dtype=np.int64)
            mm.set_ptes(idx, PTE_PRESENT, mm.pte_pfn[idx].copy(), mm.pte_write[idx].copy())
            return 0
        mm.set_pte(vpn, PTE_PRESENT, mm.pte_pfn_mv[vpn], bool(mm.pte_write_mv[vpn]))
        return 0
    if state == PTE_SWAP:
        pfn = mm.pages.alloc_page()
        if pfn < 0:
            return -EFAULT
        mm.rt.access(PAGE_DATA)
        mm.pages.data[pfn] = mm.swap_data[vpn]  # swap_readpage
        mm.set_pte(vpn, PTE_PRESENT, pfn, may_write and write)
        return 0
    if state == PTE_PRESENT and write and not mm.pte_write_mv[vpn] and vma.vm_flags & VM_SHARED:
        mm.set_pte(vpn, PTE_PRESENT, mm.pte_pfn_mv[vpn], may_write)  # wp_page_shared
        return 0
    if state == PTE_PRESENT and write and not mm.pte_write_mv[vpn]:
        return await _wp_page_copy(mm, vpn, may_write)
    return 0


async def _wp_page_copy(mm: MM, vpn: int, may_write: bool) -> int:
    """The COW break: a new page, an invalidation of the old mapping, then the swap."""
    rt = mm.rt
    rt.count("cow_breaks")
    new = mm.pages.alloc_page()
    if new < 0:
        return -EFAULT
    orig = (int(mm.pte_state[vpn]), int(mm.pte_pfn[vpn]), bool(mm.pte_write[vpn]))
    r = MMUNotifierRange(mm, vpn, vpn + 1, MMU_NOTIFY_CLEAR)
    await mmu_notifier_invalidate_range_start(r)
    await rt.point("wp_page_copy", "pt", vpn)
    now = (int(mm.pte_state[vpn]), int(mm.pte_pfn[vpn]), bool(mm.pte_write[vpn]))
    if now != orig:
        # pte_same() failed under the PTE lock: someone (reclaim, migration) changed the
        # entry meanwhile.  Drop the copy; the caller retries the fault from the new state.
        mm.pages.put_page(new)
        await mmu_notifier_invalidate_range_end(r)
        return 0
    mm.pages.copy_highpage(new, orig[1])
    mm.set_pte(vpn, PTE_PRESENT, new, may_write)
    mm.pages.put_page(orig[1])
    await mmu_notifier_invalidate_range_end(r)
    return 0


def _huge_range(vma: VMA, vpn: int, order: int = PMD_ORDER) -> tuple[int, int] | None:
    """The ``2**order``-aligned range around ``vpn`` if it lies wholly inside ``vma``."""
    size = 1 << order
    a = vpn - vpn % size
    b = a + size
    if a < vma.vm_start or b > vma.vm_end:
        return None
    return a, b


def _map_huge_folio(mm: MM, a: int, b: int, writable: bool, *, thp: bool) -> int:
    """Allocate a folio of ``b - a`` pages (2 MiB, or a 1 GiB hugetlb page) and map it over
    [a, b): 0, or -EFAULT on OOM.  A THP is mapped by the PMD entry itself (``set_pmd_at``:
    ``pmd_trans_huge``); a hugetlb page's level is its VMA's (``hstate_vma``)."""
    if mm.pages.nr_free() < b - a:
        return -EFAULT
    pfns = mm.pages.alloc_pages_bulk(b - a)
    mm.pages.order[pfns] = (b - a).bit_length() - 1
    mm.set_ptes(np.arange(a, b, dtype=np.int64), PTE_PRESENT, pfns, writable)
    if thp:
        mm.set_pmd_trans_huge(a, True)
    mm.rt.count("thp_faults")
    return 0


def _do_huge_pmd_anonymous_page(mm: MM, vma: VMA, vpn: int) -> int:
    """A write fault in a THP-enabled VMA: a whole PMD if it fits and is empty, else 1."""
    rng = _huge_range(vma, vpn)
    if rng is None or np.count_nonzero(mm.pte_state[rng[0] : rng[1]] != PTE_NONE):
        return 1
    return _map_huge_folio(mm, rng[0], rng[1], bool(vma.vm_flags & VM_WRITE), thp=True)


def _hugetlb_no_page(mm: MM, vma: VMA, vpn: int, write: bool) -> int:
    """hugetlb: the whole huge page (of the VMA's size), read-only unless the fault writes."""
    rng = _huge_range(vma, vpn, vma.vm_huge_order)
    if rng is None:
        return -EFAULT  # a hugetlb VMA is always huge-page aligned; this is a setup error
    return _map_huge_folio(mm, rng[0], rng[1], write and bool(vma.vm_flags & VM_WRITE), thp=False)


def _do_file_fault(mm: MM, vma: VMA, vpn: int, write: bool, f: PageCacheFile) -> int:
    """A fault on a file-backed VMA (shmem or a regular file)."""
    idx = np.array([vpn], dtype=np.int64)
    pcpfn = f.find_or_create_page(vma.vm_pgoff + vpn - vma.vm_start)
    if pcpfn < 0:
        return -EFAULT
    may_write = bool(vma.vm_flags & VM_WRITE)
    if vma.vm_flags & VM_SHARED or not write:
        # do_shared_fault / do_read_fault: map the page-cache page itself.
        mm.pages.get_page(pcpfn)
        shared_write = bool(vma.vm_flags & VM_SHARED) and write and may_write
        mm.set_ptes(idx, PTE_PRESENT, pcpfn, shared_write)
        return 0
    # do_cow_fault: a private copy of the file page.
    new = mm.pages.alloc_page()
    if new < 0:
        return -EFAULT
    mm.pages.copy_highpage(new, pcpfn)
    mm.set_ptes(idx, PTE_PRESENT, new, may_write)
    return 0


MMU_NOTIFY_EXCLUSIVE = "EXCLUSIVE"


async def folio_lock(mm: MM, pfn: int) -> None:
    """Take the folio lock of ``pfn`` (sleeping while another task holds it)."""
    await mm.folio_wq.wait_event(lambda: pfn not in mm.folio_locked, "folio_lock")
    mm.rt.access(mm.folio_wq.name)  # taking it is a write (its wait point only reads)
    mm.folio_locked.add(pfn)


def folio_unlock(mm: MM, pfn: int) -> None:
    mm.folio_locked.discard(pfn)
    mm.folio_wq._wake()  # a plain call (its callers are not async): no scheduling point


async def remove_device_exclusive_entry(mm: MM, vma: VMA, vpn: int) -> int:
    """A CPU fault on a device-exclusive entry (do_swap_page): under the folio lock, an
    MMU_NOTIFY_EXCLUSIVE invalidation of the page, then the ordinary PTE is restored."""
    rt = mm.rt
    rt.access("pt", write=False)
    pfn = int(mm.pte_pfn[vpn])
    await folio_lock(mm, pfn)
    r = MMUNotifierRange(mm, vpn, vpn + 1, MMU_NOTIFY_EXCLUSIVE)
    await mmu_notifier_invalidate_range_start(r)
    await rt.point("restore_exclusive_pte", "pt", vpn)
    if int(mm.pte_state[vpn]) == PTE_DEVICE_EXCLUSIVE and int(mm.pte_pfn[vpn]) == pfn:
        mm.set_pte(vpn, PTE_PRESENT, pfn, bool(vma.vm_flags & VM_WRITE))
    await mmu_notifier_invalidate_range_end(r)
    folio_unlock(mm, pfn)
    return 0


async def migration_entry_wait(mm: MM, vpn: int) -> None:
    """Sleep until the migration entry at ``vpn`` is replaced (remove_migration_ptes)."""
    mm.rt.count("migration_waits")
    await mm.migration_wq.wait_event(
        lambda: int(mm.pte_state[vpn]) != PTE_MIGRATION, "migration_entry_wait", reads=("pt",)
    )


async def pin_user_pages_fast(mm: MM, start: int, nr: int, pages: npt.NDArray[np.uint64]) -> int:
    """Pin ``nr`` pages from ``start`` for write, long-term; their pfns go to ``pages``.

    Returns how many were pinned (a short count stops at the first page that cannot be:
    no VMA, a VMA without VM_WRITE, a failed fault), or -EFAULT if none was.  Each page is
    faulted in for write until its PTE is present and writable (a migration entry is waited
    out), then pinned in the same step as that check, as GUP-fast's recheck makes it.
    """
    mm.check_range(start, start + nr, "pin_user_pages_fast")
    check_range(mm.rt, "the pinned pages array", 0, nr, len(pages), "pin_user_pages_fast")
    await mm.mmap_lock.down_read()
    try:
        for i in range(nr):
            vpn = start + i
            vma = mm.vma_lookup(vpn)
            if vma is None or not vma.vm_flags & VM_WRITE:
                return i or -EFAULT
            mm.rt.access("pt", write=False)
            while not (int(mm.pte_state[vpn]) == PTE_PRESENT and mm.pte_write[vpn]):
                if int(mm.pte_state[vpn]) == PTE_MIGRATION:
                    await migration_entry_wait(mm, vpn)
                    continue
                ret = await handle_mm_fault(mm, vma, vpn, write=True)
                if ret:
                    return i or ret
            pfn = int(mm.pte_pfn[vpn])
            mm.pages.pin_user_page(pfn)
            pages[i] = np.uint64(pfn)
        return nr
    finally:
        await mm.mmap_lock.up_read()
