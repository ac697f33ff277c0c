"""``hmm_range_fault`` (mm/hmm.c, spec B4): snapshot a range of the page table into pfns.

Output encoding (include/linux/hmm.h, the current layout): bit 63 ``HMM_PFN_VALID``,
bit 62 ``HMM_PFN_WRITE``, bit 61 ``HMM_PFN_ERROR``, the mapping order in bits 53..57; the
pfn below.  On input ``HMM_PFN_REQ_FAULT`` aliases VALID and ``HMM_PFN_REQ_WRITE`` aliases
WRITE; the driver uses only ``default_flags`` (``pfn_flags_mask`` is 0).

The walk reads the page table one PMD (512 entries) at a time; each PMD is one atomic step
of the model, as the kernel reads it under that PMD's page-table lock.  Nothing is pinned:
a page can be invalidated right after the walk read it; only the caller's sequence check
(B3.7) makes the result safe to use.

Per entry (``cpu`` = the flags the CPU mapping has):

* none, swap, migration entry: with no fault requested the output is 0; with a fault
  requested, none and swap are faulted in, and a migration entry is waited for
  (``migration_entry_wait``) - either way the walk restarts from that address (-EBUSY
  inside hmm_range_fault, not seen by the caller);
* present: ``VALID`` plus ``WRITE`` if the PTE is writable; the zero page is an ordinary
  page (VALID, never WRITE); protnone gives ``cpu = 0``, so without a fault request the
  output is the raw pfn *without* VALID;
* the order bits say at which level the page is *mapped*, not how large its folio is: 9
  for a PMD-mapped THP (``pmd_to_hmm_pfn_flags`` in ``hmm_vma_handle_pmd``), the page size
  of a hugetlb VMA, 9 or 18 (``huge_page_order(hstate_vma(vma))`` in
  ``hmm_vma_walk_hugetlb_entry``), 0 for a PTE (``hmm_vma_handle_pte`` sets none), even one
  mapping a page of a large folio (a THP whose PMD was split, or partly unmapped).  They
  are written on valid entries only: the kernel also ORs them into a non-present hugetlb
  entry, which has no VALID bit and so no meaning for the caller;
* special (VM_PFNMAP/VM_IO style) PTE: fault requested -> -EFAULT, else ``HMM_PFN_ERROR``;
* a VMA with VM_IO or VM_PFNMAP, or without VM_READ, or no VMA at all: fault requested ->
  -EFAULT, else ``HMM_PFN_ERROR`` for the whole piece;
* a write fault wanted on a VMA without VM_WRITE: -EPERM.

With ``default_flags == 0`` (the creation path) nothing is faulted, no migration wait
happens, and the only -EBUSY is the sequence check at the top of each round.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from concsim.kernel._bounds import bounds_failure
from concsim.kernel._mm import (
    MM,
    PMD_ORDER,
    PTE_MIGRATION,
    PTE_PRESENT,
    PTE_PROTNONE,
    PTE_SPECIAL,
    PTRS_PER_PMD,
    VM_HUGETLB,
    VM_IO,
    VM_PFNMAP,
    VM_READ,
    VM_WRITE,
    VMA,
)
from concsim.kernel._mm_fault import handle_mm_fault, migration_entry_wait
from concsim.kernel._mmu_notifier import MMUIntervalNotifier, mmu_interval_check_retry

HMM_PFN_VALID = np.uint64(1 << 63)
HMM_PFN_WRITE = np.uint64(1 << 62)
HMM_PFN_ERROR = np.uint64(1 << 61)
HMM_PFN_ORDER_SHIFT = 53
HMM_PFN_FLAGS = np.uint64(~((1 << HMM_PFN_ORDER_SHIFT) - 1) & ((1 << 64) - 1))
HMM_PFN_REQ_FAULT = HMM_PFN_VALID
HMM_PFN_REQ_WRITE = HMM_PFN_WRITE

_NO_FLAGS = np.uint64(0)

EBUSY = 16
EFAULT = 14
EPERM = 1


def hmm_pfn_to_pfn(v: int) -> int:
    return int(v) & ((1 << HMM_PFN_ORDER_SHIFT) - 1)


@dataclass
class HMMRange:
    """``struct hmm_range``: [start, end) in pages; ``hmm_pfns`` has end - start entries."""

    notifier: MMUIntervalNotifier
    notifier_seq: int
    start: int
    end: int
    hmm_pfns: npt.NDArray[np.uint64]
    default_flags: np.uint64 = _NO_FLAGS


def _cpu_flags(mm: MM, a: int, b: int) -> npt.NDArray[np.uint64]:
    st = mm.pte_state[a:b]
    present = st == PTE_PRESENT
    flags = np.where(present, HMM_PFN_VALID, np.uint64(0)).astype(np.uint64)
    flags |= np.where(present & mm.pte_write[a:b], HMM_PFN_WRITE, np.uint64(0)).astype(np.uint64)
    return flags


async def hmm_range_fault(mm: MM, r: HMMRange) -> int:
    """B4: 0 on success (every output entry written), or -EBUSY / -EFAULT / -EPERM."""
    rt = mm.rt
    t = rt.current
    if t is None or (t not in mm.mmap_lock.readers and mm.mmap_lock.writer is not t):
        raise rt.fail(
            "lock-misuse", "hmm_range_fault called without mmap_lock held (mmap_assert_locked)"
        )
    mm.check_range(r.start, r.end, "hmm_range_fault")
    if len(r.hmm_pfns) != r.end - r.start:
        # Shorter: numpy would clip the walk's writes; longer: the tail stays unwritten.
        raise bounds_failure(rt, "hmm_pfns", 0, r.end - r.start, len(r.hmm_pfns), "hmm_range_fault")
    last = r.start
    while True:
        if await mmu_interval_check_retry(r.notifier, r.notifier_seq):
            return -EBUSY
        ret, last = await _walk(mm, r, last)
        if ret != -EBUSY:
            return ret
        rt.count("hmm_restarts")


#: Pieces of up to this many entries are walked with a Python loop over plain ints; longer
#: ones with whole-array numpy operations (each costs about a microsecond whatever its
#: size).  Both give the same output, faults and return values.
SMALL_PIECE = 64
_DONE = 1  # _walk_small: the piece is written; go on with the next one

_VALID = int(HMM_PFN_VALID)
_WRITE = int(HMM_PFN_WRITE)
_ERROR = int(HMM_PFN_ERROR)


async def _walk_small(
    mm: MM,
    vma: VMA,
    out: npt.NDArray[np.uint64],
    addr: int,
    piece_end: int,
    req_fault: bool,
    req_write: bool,
    order: int,
) -> tuple[int, int]:
    """One piece of :func:`_walk` entry by entry; returns (_DONE, piece_end) when the whole
    piece is written, else what _walk returns (-EFAULT, -EPERM, -EBUSY and where).
    ``order`` is the piece's mapping level, in the bits it takes in a valid entry."""
    n = piece_end - addr
    states = mm.pte_state_mv[addr:piece_end].tolist()  # memoryviews: cheaper to slice
    writes = mm.pte_write_mv[addr:piece_end].tolist()
    pfns = mm.pte_pfn_mv[addr:piece_end].tolist()
    valid = _VALID | order
    if req_fault:
        # Everything before the first entry to fault (or special) is present.
        stop = n
        for i, st in enumerate(states):
            if st != PTE_PRESENT or (req_write and not writes[i]):
                stop = i
                break
        vals = [
            p | valid | (_WRITE if w else 0)
            for p, w in zip(pfns[:stop], writes[:stop], strict=True)
        ]
    else:
        stop = n
        vals = [
            (p | valid | (_WRITE if w else 0))
            if st == PTE_PRESENT
            else p
            if st == PTE_PROTNONE
            else _ERROR
            if st == PTE_SPECIAL
            else 0
            for st, p, w in zip(states, pfns, writes, strict=True)
        ]
    if stop:
        # Through a memoryview from an array.array of the same item format: a third of
        # what building a numpy array from the list costs.
        view = memoryview(out)  # type: ignore[arg-type]  # numpy's stubs lack __buffer__
        view[:stop] = array(view.format, vals)
    if stop == n:
        return _DONE, piece_end
    fault_at = addr + stop
    state = states[stop]
    if state == PTE_SPECIAL:
        return -EFAULT, fault_at
    if state == PTE_MIGRATION:
        await migration_entry_wait(mm, fault_at)
        return -EBUSY, fault_at
    present = state == PTE_PRESENT
    if req_write and not (present and writes[stop]) and not vma.vm_flags & VM_WRITE:
        return -EPERM, fault_at
    # hmm_vma_fault: fault every page of [fault_at, piece_end) that needs it.
    for i in range(stop, n):
        st = states[i]
        if st == PTE_SPECIAL:
            continue
        writable = st == PTE_PRESENT and writes[i]
        if st != PTE_PRESENT or (req_write and not writable):
            ret = await handle_mm_fault(mm, vma, addr + i, write=req_write and not writable)
            if ret:
                return ret, fault_at
    return -EBUSY, fault_at


#: ``hmm_pfn_flags_order(PMD_SHIFT - PAGE_SHIFT)``
_PMD_ORDER_BITS = PMD_ORDER << HMM_PFN_ORDER_SHIFT


def _mapping_order(mm: MM, vma: VMA, addr: int) -> int:
    """The order bits of the PMD holding ``addr``: a hugetlb VMA's page size
    (hmm_vma_walk_hugetlb_entry: 9 or 18), a PMD-mapped THP's 9 (hmm_vma_handle_pmd); PTEs
    are order 0, whatever the order of the folio their page belongs to (hmm_vma_handle_pte)."""
    if vma.vm_flags & VM_HUGETLB:
        return vma.vm_huge_order << HMM_PFN_ORDER_SHIFT
    if mm.pmd_trans_huge[addr // PTRS_PER_PMD]:
        return _PMD_ORDER_BITS
    return 0


async def _walk(mm: MM, r: HMMRange, last: int) -> tuple[int, int]:
    """One walk_page_range from ``last``; returns (ret, new last)."""
    rt = mm.rt
    req = r.default_flags
    req_fault = bool(req & HMM_PFN_REQ_FAULT)
    req_write = bool(req & HMM_PFN_REQ_WRITE)
    addr = last
    while addr < r.end:
        pmd_end = min(r.end, (addr // PTRS_PER_PMD + 1) * PTRS_PER_PMD)
        vma = mm.vma_lookup(addr)
        if vma is None:
            nxt = min((v.vm_start for v in mm.vmas if v.vm_start > addr), default=r.end)
            piece_end = min(pmd_end, nxt)
            if req_fault:
                return -EFAULT, addr
            r.hmm_pfns[addr - r.start : piece_end - r.start] = HMM_PFN_ERROR
            addr = piece_end
            continue
        piece_end = min(pmd_end, vma.vm_end)
        await rt.point("hmm_walk_pmd", "pt", addr, piece_end, read=True)
        out = r.hmm_pfns[addr - r.start : piece_end - r.start]
        if vma.vm_flags & (VM_IO | VM_PFNMAP) or not vma.vm_flags & VM_READ:
            if req_fault:
                return -EFAULT, addr
            out[:] = HMM_PFN_ERROR
            addr = piece_end
            continue
        order = _mapping_order(mm, vma, addr)
        if piece_end - addr <= SMALL_PIECE:
            ret, nxt = await _walk_small(mm, vma, out, addr, piece_end, req_fault, req_write, order)
            if ret != _DONE:
                return ret, nxt
            addr = piece_end
            continue
        st = mm.pte_state[addr:piece_end]
        cpu = _cpu_flags(mm, addr, piece_end)
        if req_fault:
            need = (cpu & HMM_PFN_VALID) == 0
            if req_write:
                need |= (cpu & HMM_PFN_WRITE) == 0
            # Special PTEs with a fault request are an error, not a fault.
            special = st == PTE_SPECIAL
            need &= ~special
            bad = special
        else:
            need = np.zeros(piece_end - addr, dtype=np.bool_)
            bad = np.zeros(piece_end - addr, dtype=np.bool_)
        stop_need = int(np.argmax(need)) if np.count_nonzero(need) else piece_end - addr
        stop_bad = int(np.argmax(bad)) if np.count_nonzero(bad) else piece_end - addr
        stop = min(stop_need, stop_bad)
        # Output for [addr, addr+stop): everything before the first fault or error.
        pfn = mm.pte_pfn[addr : addr + stop].astype(np.uint64)
        s = st[:stop]
        val = np.where(s == PTE_PRESENT, pfn | cpu[:stop] | np.uint64(order), np.uint64(0))
        val = np.where(s == PTE_PROTNONE, pfn, val)
        val = np.where(s == PTE_SPECIAL, HMM_PFN_ERROR, val)
        out[:stop] = val
        if stop == piece_end - addr:
            addr = piece_end
            continue
        fault_at = addr + stop
        if stop_bad <= stop_need:
            return -EFAULT, fault_at
        state = int(st[stop])
        if state == PTE_MIGRATION:
            await migration_entry_wait(mm, fault_at)
            return -EBUSY, fault_at
        write = req_write and not bool(cpu[stop] & HMM_PFN_WRITE)
        if write and not vma.vm_flags & VM_WRITE:
            return -EPERM, fault_at
        # hmm_vma_fault: fault every page of [fault_at, piece_end) that needs it.
        for i in range(stop, piece_end - addr):
            if need[i]:
                w = req_write and not bool(cpu[i] & HMM_PFN_WRITE)
                ret = await handle_mm_fault(mm, vma, addr + i, write=w)
                if ret:
                    return ret, fault_at
        return -EBUSY, fault_at
    return 0, addr
