"""Primary-MMU mutators (spec B5 table): each invalidates, changes PTEs, frees pages.

Every mutator follows the kernel's shape: take the locks the table says (munmap and
mprotect hold mmap_lock for write; madvise, NUMA protnone, KSM and THP split for read;
migration and reclaim hold no mmap_lock at all; the OOM reaper only *tries* the read lock
and invalidates non-blockably), ``invalidate_range_start``, change the PTEs, free pages,
``invalidate_range_end``.  Pages are freed only after every callback of range_start
returned (S1 mechanism (iv)).  Zapping a range is one atomic step per PMD.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from concsim.kernel._mm import (
    MM,
    MM_EXITING,
    PTE_DEVICE_EXCLUSIVE,
    PTE_MIGRATION,
    PTE_NONE,
    PTE_PRESENT,
    PTE_PROTNONE,
    PTE_SWAP,
    PTRS_PER_PMD,
    VM_WRITE,
)
from concsim.kernel._mmu_notifier import (
    MMU_NOTIFY_CLEAR,
    MMU_NOTIFY_MIGRATE,
    MMU_NOTIFY_PROTECTION_VMA,
    MMU_NOTIFY_RELEASE,
    MMU_NOTIFY_UNMAP,
    ULONG_MAX_VPN,
    MMUNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
)
from concsim.kernel._pagealloc import PAGE_DATA, ZERO_PFN

#: The PTE states that map a page (a zap drops a reference on it).
_MAPS = (PTE_PRESENT, PTE_PROTNONE, PTE_DEVICE_EXCLUSIVE)
#: Up to this many PTEs, a zap and :func:`populated_list` read the page table with plain
#: ints (numpy costs about a microsecond a call whatever the size).
SMALL_SCAN = 64


def _pmd_pieces(start: int, end: int) -> list[tuple[int, int]]:
    out = []
    a = start
    while a < end:
        b = min(end, (a // PTRS_PER_PMD + 1) * PTRS_PER_PMD)
        out.append((a, b))
        a = b
    return out


async def zap_page_range(mm: MM, start: int, end: int) -> None:
    """Clear the PTEs of [start, end) and free the pages they mapped (after a TLB flush)."""
    rt = mm.rt
    mm.check_range(start, end, "zap_page_range")
    for a, b in _pmd_pieces(start, end):
        await rt.point("zap_pte_range", "pt", a, b)
        if b - a <= SMALL_SCAN:
            # A few PTEs: which to clear and the pages they map, read as plain ints (the
            # same vpns and pfns, in the same order, as the numpy form below).
            states = mm.pte_state_mv[a:b].tolist()
            ptes = mm.pte_pfn_mv[a:b].tolist()
            vpns = np.array([a + i for i, s in enumerate(states) if s != PTE_NONE], np.int64)
            if vpns.size == 0:
                continue
            pfns = np.array([p for s, p in zip(states, ptes, strict=True) if s in _MAPS], np.int64)
        else:
            st = mm.pte_state[a:b]
            mapped = (st == PTE_PRESENT) | (st == PTE_PROTNONE) | (st == PTE_DEVICE_EXCLUSIVE)
            vpns = np.nonzero(st != PTE_NONE)[0].astype(np.int64) + a
            if vpns.size == 0:
                continue
            pfns = mm.pte_pfn[a:b][mapped].copy()
        mm.set_ptes(vpns, PTE_NONE, 0, False)
        mm.pages.put_pages(pfns)


async def munmap(mm: MM, start: int, npages: int) -> None:
    rt = mm.rt
    end = start + npages
    mm.check_range(start, end, "munmap")
    await mm.mmap_lock.down_write()
    r = MMUNotifierRange(mm, start, end, MMU_NOTIFY_UNMAP)
    await mmu_notifier_invalidate_range_start(r)
    await zap_page_range(mm, start, end)
    await mmu_notifier_invalidate_range_end(r)
    mm.remove_vmas(start, end)
    if rt.tracing:
        rt.event("munmap", "vma", start, end)
    await mm.mmap_lock.up_write()


async def madvise_dontneed(mm: MM, start: int, npages: int) -> None:
    end = start + npages
    mm.check_range(start, end, "madvise_dontneed")
    await mm.mmap_lock.down_read()
    r = MMUNotifierRange(mm, start, end, MMU_NOTIFY_CLEAR)
    await mmu_notifier_invalidate_range_start(r)
    await zap_page_range(mm, start, end)
    await mmu_notifier_invalidate_range_end(r)
    await mm.mmap_lock.up_read()


async def mprotect_readonly(mm: MM, start: int, npages: int) -> None:
    rt = mm.rt
    end = start + npages
    mm.check_range(start, end, "mprotect_readonly")
    await mm.mmap_lock.down_write()
    r = MMUNotifierRange(mm, start, end, MMU_NOTIFY_PROTECTION_VMA)
    await mmu_notifier_invalidate_range_start(r)
    for a, b in _pmd_pieces(start, end):
        await rt.point("change_pte_range", "pt", a, b, "ro")
        st = mm.pte_state[a:b]
        # A present PTE takes the VMA's new protection (pte_modify): a NUMA-hinting
        # (protnone) one becomes an ordinary read-only PTE too.
        sel = (st == PTE_PRESENT) | (st == PTE_PROTNONE)
        vpns = np.nonzero(sel)[0].astype(np.int64) + a
        if vpns.size:
            mm.set_ptes(vpns, PTE_PRESENT, mm.pte_pfn[vpns].copy(), False)
        # A writable migration entry becomes a readable one ("a protection check is
        # difficult so just be safe and disable write").
        sel = (st == PTE_MIGRATION) & mm.pte_write[a:b]
        vpns = np.nonzero(sel)[0].astype(np.int64) + a
        if vpns.size:
            mm.set_ptes(vpns, PTE_MIGRATION, mm.pte_pfn[vpns].copy(), False)
    await mmu_notifier_invalidate_range_end(r)
    mm.set_vma_flags(start, end, 0, VM_WRITE)
    await mm.mmap_lock.up_write()


async def change_prot_numa(mm: MM, start: int, npages: int) -> None:
    """NUMA balancing: present PTEs become protnone (pfn and write bit kept)."""
    rt = mm.rt
    end = start + npages
    mm.check_range(start, end, "change_prot_numa")
    await mm.mmap_lock.down_read()
    r = MMUNotifierRange(mm, start, end, MMU_NOTIFY_PROTECTION_VMA)
    await mmu_notifier_invalidate_range_start(r)
    for a, b in _pmd_pieces(start, end):
        await rt.point("change_pte_range", "pt", a, b, "protnone")
        st = mm.pte_state[a:b]
        pfns = mm.pte_pfn[a:b]
        # prot_numa_skip: a maybe-DMA-pinned page of a private (COW) mapping is left alone.
        rt.access("pages", write=False)
        sel = (st == PTE_PRESENT) & (pfns != ZERO_PFN) & (mm.pages.pincount[pfns] == 0)
        vpns = np.nonzero(sel)[0].astype(np.int64) + a
        if vpns.size:
            mm.set_ptes(vpns, PTE_PROTNONE, mm.pte_pfn[vpns].copy(), mm.pte_write[vpns].copy())
    await mmu_notifier_invalidate_range_end(r)
    await mm.mmap_lock.up_read()


def _movable(mm: MM, vpn: int) -> bool:
    """A present, ordinary page that migration, reclaim or KSM may take.  A long-term pinned
    page is not: migration fails on its extra references, reclaim skips a maybe-DMA-pinned
    folio, and KSM's reference check refuses it."""
    mm.rt.access("pt", write=False)
    if int(mm.pte_state[vpn]) != PTE_PRESENT:
        return False
    pfn = int(mm.pte_pfn[vpn])
    return pfn != ZERO_PFN and not mm.pages.folio_maybe_dma_pinned(pfn)


async def migrate_page(mm: MM, vpn: int) -> None:
    """Page migration / compaction (try_to_migrate via rmap): no mmap_lock."""
    rt = mm.rt
    mm.check_range(vpn, vpn + 1, "migrate_page")
    await rt.point("migrate_folio", "pt", vpn, read=True)
    if not _movable(mm, vpn):
        return
    old = int(mm.pte_pfn[vpn])
    r = MMUNotifierRange(mm, vpn, vpn + 1, MMU_NOTIFY_MIGRATE)
    await mmu_notifier_invalidate_range_start(r)
    await rt.point("try_to_migrate_one", "pt", vpn)
    if not _movable(mm, vpn) or int(mm.pte_pfn[vpn]) != old:  # gone, or pinned meanwhile
        await mmu_notifier_invalidate_range_end(r)
        return
    # try_to_migrate_one encodes the write bit of the PTE it replaces, under the PTE lock:
    # an mprotect that write-protected the page meanwhile is kept (not the bit seen first).
    writable = bool(mm.pte_write[vpn])
    mm.set_pte(vpn, PTE_MIGRATION, old, writable)
    await mmu_notifier_invalidate_range_end(r)
    new = mm.pages.alloc_page()
    await rt.point("remove_migration_ptes", "pt", vpn)
    # remove_migration_ptes walks the rmap with PVMW_MIGRATION: only a PTE that still holds
    # *this* migration entry is restored.  One zapped meanwhile (madvise, munmap, the OOM
    # reaper, exit) and maybe faulted in again since is left alone, and with no mapping
    # left the migration's own references drop the pages.
    still = int(mm.pte_state[vpn]) == PTE_MIGRATION and int(mm.pte_pfn[vpn]) == old
    if still:
        # remove_migration_pte: the entry's own write bit (an mprotect meanwhile made it
        # readable), and maybe_mkwrite: writable only while the VMA has VM_WRITE.
        vma = mm.vma_lookup(vpn)
        writable = bool(mm.pte_write[vpn]) and vma is not None and bool(vma.vm_flags & VM_WRITE)
    if new < 0:
        if still:
            mm.set_pte(vpn, PTE_PRESENT, old, writable)
        else:
            mm.pages.put_page(old)
        await mm.migration_wq.wake_up_all()
        return
    if not still:
        await mm.migration_wq.wake_up_all()
        mm.pages.put_page(new)
        mm.pages.put_page(old)
        if rt.tracing:
            rt.event("migration_entry_gone", "pt", vpn)
        return
    mm.pages.copy_highpage(new, old)
    mm.set_pte(vpn, PTE_PRESENT, new, writable)
    await mm.migration_wq.wake_up_all()
    mm.pages.put_page(old)
    rt.count("migrations")


async def reclaim_page(mm: MM, vpn: int) -> None:
    """Reclaim / swap-out (try_to_unmap via rmap): no mmap_lock."""
    rt = mm.rt
    mm.check_range(vpn, vpn + 1, "reclaim_page")
    await rt.point("shrink_folio_list", "pt", vpn, read=True)
    if not _movable(mm, vpn):
        return
    old = int(mm.pte_pfn[vpn])
    r = MMUNotifierRange(mm, vpn, vpn + 1, MMU_NOTIFY_CLEAR)
    await mmu_notifier_invalidate_range_start(r)
    await rt.point("try_to_unmap_one", "pt", vpn)
    # A page pinned meanwhile cannot be shared from the anon rmap: try_to_unmap backs off.
    if _movable(mm, vpn) and int(mm.pte_pfn[vpn]) == old:
        rt.access(PAGE_DATA, write=False)
        mm.swap_data[vpn] = mm.pages.data[old]  # pageout: the contents go to the swap slot
        mm.set_pte(vpn, PTE_SWAP, 0, False)
        mm.pages.put_page(old)
        rt.count("reclaims")
    await mmu_notifier_invalidate_range_end(r)


async def ksm_merge(mm: MM, keep: int, merge: int) -> None:
    """KSM: write-protect ``keep``'s page and make ``merge`` share it read-only."""
    rt = mm.rt
    mm.check_range(keep, keep + 1, "ksm_merge")
    mm.check_range(merge, merge + 1, "ksm_merge")
    await mm.mmap_lock.down_read()
    try:
        if not (_movable(mm, keep) and _movable(mm, merge)):
            return
        pages = mm.pages
        rt.access(PAGE_DATA, write=False)
        if pages.data[mm.pte_pfn[keep]] != pages.data[mm.pte_pfn[merge]]:
            return  # KSM merges only pages with identical contents
        kpfn = int(mm.pte_pfn[keep])
        for vpn in (keep, merge):
            r = MMUNotifierRange(mm, vpn, vpn + 1, MMU_NOTIFY_CLEAR)
            await mmu_notifier_invalidate_range_start(r)
            await rt.point("write_protect_page", "pt", vpn)
            # Under the PTE lock KSM re-checks what it saw (pte_same): a page zapped,
            # migrated, pinned or COW-broken meanwhile is not merged.
            keep_same = int(mm.pte_state[keep]) == PTE_PRESENT and int(mm.pte_pfn[keep]) == kpfn
            if not (_movable(mm, vpn) and keep_same) or (vpn == merge and mm.pte_write[keep]):
                await mmu_notifier_invalidate_range_end(r)
                return
            idx = np.array([vpn], dtype=np.int64)
            if vpn == keep:
                mm.set_ptes(idx, PTE_PRESENT, kpfn, False)
            else:
                old = int(mm.pte_pfn[merge])
                mm.pages.get_page(kpfn)
                mm.set_ptes(idx, PTE_PRESENT, kpfn, False)
                mm.pages.put_page(old)
            await mmu_notifier_invalidate_range_end(r)
        rt.count("ksm_merges")
    finally:
        await mm.mmap_lock.up_read()


async def split_huge_pmd(mm: MM, start: int) -> None:
    """THP split: the PMD mapping becomes 512 PTEs of the same pages (an invalidation).
    The folio stays large (its order is untouched: only ``split_huge_page`` splits it);
    what changes is the mapping level, which is what HMM reports."""
    rt = mm.rt
    start -= start % PTRS_PER_PMD
    end = start + PTRS_PER_PMD
    mm.check_range(start, end, "split_huge_pmd")
    await mm.mmap_lock.down_read()
    r = MMUNotifierRange(mm, start, end, MMU_NOTIFY_CLEAR)
    await mmu_notifier_invalidate_range_start(r)
    await rt.point("__split_huge_pmd", "pt", start, end)
    mm.set_pmd_trans_huge(start, False)
    await mmu_notifier_invalidate_range_end(r)
    await mm.mmap_lock.up_read()


async def oom_reap(mm: MM, start: int, npages: int) -> None:
    """__oom_reap_task_mm: trylock, non-blockable invalidation, skip the range on -EAGAIN."""
    rt = mm.rt
    end = start + npages
    mm.check_range(start, end, "oom_reap")
    if not await mm.mmap_lock.down_read_trylock():
        rt.count("oom_reap_skipped")
        return
    r = MMUNotifierRange(mm, start, end, MMU_NOTIFY_CLEAR, blockable=False)
    err = await mmu_notifier_invalidate_range_start(r)
    if err:
        rt.count("oom_reap_skipped")
        rt.event("oom_reap", "vma", start, end, err)
    else:
        await zap_page_range(mm, start, end)
        await mmu_notifier_invalidate_range_end(r)
        rt.count("oom_reaped")
    await mm.mmap_lock.up_read()


async def exit_mmap(mm: MM) -> None:
    """exit_mmap: ``mmu_notifier_release`` (one RELEASE round over everything), then
    ``unmap_vmas`` under mmap_lock for read, which zaps every VMA inside an invalidation of
    its own (MMU_NOTIFY_UNMAP over [0, ULONG_MAX)), then the VMAs go under the write lock.

    The second round matters: a driver may map pages again between the RELEASE round and
    the zap (its callback ran, a later fault re-read the seq), and those mappings must be
    torn down before the pages are freed, as for any other unmap.
    """
    mm.rt.access(MM_EXITING)
    mm.exiting = True
    r = MMUNotifierRange(mm, 0, ULONG_MAX_VPN, MMU_NOTIFY_RELEASE)
    await mmu_notifier_invalidate_range_start(r)
    await mmu_notifier_invalidate_range_end(r)
    await mm.mmap_lock.down_read()
    u = MMUNotifierRange(mm, 0, ULONG_MAX_VPN, MMU_NOTIFY_UNMAP)
    await mmu_notifier_invalidate_range_start(u)
    await zap_page_range(mm, 0, mm.nr_vpns)
    await mmu_notifier_invalidate_range_end(u)
    await mm.mmap_lock.up_read()
    await mm.mmap_lock.down_write()
    mm.rt.access("mm.vmas")
    mm.vmas = []
    await mm.mmap_lock.up_write()


def populated(mm: MM, start: int, end: int) -> npt.NDArray[np.int64]:
    mm.rt.access("pt", write=False)
    mm.check_range(start, end, "populated")
    return np.nonzero(mm.pte_state[start:end] == PTE_PRESENT)[0].astype(np.int64) + start


def populated_list(mm: MM, start: int, end: int) -> list[int]:
    """:func:`populated` as a list of ints (what the scenarios' event tasks want): a loop
    over the page table's memoryview for a small range, instead of four numpy calls."""
    if end - start > SMALL_SCAN:
        vpns: list[int] = populated(mm, start, end).tolist()
        return vpns
    mm.rt.access("pt", write=False)
    mm.check_range(start, end, "populated")
    states = mm.pte_state_mv[start:end].tolist()
    return [start + i for i, st in enumerate(states) if st == PTE_PRESENT]
