"""Page contents, fork, file and huge-page faults, mprotect and user accesses
(kernel/_mm_user.py and the fault-path additions the HMM conformance cases rely on)."""

from __future__ import annotations

from typing import Any

import numpy as np

from concsim.engine import Runtime
from concsim.kernel import _mm_events as ev
from concsim.kernel._mm import (
    PTE_PRESENT,
    PTE_SWAP,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from concsim.kernel._mm_user import EFAULT, cpu_access, dup_mm, mprotect
from concsim.kernel._pagealloc import ZERO_PFN
from concsim.kernel._pagecache import PageCacheFile

from .world import Tiny, clean, run_tiny

BASE = 1024
RW = VM_READ | VM_WRITE


def _run(body: Any, **tiny: Any) -> Tiny:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt, **tiny)
        rt.spawn("t", body(w))
        return w

    w, _, f = run_tiny(build)
    clean(f)
    return w


def test_contents_follow_migration_swap_and_cow() -> None:
    async def body(w: Tiny) -> None:
        mm = w.mm
        for k in range(3):
            assert (await cpu_access(mm, BASE + k, write=True, value=100 + k))[0] == 0
        await ev.migrate_page(mm, BASE)
        await ev.reclaim_page(mm, BASE + 1)
        assert int(mm.pte_state[BASE + 1]) == PTE_SWAP
        mm.pte_write[BASE + 2] = False  # make the next write a COW break
        w.out["after"] = [(await cpu_access(mm, BASE + k, write=False))[1] for k in range(3)]
        assert (await cpu_access(mm, BASE + 2, write=True, value=7))[0] == 0

    w = _run(body)
    assert w.out["after"] == [100, 101, 102]
    assert w.pages.data[w.mm.pte_pfn[BASE + 2]] == 7


def test_ksm_merges_only_identical_pages() -> None:
    async def body(w: Tiny) -> None:
        mm = w.mm
        await cpu_access(mm, BASE, write=True, value=1)
        await cpu_access(mm, BASE + 1, write=True, value=2)
        await ev.ksm_merge(mm, BASE, BASE + 1)
        w.out["distinct"] = int(mm.pte_pfn[BASE]) != int(mm.pte_pfn[BASE + 1])
        await cpu_access(mm, BASE + 1, write=True, value=1)
        await ev.ksm_merge(mm, BASE, BASE + 1)
        w.out["merged"] = int(mm.pte_pfn[BASE]) == int(mm.pte_pfn[BASE + 1])

    w = _run(body)
    assert w.out == {"distinct": True, "merged": True}


def test_fork_shares_private_pages_read_only_and_cow_separates_them() -> None:
    async def body(w: Tiny) -> None:
        mm = w.mm
        await w.insert("mirror", BASE, 4)
        await cpu_access(mm, BASE, write=True, value=5)
        child = await dup_mm(mm)
        pfn = int(mm.pte_pfn[BASE])
        w.out["shared"] = int(child.pte_pfn[BASE]) == pfn and w.pages.refcount[pfn] == 2
        w.out["ro"] = (bool(mm.pte_write[BASE]), bool(child.pte_write[BASE]))
        await cpu_access(child, BASE, write=True, value=-5)
        w.out["parent"] = (await cpu_access(mm, BASE, write=False))[1]
        w.out["child"] = (await cpu_access(child, BASE, write=False))[1]

    w = _run(body)
    assert w.out["shared"]
    assert w.out["ro"] == (False, False)
    assert (w.out["parent"], w.out["child"]) == (5, -5)
    # The parent's mirror saw its range write-protected.
    assert any(e[0] == "cb" and e[1] == "mirror" for e in w.log)


def test_fork_keeps_shared_mappings_shared() -> None:
    async def body(w: Tiny) -> None:
        mm = w.mm
        mm.vmas.clear()
        mm.mmap(BASE, 4, RW | VM_SHARED, PageCacheFile(w.pages, "shmem", 4))
        await cpu_access(mm, BASE, write=True, value=5)
        child = await dup_mm(mm)
        await cpu_access(child, BASE, write=True, value=-5)
        w.out["parent"] = (await cpu_access(mm, BASE, write=False))[1]

    w = _run(body)
    assert w.out["parent"] == -5


def test_file_faults_map_the_page_cache_and_private_writes_copy() -> None:
    async def body(w: Tiny) -> None:
        mm = w.mm
        mm.vmas.clear()
        f = PageCacheFile(w.pages, "file", 8)
        for k in range(8):
            f.pwrite(k, 50 + k)
        mm.mmap(BASE, 4, VM_READ | VM_SHARED, f, 2)
        mm.mmap(BASE + 8, 4, RW, f, 0)
        w.out["shared"] = (await cpu_access(mm, BASE + 1, write=False))[1]
        w.out["same_page"] = int(mm.pte_pfn[BASE + 1]) == f.i_pages[3]
        w.out["ro_store"] = (await cpu_access(mm, BASE, write=True, value=1))[0]
        await cpu_access(mm, BASE + 8, write=True, value=-1)
        w.out["file_after_private_write"] = f.pread(0)

    w = _run(body)
    assert w.out == {
        "shared": 53,
        "same_page": True,
        "ro_store": -EFAULT,
        "file_after_private_write": 50,
    }


def test_huge_faults_map_whole_pmds() -> None:
    async def body(w: Tiny) -> None:
        mm = w.mm
        mm.vmas.clear()
        mm.mmap(1024, 512, RW | VM_HUGEPAGE)
        mm.mmap(2048, 512, RW | VM_HUGETLB)
        await cpu_access(mm, 1030, write=True, value=1)
        await cpu_access(mm, 2050, write=False)

    w = _run(body, nr_vpns=4096)
    mm = w.mm
    for a in (1024, 2048):
        assert (mm.pte_state[a : a + 512] == PTE_PRESENT).all()
        assert (w.pages.order[mm.pte_pfn[a : a + 512]] == 9).all()
    assert mm.pte_write[1024:1536].all()
    assert not mm.pte_write[2048:2560].any()


def test_mprotect_write_protects_and_prot_none_faults() -> None:
    async def body(w: Tiny) -> None:
        mm = w.mm
        await w.insert("mirror", BASE, 4)
        await cpu_access(mm, BASE, write=True, value=3)
        w.out["ro"] = await mprotect(mm, BASE, 4, VM_READ)
        w.out["write_bit"] = bool(mm.pte_write[BASE])
        w.out["store"] = (await cpu_access(mm, BASE, write=True, value=4))[0]
        await mprotect(mm, BASE, 4, 0)
        w.out["load"] = (await cpu_access(mm, BASE, write=False))[0]
        w.out["no_vma"] = await mprotect(mm, 0, 4, VM_READ)

    w = _run(body)
    assert w.out == {"ro": 0, "write_bit": False, "store": -EFAULT, "load": -EFAULT, "no_vma": -12}
    assert [e[1] for e in w.log if e[0] == "cb"] == ["mirror", "mirror"]


def test_zero_page_read_then_write_copies() -> None:
    async def body(w: Tiny) -> None:
        mm = w.mm
        w.out["load"] = await cpu_access(mm, BASE, write=False)
        w.out["zero"] = int(mm.pte_pfn[BASE]) == ZERO_PFN
        await cpu_access(mm, BASE, write=True, value=9)
        w.out["copied"] = int(mm.pte_pfn[BASE]) != ZERO_PFN and mm.pages.data[ZERO_PFN] == 0

    w = _run(body)
    assert w.out == {"load": (0, 0), "zero": True, "copied": True}
    assert np.count_nonzero(w.pages.data) == 1


def test_device_exclusive_entries_are_restored_by_a_cpu_fault_and_freed_by_a_zap() -> None:
    from concsim.kernel._mm import PTE_DEVICE_EXCLUSIVE, PTE_NONE
    from concsim.kernel._mm_fault import folio_unlock
    from concsim.kernel._mm_user import make_device_exclusive

    async def body(w: Tiny) -> None:
        mm = w.mm
        await w.insert("mirror", BASE, 4)
        await mm.mmap_lock.down_read()
        pfn = await make_device_exclusive(mm, BASE)  # faults the page in for write first
        await mm.mmap_lock.up_read()
        w.out["exclusive"] = int(mm.pte_state[BASE]) == PTE_DEVICE_EXCLUSIVE
        folio_unlock(mm, pfn)
        w.out["load"] = await cpu_access(mm, BASE, write=False)
        w.out["restored"] = (int(mm.pte_state[BASE]), int(mm.pte_pfn[BASE])) == (PTE_PRESENT, pfn)
        await mm.mmap_lock.down_read()
        pfn2 = await make_device_exclusive(mm, BASE + 1)
        await mm.mmap_lock.up_read()
        folio_unlock(mm, pfn2)
        await ev.munmap(mm, BASE + 1, 1)
        w.out["freed"] = (int(mm.pte_state[BASE + 1]), int(w.pages.refcount[pfn2]))

    w = _run(body)
    assert w.out == {
        "exclusive": True,
        "load": (0, 0),
        "restored": True,
        "freed": (PTE_NONE, 0),
    }
    # make_device_exclusive and the restoring fault each invalidated the page.
    assert len([e for e in w.log if e[0] == "cb"]) >= 3
