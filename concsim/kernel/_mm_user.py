"""What a user process does to its own address space: touch memory, mprotect, madvise, fork.

These are the operations the HMM selftests perform from user space around the device's
accesses (tools/testing/selftests/mm/hmm-tests.c):

* :func:`cpu_access` is a load or store by a thread of the process: a scheduling point, then
  in one step either the access (the PTE is present and allows it) or a page fault
  (``handle_mm_fault`` under ``mmap_lock`` for read, then the access is retried).  A VMA
  that does not allow the access is SIGSEGV, returned as -EFAULT.
* :func:`mprotect` changes a range's VMA flags under ``mmap_lock`` for write; when it
  removes write access it write-protects the present PTEs inside a PROTECTION_VMA
  invalidation (as ``change_protection`` does), and it invalidates whenever the range has
  PTEs at all.  PROT_NONE keeps the PTEs (the kernel makes them PROT_NONE entries; here the
  VMA without VM_READ is what the CPU and HMM check).  Adding write access leaves the PTEs
  read-only: the next write fault upgrades or copies them.
* :func:`madvise_hugepage` sets ``VM_HUGEPAGE`` (MADV_HUGEPAGE): later write faults there
  map whole 2 MiB folios.
* :func:`dup_mm` is fork's address-space copy (``dup_mmap`` / ``copy_page_range``): under the
  parent's ``mmap_lock`` for write, every VMA is copied; for a private (COW) VMA the
  parent's range is invalidated (MMU_NOTIFY_PROTECTION_PAGE) and its present PTEs are
  write-protected, parent and child then share each page read-only; shared VMAs share
  their pages writable as they are.  A PMD-mapped THP is shared whole and stays
  PMD-mapped in both (``copy_huge_pmd``).  A page that may be DMA-pinned is copied for the
  child at once (``page_needs_cow_for_dma``).  Swap entries are copied with their slot's
  contents.  Migration entries are waited out before the copy (the kernel copies the entry
  and lets ``remove_migration_ptes`` fix both mms through the rmap, which the model's
  single-mm migration cannot do; waiting gives the same result).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from concsim.kernel._mm import (
    MM,
    PTE_DEVICE_EXCLUSIVE,
    PTE_MIGRATION,
    PTE_NONE,
    PTE_PRESENT,
    PTE_PROTNONE,
    PTE_SWAP,
    PTRS_PER_PMD,
    VM_HUGEPAGE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from concsim.kernel._mm_fault import (
    MMU_NOTIFY_EXCLUSIVE,
    folio_lock,
    folio_unlock,
    handle_mm_fault,
    migration_entry_wait,
    remove_device_exclusive_entry,
)
from concsim.kernel._mmu_notifier import (
    MMU_NOTIFY_PROTECTION_VMA,
    MMUNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
)
from concsim.kernel._pagealloc import PAGE_DATA

EFAULT = 14
ENOMEM = 12
MMU_NOTIFY_PROTECTION_PAGE = "PROTECTION_PAGE"


async def cpu_access(mm: MM, vpn: int, *, write: bool, value: int = 0) -> tuple[int, int]:
    """A load (``write=False``) or store of ``value`` at ``vpn``: ``(0, contents)`` or
    ``(-EFAULT, 0)`` for SIGSEGV / an unrecoverable fault."""
    rt = mm.rt
    while True:
        await rt.point("user_access", f"{mm.name}.pt", vpn, read=not write)
        vma = mm.vma_lookup(vpn)
        if vma is None or not vma.vm_flags & VM_READ or (write and not vma.vm_flags & VM_WRITE):
            rt.event("SIGSEGV", f"{mm.name}.pt", vpn)
            return -EFAULT, 0
        rt.access("pt", write=False)
        state = int(mm.pte_state[vpn])
        if state == PTE_PRESENT and (not write or mm.pte_write[vpn]):
            pfn = int(mm.pte_pfn[vpn])
            rt.access(PAGE_DATA, write=write)
            if write:
                mm.pages.data[pfn] = value
            return 0, int(mm.pages.data[pfn])
        if state == PTE_MIGRATION:
            await migration_entry_wait(mm, vpn)
            continue
        await mm.mmap_lock.down_read()
        try:
            ret = await handle_mm_fault(mm, vma, vpn, write=write)
        finally:
            await mm.mmap_lock.up_read()
        if ret:
            return ret, 0


def _covered(mm: MM, start: int, end: int) -> bool:
    return all(mm.vma_lookup(v) is not None for v in range(start, end))


async def mprotect(mm: MM, start: int, npages: int, prot: int) -> int:
    """mprotect(2) with ``prot`` a combination of VM_READ and VM_WRITE: 0 or -ENOMEM."""
    rt = mm.rt
    end = start + npages
    await mm.mmap_lock.down_write()
    try:
        if not _covered(mm, start, end):
            return -ENOMEM
        rt.access("pt", write=False)
        if (mm.pte_state[start:end] != PTE_NONE).any():
            r = MMUNotifierRange(mm, start, end, MMU_NOTIFY_PROTECTION_VMA)
            await mmu_notifier_invalidate_range_start(r)
            for a in range(start, end, PTRS_PER_PMD):
                b = min(end, (a // PTRS_PER_PMD + 1) * PTRS_PER_PMD)
                await rt.point("change_pte_range", f"{mm.name}.pt", a, b, "mprotect")
                rt.access("pt", write=False)
                if not prot & VM_WRITE:
                    sel = (mm.pte_state[a:b] == PTE_PRESENT) & mm.pte_write[a:b]
                    vpns = np.nonzero(sel)[0].astype(np.int64) + a
                    if vpns.size:
                        mm.set_ptes(vpns, PTE_PRESENT, mm.pte_pfn[vpns].copy(), False)
            await mmu_notifier_invalidate_range_end(r)
        mm.set_vma_flags(start, end, prot, (VM_READ | VM_WRITE) & ~prot)
        if rt.tracing:
            rt.event("mprotect", f"{mm.name}.vma", start, end, prot)
        return 0
    finally:
        await mm.mmap_lock.up_write()


async def madvise_hugepage(mm: MM, start: int, npages: int) -> int:
    """MADV_HUGEPAGE: 0 or -ENOMEM."""
    await mm.mmap_lock.down_write()
    try:
        if not _covered(mm, start, start + npages):
            return -ENOMEM
        mm.set_vma_flags(start, start + npages, VM_HUGEPAGE, 0)
        return 0
    finally:
        await mm.mmap_lock.up_write()


async def dup_mm(parent: MM, name: str = "child") -> MM:
    """fork(): a new mm sharing the parent's pages as the kernel's copy does."""
    rt = parent.rt
    pages = parent.pages
    await parent.mmap_lock.down_write()
    try:
        child = MM(rt, parent.nr_vpns, pages, name=name)
        for vma in parent.vmas:
            child.vmas.append(replace(vma))
            cow = not vma.vm_flags & VM_SHARED
            r = MMUNotifierRange(parent, vma.vm_start, vma.vm_end, MMU_NOTIFY_PROTECTION_PAGE)
            if cow:
                await mmu_notifier_invalidate_range_start(r)
            for a in range(vma.vm_start, vma.vm_end, PTRS_PER_PMD):
                b = min(vma.vm_end, (a // PTRS_PER_PMD + 1) * PTRS_PER_PMD)
                await rt.point("copy_pte_range", f"{parent.name}.pt", a, b)
                rt.access("pt", write=False)
                while (parent.pte_state[a:b] == PTE_MIGRATION).any():
                    v = a + int(np.argmax(parent.pte_state[a:b] == PTE_MIGRATION))
                    await migration_entry_wait(parent, v)
                    rt.access("pt", write=False)
                while (parent.pte_state[a:b] == PTE_DEVICE_EXCLUSIVE).any():
                    v = a + int(np.argmax(parent.pte_state[a:b] == PTE_DEVICE_EXCLUSIVE))
                    await remove_device_exclusive_entry(parent, vma, v)
                    rt.access("pt", write=False)
                if not _copy_huge_pmd(parent, child, a, b, cow):
                    _copy_ptes(parent, child, a, b, cow)
            if cow:
                await mmu_notifier_invalidate_range_end(r)
        child.vmas.sort(key=lambda v: v.vm_start)
        rt.event("fork", parent.name, name)
        return child
    finally:
        await parent.mmap_lock.up_write()


def _copy_huge_pmd(parent: MM, child: MM, a: int, b: int, cow: bool) -> bool:
    """copy_huge_pmd: a PMD-mapped THP is shared whole, write-protected in both mms for a
    COW mapping, and stays PMD-mapped in both.  False when [a, b) is not such a PMD, or
    when its folio may be DMA-pinned (the kernel then splits the PMD and copies PTE by PTE,
    which :func:`_copy_ptes` does)."""
    if not parent.pmd_trans_huge[a // PTRS_PER_PMD]:
        return False
    pfns = parent.pte_pfn[a:b].copy()
    pages = parent.pages
    if cow and any(pages.folio_maybe_dma_pinned(p) for p in pfns.tolist()):
        return False
    vpns = np.arange(a, b, dtype=np.int64)
    state = int(parent.pte_state[a])
    write = parent.pte_write[a:b].copy()
    for p in pfns.tolist():
        pages.get_page(p)
    if cow and write.any():
        parent.set_ptes(vpns, state, pfns, False)  # all 512: the PMD stays huge
        write[:] = False
    child.pte_state[a:b] = state
    child.pte_pfn[a:b] = pfns
    child.pte_write[a:b] = write
    child.set_pmd_trans_huge(a, True)
    return True


def _copy_ptes(parent: MM, child: MM, a: int, b: int, cow: bool) -> None:
    pages = parent.pages
    for v in range(a, b):
        st = int(parent.pte_state[v])
        if st == PTE_NONE:
            continue
        if st == PTE_SWAP:
            child.pte_state[v] = PTE_SWAP
            child.swap_data[v] = parent.swap_data[v]
            continue
        pfn = int(parent.pte_pfn[v])
        write = bool(parent.pte_write[v])
        if st in (PTE_PRESENT, PTE_PROTNONE) and cow and pages.folio_maybe_dma_pinned(pfn):
            new = pages.alloc_page()
            if new >= 0:  # copy_present_page; on OOM the kernel fails fork, here: share
                pages.copy_highpage(new, pfn)
                child.pte_state[v] = st
                child.pte_pfn[v] = new
                child.pte_write[v] = write
                continue
        pages.get_page(pfn)
        if cow and write:
            parent.set_ptes(np.array([v], dtype=np.int64), st, pfn, False)
            write = False
        child.pte_state[v] = st
        child.pte_pfn[v] = pfn
        child.pte_write[v] = write


async def make_device_exclusive(mm: MM, vpn: int) -> int:
    """mm/rmap.c ``make_device_exclusive`` (mmap_lock held by the caller): fault the page in
    for write (GUP), then, under an MMU_NOTIFY_EXCLUSIVE invalidation, replace its PTE by a
    device-exclusive entry.  Returns the pfn with its folio locked (the caller unlocks it
    with ``folio_unlock`` once its device maps it), or -EFAULT."""
    rt = mm.rt
    while True:
        vma = mm.vma_lookup(vpn)
        if vma is None or not vma.vm_flags & VM_WRITE:
            return -EFAULT
        rt.access("pt", write=False)
        state = int(mm.pte_state[vpn])
        if state == PTE_MIGRATION:
            await migration_entry_wait(mm, vpn)
            continue
        if not (state == PTE_PRESENT and mm.pte_write[vpn]):
            ret = await handle_mm_fault(mm, vma, vpn, write=True)
            if ret:
                return ret
            continue
        pfn = int(mm.pte_pfn[vpn])
        await folio_lock(mm, pfn)
        r = MMUNotifierRange(mm, vpn, vpn + 1, MMU_NOTIFY_EXCLUSIVE)
        await mmu_notifier_invalidate_range_start(r)
        await rt.point("make_device_exclusive", f"{mm.name}.pt", vpn)
        rt.access("pt", write=False)
        same = (
            int(mm.pte_state[vpn]) == PTE_PRESENT
            and int(mm.pte_pfn[vpn]) == pfn
            and bool(mm.pte_write[vpn])
        )
        if same:
            mm.set_pte(vpn, PTE_DEVICE_EXCLUSIVE, pfn, True)
        await mmu_notifier_invalidate_range_end(r)
        if same:
            return pfn
        folio_unlock(mm, pfn)  # the PTE changed under us: fault again
