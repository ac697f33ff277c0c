"""B4 (hmm_range_fault, mm/hmm.c) branch by branch, on tiny worlds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from concsim.engine import Runtime
from concsim.kernel._hmm import (
    EBUSY,
    EFAULT,
    EPERM,
    HMM_PFN_ERROR,
    HMM_PFN_FLAGS,
    HMM_PFN_ORDER_SHIFT,
    HMM_PFN_REQ_FAULT,
    HMM_PFN_REQ_WRITE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    HMMRange,
    hmm_pfn_to_pfn,
    hmm_range_fault,
)
from concsim.kernel._mm import (
    PTE_MIGRATION,
    PTE_NONE,
    PTE_PRESENT,
    PTE_PROTNONE,
    PTE_SPECIAL,
    PTE_SWAP,
    VM_IO,
    VM_PFNMAP,
    VM_READ,
    VM_WRITE,
)
from concsim.kernel._mmu_notifier import (
    MMU_NOTIFY_CLEAR,
    MMUIntervalNotifier,
    MMUNotifierRange,
    mmu_interval_read_begin,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
)
from concsim.kernel._pagealloc import ZERO_PFN

from .world import SEEDS, Tiny, blocked_or_done, clean, run_tiny, until

BASE = 1024  # first vpn of the VMA
N = 1024  # two PMDs
SENTINEL = np.uint64(0x1234)  # input value: shows which entries HMM wrote
NOFAULT = 0
READ = int(HMM_PFN_REQ_FAULT)
WRITE = int(HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)
VALID = int(HMM_PFN_VALID)
W = int(HMM_PFN_WRITE)
ERROR = int(HMM_PFN_ERROR)


def set_pte(w: Tiny, vpn: int, state: int, pfn: int = 0, write: bool = False) -> None:
    w.mm.pte_state[vpn] = state
    w.mm.pte_pfn[vpn] = pfn
    w.mm.pte_write[vpn] = write


async def fault(
    w: Tiny,
    mni: MMUIntervalNotifier,
    start: int,
    end: int,
    flags: int,
    *,
    seq: int | None = None,
    lock: bool = True,
) -> tuple[int, np.ndarray]:
    """read_begin, mmap_read_lock, hmm_range_fault, unlock: (ret, output array)."""
    s = await mmu_interval_read_begin(mni) if seq is None else seq
    out = np.full(end - start, SENTINEL, dtype=np.uint64)
    if lock:
        await w.mm.mmap_lock.down_read()
    ret = await hmm_range_fault(w.mm, HMMRange(mni, s, start, end, out, np.uint64(flags)))
    if lock:
        await w.mm.mmap_lock.up_read()
    return ret, out


def one(
    flags: int,
    setup: Any = None,
    *,
    start: int = BASE,
    end: int = BASE + 1,
    vm_flags: int = VM_READ | VM_WRITE,
    lock: bool = True,
    seed: int | None = None,
) -> tuple[Tiny, Runtime, Any]:
    """One hmm_range_fault over [start, end) after ``setup(w)``; results in w.out."""

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt, vm_flags=vm_flags)
        if setup is not None:
            setup(w)
        w.out["pte_before"] = w.mm.pte_state.copy()

        async def t() -> None:
            mni = await w.insert("m", 0, 4096)
            w.out["ret"], w.out["pfns"] = await fault(w, mni, start, end, flags, lock=lock)

        rt.spawn("t", t())
        return w

    return run_tiny(build, seed)


def ok_one(flags: int, setup: Any = None, **kw: Any) -> tuple[Tiny, Runtime, np.ndarray]:
    w, rt, f = one(flags, setup, **kw)
    clean(f)
    return w, rt, w.out["pfns"]


# ---------------------------------------------------------------- preconditions


def test_without_mmap_lock_it_is_a_lock_misuse() -> None:
    _, _, f = one(NOFAULT, lock=False)
    assert f is not None
    assert f.kind == "lock-misuse"
    assert "mmap_lock" in f.message


def test_with_mmap_lock_held_for_write_it_is_fine() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        w.populate([BASE])

        async def t() -> None:
            mni = await w.insert("m", 0, 4096)
            s = await mmu_interval_read_begin(mni)
            await w.mm.mmap_lock.down_write()
            out = np.zeros(1, dtype=np.uint64)
            w.out["ret"] = await hmm_range_fault(w.mm, HMMRange(mni, s, BASE, BASE + 1, out))
            await w.mm.mmap_lock.up_write()

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out["ret"] == 0


# ---------------------------------------------------------------- non-present entries


@pytest.mark.parametrize("state", [PTE_NONE, PTE_SWAP, PTE_MIGRATION])
def test_non_present_without_fault_request_is_zero_and_nothing_faults(state: int) -> None:
    w, rt, out = ok_one(NOFAULT, lambda w: set_pte(w, BASE, state, 77))
    assert w.out["ret"] == 0
    assert out.tolist() == [0]
    assert "mm_faults" not in rt.stats
    assert "migration_waits" not in rt.stats
    assert int(w.mm.pte_state[BASE]) == state


def test_none_with_read_fault_maps_the_zero_page_valid_not_write() -> None:
    w, rt, out = ok_one(READ)
    assert w.out["ret"] == 0
    v = int(out[0])
    assert v & VALID
    assert not v & W
    assert hmm_pfn_to_pfn(v) == ZERO_PFN
    assert int(w.mm.pte_state[BASE]) == PTE_PRESENT
    assert int(w.mm.pte_pfn[BASE]) == ZERO_PFN
    assert rt.stats["mm_faults"] == 1


def test_none_with_write_fault_allocates_a_writable_page() -> None:
    w, _rt, out = ok_one(WRITE)
    v = int(out[0])
    pfn = hmm_pfn_to_pfn(v)
    assert w.out["ret"] == 0
    assert v & VALID
    assert v & W
    assert pfn not in (0, ZERO_PFN)
    assert int(w.mm.pte_pfn[BASE]) == pfn
    assert bool(w.mm.pte_write[BASE])
    assert int(w.pages.refcount[pfn]) == 1


def test_swap_with_fault_request_reads_the_page_back() -> None:
    w, _, out = ok_one(READ, lambda w: set_pte(w, BASE, PTE_SWAP))
    v = int(out[0])
    assert v & VALID
    assert hmm_pfn_to_pfn(v) not in (0, ZERO_PFN)
    assert int(w.mm.pte_state[BASE]) == PTE_PRESENT


# ---------------------------------------------------------------- present entries


@pytest.mark.parametrize("flags", [NOFAULT, READ, WRITE])
def test_present_writable_is_valid_write_and_the_pfn(flags: int) -> None:
    w, rt, out = ok_one(flags, lambda w: w.populate([BASE]))
    pfn = int(w.mm.pte_pfn[BASE])
    assert int(out[0]) == pfn | VALID | W
    assert "mm_faults" not in rt.stats


def test_present_read_only_without_write_request_is_valid_not_write() -> None:
    w, rt, out = ok_one(READ, lambda w: w.populate([BASE], write=False))
    assert int(out[0]) == int(w.mm.pte_pfn[BASE]) | VALID
    assert "mm_faults" not in rt.stats


@pytest.mark.parametrize("flags", [NOFAULT, READ])
def test_zero_page_is_valid_without_write(flags: int) -> None:
    _w, rt, out = ok_one(flags, lambda w: set_pte(w, BASE, PTE_PRESENT, ZERO_PFN, False))
    assert int(out[0]) == ZERO_PFN | VALID
    assert "mm_faults" not in rt.stats


def test_protnone_without_fault_gives_the_raw_pfn_without_valid() -> None:
    w, rt, out = ok_one(NOFAULT, lambda w: set_pte(w, BASE, PTE_PROTNONE, 99, True))
    assert w.out["ret"] == 0
    assert int(out[0]) == 99  # no VALID, no WRITE: a bare pfn
    assert int(w.mm.pte_state[BASE]) == PTE_PROTNONE
    assert "mm_faults" not in rt.stats


def test_protnone_with_fault_request_is_faulted_back_to_present_valid() -> None:
    w, rt, out = ok_one(READ, lambda w: set_pte(w, BASE, PTE_PROTNONE, 99, True))
    assert w.out["ret"] == 0
    assert int(out[0]) == 99 | VALID | W
    assert int(w.mm.pte_state[BASE]) == PTE_PRESENT
    assert rt.stats["mm_faults"] == 1


# ---------------------------------------------------------------- errors


def test_special_pte_is_error_without_fault_and_efault_with_fault() -> None:
    w, _, out = ok_one(NOFAULT, lambda w: set_pte(w, BASE, PTE_SPECIAL, 55))
    assert w.out["ret"] == 0
    assert int(out[0]) == ERROR
    w, rt, out = ok_one(READ, lambda w: set_pte(w, BASE, PTE_SPECIAL, 55))
    assert w.out["ret"] == -EFAULT
    assert "mm_faults" not in rt.stats


@pytest.mark.parametrize(
    "vm_flags",
    [VM_READ | VM_WRITE | VM_IO, VM_READ | VM_WRITE | VM_PFNMAP, VM_WRITE, 0],
    ids=["VM_IO", "VM_PFNMAP", "no-VM_READ", "no-flags"],
)
def test_unusable_vma_is_error_without_fault_and_efault_with_fault(vm_flags: int) -> None:
    end = BASE + 600  # across a PMD boundary: the whole piece is ERROR
    w, rt, out = ok_one(NOFAULT, lambda w: w.populate([BASE]), end=end, vm_flags=vm_flags)
    assert w.out["ret"] == 0
    assert (out == np.uint64(ERROR)).all()
    w, rt, out = ok_one(READ, lambda w: w.populate([BASE]), end=end, vm_flags=vm_flags)
    assert w.out["ret"] == -EFAULT
    assert "mm_faults" not in rt.stats


def test_no_vma_is_error_without_fault_and_efault_with_fault() -> None:
    # [BASE - 8, BASE + 8): a hole, then the VMA (present pages there).
    def setup(w: Tiny) -> None:
        w.populate(list(range(BASE, BASE + 8)))

    w, _, out = ok_one(NOFAULT, setup, start=BASE - 8, end=BASE + 8)
    assert w.out["ret"] == 0
    assert (out[:8] == np.uint64(ERROR)).all()
    assert (out[8:] & HMM_PFN_VALID).all()
    w, _, out = ok_one(READ, setup, start=BASE - 8, end=BASE + 8)
    assert w.out["ret"] == -EFAULT


def test_write_fault_on_a_vma_without_vm_write_is_eperm() -> None:
    w, rt, _ = ok_one(WRITE, vm_flags=VM_READ)
    assert w.out["ret"] == -EPERM
    assert "mm_faults" not in rt.stats
    # A present read-only page too: the COW break is not allowed without VM_WRITE.
    w, rt, _ = ok_one(WRITE, lambda w: w.populate([BASE], write=False), vm_flags=VM_READ)
    assert w.out["ret"] == -EPERM
    assert "cow_breaks" not in rt.stats
    # Read faults on that VMA are fine.
    w, _, out = ok_one(READ, vm_flags=VM_READ)
    assert w.out["ret"] == 0
    assert int(out[0]) == ZERO_PFN | VALID


# ---------------------------------------------------------------- restarts


@pytest.mark.parametrize("seed", SEEDS)
def test_migration_entry_with_fault_waits_until_the_pte_changes_then_restarts(seed: int) -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        w.populate([BASE])
        old = int(w.mm.pte_pfn[BASE])
        set_pte(w, BASE + 1, PTE_MIGRATION, old + 1000, True)
        new = w.pages.alloc_page()

        async def hmm() -> None:
            mni = await w.insert("m", 0, 4096)
            w.out["ret"], w.out["pfns"] = await fault(w, mni, BASE, BASE + 2, READ)
            w.log.append(("returned",))

        async def migration_done() -> None:
            await until(rt, blocked_or_done(waiter))
            w.log.append(("remove_migration_ptes",))
            # remove_migration_ptes: the new page in place (no invalidation needed).
            w.mm.set_ptes(np.array([BASE + 1]), PTE_PRESENT, new, True)
            await w.mm.migration_wq.wake_up_all()

        waiter = rt.spawn("hmm", hmm())
        rt.spawn("migration", migration_done())
        w.out["new"] = new
        return w

    w, rt, f = run_tiny(build, seed)
    clean(f)
    assert w.log == [("remove_migration_ptes",), ("returned",)]
    assert w.out["ret"] == 0
    out = w.out["pfns"]
    assert int(out[1]) == w.out["new"] | VALID | W
    assert int(out[0]) & VALID
    assert rt.stats["migration_waits"] == 1
    assert rt.stats["hmm_restarts"] >= 1
    assert "mm_faults" not in rt.stats


def test_write_on_present_read_only_breaks_cow_and_the_caller_sees_ebusy() -> None:
    """The COW break invalidates the faulting region's own notifier (set_seq in the
    callback), so the next round's check_retry returns -EBUSY; a fresh read_begin then
    succeeds with the copy."""

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        w.populate([BASE], write=False)
        w.out["old"] = int(w.mm.pte_pfn[BASE])

        async def t() -> None:
            mni = await w.insert("m", 0, 4096)
            s = await mmu_interval_read_begin(mni)
            w.out["first"] = await fault(w, mni, BASE, BASE + 1, WRITE, seq=s)
            w.out["seqs"] = (s, mni.invalidate_seq, w.subs.invalidate_seq)
            w.out["second"] = await fault(w, mni, BASE, BASE + 1, WRITE)

        rt.spawn("t", t())
        return w

    w, rt, f = run_tiny(build)
    clean(f)
    old = w.out["old"]
    ret1, _ = w.out["first"]
    assert ret1 == -EBUSY
    assert rt.stats["cow_breaks"] == 1
    s, mni_seq, subs_seq = w.out["seqs"]
    assert (s, mni_seq, subs_seq) == (1, 3, 4)
    new = int(w.mm.pte_pfn[BASE])
    assert new != old
    assert bool(w.mm.pte_write[BASE])
    assert int(w.pages.refcount[old]) == 0  # the old page was freed after the invalidation
    ret2, out2 = w.out["second"]
    assert ret2 == 0
    assert int(out2[0]) == new | VALID | W
    assert [e[1] for e in w.log] == ["m"]  # exactly one invalidation callback: the COW's


def test_check_retry_at_the_top_of_a_round_gives_ebusy_without_walking() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        w.populate([BASE])

        async def t() -> None:
            mni = await w.insert("m", 0, 4096)
            s = await mmu_interval_read_begin(mni)
            r = MMUNotifierRange(w.mm, BASE + 500, BASE + 501, MMU_NOTIFY_CLEAR)
            await mmu_notifier_invalidate_range_start(r)
            await mmu_notifier_invalidate_range_end(r)
            before = len(rt.trace)
            w.out["stale"] = await fault(w, mni, BASE, BASE + 1, NOFAULT, seq=s)
            w.out["ops"] = [e[2] for e in rt.trace[before:]]
            w.out["fresh"] = await fault(w, mni, BASE, BASE + 1, NOFAULT)

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    ret, out = w.out["stale"]
    assert ret == -EBUSY
    assert out.tolist() == [int(SENTINEL)]  # nothing written
    assert "hmm_walk_pmd" not in w.out["ops"]
    ret, out = w.out["fresh"]
    assert ret == 0
    assert int(out[0]) & VALID


def test_default_flags_zero_never_faults_anything() -> None:
    """The creation path: every kind of entry, across two PMDs; nothing changes."""
    states = [PTE_NONE, PTE_SWAP, PTE_MIGRATION, PTE_PROTNONE, PTE_SPECIAL]

    def setup(w: Tiny) -> None:
        w.populate(list(range(BASE, BASE + N, 3)), write=False)
        for i in range(1, N, 3):
            set_pte(w, BASE + i, states[i % len(states)], 7 if i % 2 else 0)
        w.out["free_before"] = w.pages.nr_free()

    w, rt, out = ok_one(NOFAULT, setup, end=BASE + N)
    assert w.out["ret"] == 0
    assert np.array_equal(w.mm.pte_state, w.out["pte_before"])
    for k in ("mm_faults", "migration_waits", "cow_breaks", "hmm_restarts"):
        assert k not in rt.stats, k
    assert w.pages.nr_free() == w.out["free_before"]  # no page allocated
    assert not (out == SENTINEL).any()  # every entry written
    st = w.mm.pte_state[BASE : BASE + N]
    assert ((out & HMM_PFN_VALID) != 0).tolist() == (st == PTE_PRESENT).tolist()
    assert not ((out & HMM_PFN_WRITE) != 0).any()


def test_successful_fault_leaves_every_entry_valid() -> None:
    states = [PTE_NONE, PTE_SWAP, PTE_PROTNONE]

    def setup(w: Tiny) -> None:
        w.populate(list(range(BASE, BASE + N, 2)))
        for i in range(1, N, 2):
            st = states[i % 3]
            if st == PTE_PROTNONE:  # a NUMA hint over a writable page
                set_pte(w, BASE + i, st, w.pages.alloc_page(), True)
            else:
                set_pte(w, BASE + i, st)

    w, _, out = ok_one(WRITE, setup, end=BASE + N)
    assert w.out["ret"] == 0
    assert ((out & HMM_PFN_VALID) != 0).all()
    assert ((out & HMM_PFN_WRITE) != 0).all()
    pfn = out & ~HMM_PFN_FLAGS
    assert np.array_equal(pfn.astype(np.int64), w.mm.pte_pfn[BASE : BASE + N])


# ---------------------------------------------------------------- encoding


def test_hmm_pfn_flags_is_bits_53_to_63() -> None:
    assert int(HMM_PFN_FLAGS) == sum(1 << b for b in range(53, 64))
    assert HMM_PFN_ORDER_SHIFT == 53
    assert (int(HMM_PFN_VALID), int(HMM_PFN_WRITE), int(HMM_PFN_ERROR)) == (
        1 << 63,
        1 << 62,
        1 << 61,
    )
    assert HMM_PFN_REQ_FAULT == HMM_PFN_VALID
    assert HMM_PFN_REQ_WRITE == HMM_PFN_WRITE


def test_order_of_a_pmd_mapped_thp_appears_in_bits_53_to_57_and_flags_strip_it() -> None:
    def setup(w: Tiny) -> None:
        pfns = w.populate(list(range(BASE, BASE + 512)))
        w.pages.order[pfns] = 9
        w.mm.set_pmd_trans_huge(BASE, True)  # mapped by the PMD entry
        w.populate([BASE + 512])  # a PTE: order 0

    w, _, out = ok_one(NOFAULT, setup, end=BASE + 513)
    pfns = w.mm.pte_pfn[BASE : BASE + 513]
    order = (out >> np.uint64(HMM_PFN_ORDER_SHIFT)) & np.uint64(0x1F)
    assert (order[:512] == 9).all()
    assert int(order[512]) == 0
    assert np.array_equal((out & ~HMM_PFN_FLAGS).astype(np.int64), pfns)
    assert [hmm_pfn_to_pfn(int(v)) for v in out[:3]] == pfns[:3].tolist()
    assert ((out & HMM_PFN_VALID) != 0).all()
    # The order bits are exactly 53..57: nothing of the pfn, nothing of the flags.
    v = int(out[0])
    assert v == int(pfns[0]) | VALID | W | (9 << 53)


# ---------------------------------------------------------------- the order is the mapping's


def test_ptes_mapping_pages_of_a_large_folio_report_order_0() -> None:
    """hmm_vma_handle_pte sets no order bits: a page of a 2 MiB folio mapped by a PTE (its
    PMD split, or part of it unmapped) is order 0.  The old model took the folio's order
    and reported 9 here."""

    def setup(w: Tiny) -> None:
        pfns = w.populate(list(range(BASE, BASE + 512)))
        w.pages.order[pfns] = 9  # a large folio, PTE-mapped (no pmd_trans_huge)

    for flags in (NOFAULT, READ, WRITE):
        _, _, out = ok_one(flags, setup, end=BASE + 512)
        assert ((out & HMM_PFN_VALID) != 0).all()
        assert not ((out >> np.uint64(HMM_PFN_ORDER_SHIFT)) & np.uint64(0x1F)).any()


def test_protnone_thp_without_fault_is_the_pfn_without_order_or_valid() -> None:
    """pmd_to_hmm_pfn_flags is 0 for a protnone PMD: no VALID, no order bits."""

    def setup(w: Tiny) -> None:
        pfns = w.populate(list(range(BASE, BASE + 512)))
        w.pages.order[pfns] = 9
        w.mm.pte_state[BASE : BASE + 512] = PTE_PROTNONE
        w.mm.set_pmd_trans_huge(BASE, True)

    w, _, out = ok_one(NOFAULT, setup, end=BASE + 512)
    assert np.array_equal(out.astype(np.int64), w.mm.pte_pfn[BASE : BASE + 512])


def _orders(out: np.ndarray) -> list[int]:
    return sorted({int(o) for o in (out >> np.uint64(HMM_PFN_ORDER_SHIFT)) & np.uint64(0x1F)})


def test_order_follows_the_mapping_through_thp_fault_mprotect_fork_split_and_munmap() -> None:
    """A THP write fault maps one PMD (order 9); mprotect of the whole PMD and fork keep it
    PMD-mapped in both mms (change_huge_pmd, copy_huge_pmd); __split_huge_pmd, a partial
    munmap (zap of part of a PMD) and a one-page COW break leave PTEs (order 0) while the
    folio stays order 9.  The old model reported 9 after the partial munmap, the COW break
    and the split (it kept or cleared the folio's order instead of the mapping's)."""
    from concsim.kernel import _mm_events as ev
    from concsim.kernel._mm import VM_HUGEPAGE
    from concsim.kernel._mm_user import cpu_access, dup_mm, mprotect

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt, npages=0)
        mm = w.mm
        mm.mmap(BASE, 1536, VM_READ | VM_WRITE | VM_HUGEPAGE)

        async def snap(mni: MMUIntervalNotifier, start: int, n: int) -> list[int]:
            ret, out = await fault(w, mni, start, start + n, NOFAULT)
            assert ret == 0
            return _orders(out)

        async def t() -> None:
            mni = await w.insert("m", 0, 4096)
            for a in (BASE, BASE + 512, BASE + 1024):
                assert (await cpu_access(mm, a, write=True, value=1))[0] == 0
            w.out["fault"] = await snap(mni, BASE, 1536)
            await mprotect(mm, BASE, 512, VM_READ)
            w.out["mprotect"] = await snap(mni, BASE, 512)
            child = await dup_mm(mm)
            w.out["child_huge"] = bool(child.pmd_trans_huge[BASE // 512])
            w.out["fork"] = await snap(mni, BASE, 1536)
            await ev.split_huge_pmd(mm, BASE + 512)
            w.out["split"] = await snap(mni, BASE + 512, 512)
            await ev.munmap(mm, BASE + 1024 + 256, 256)
            w.out["munmap"] = await snap(mni, BASE + 1024, 256)
            await mprotect(mm, BASE, 512, VM_READ | VM_WRITE)
            assert (await cpu_access(mm, BASE + 3, write=True, value=2))[0] == 0
            w.out["cow"] = await snap(mni, BASE, 512)
            w.out["folio_orders"] = sorted(
                {int(o) for o in w.pages.order[mm.pte_pfn[BASE + 512 : BASE + 1280]]}
            )

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out == {
        "fault": [9],
        "mprotect": [9],
        "child_huge": True,
        "fork": [9],
        "split": [0],
        "munmap": [0],
        "cow": [0],
        "folio_orders": [9],
    }


def test_a_hugetlb_vma_reports_its_huge_page_size_as_the_order() -> None:
    """hmm_vma_walk_hugetlb_entry ORs huge_page_order(hstate_vma(vma)) into every entry: 18
    for a 1 GiB page (the snapshot's PUD), 9 for a 2 MiB one."""
    from concsim.kernel._mm import PMD_ORDER, PUD_ORDER, VM_HUGETLB

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt, nr_vpns=1 << 20, capacity=(1 << 18) + 4096, npages=0)
        w.mm.mmap(1 << 18, 1 << 18, VM_READ | VM_WRITE | VM_HUGETLB, vm_huge_order=PUD_ORDER)
        w.mm.mmap(1 << 19, 512, VM_READ | VM_WRITE | VM_HUGETLB, vm_huge_order=PMD_ORDER)

        async def t() -> None:
            mni = await w.insert("m", 0, 1 << 20)
            for name, a in (("1G", (1 << 18) + 1000), ("2M", 1 << 19)):
                ret, out = await fault(w, mni, a, a + 8, READ)
                assert ret == 0
                w.out[name] = _orders(out)

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out == {"1G": [PUD_ORDER], "2M": [PMD_ORDER]}
    pfns = w.mm.pte_pfn[1 << 18 : 1 << 19]
    assert (w.mm.pte_state[1 << 18 : 1 << 19] == PTE_PRESENT).all()  # the whole 1 GiB page
    assert (w.pages.order[pfns] == PUD_ORDER).all()


def test_a_vma_edge_through_a_thp_splits_its_pmd() -> None:
    """mprotect of half a read-only THP changes no PTE, but the VMA edge it makes splits the
    PMD (vma_adjust_trans_huge): the half left in the old VMA is PTE-mapped, order 0."""
    from concsim.kernel._mm import VM_HUGEPAGE
    from concsim.kernel._mm_user import cpu_access, mprotect

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt, npages=0)
        w.mm.mmap(BASE, 512, VM_READ | VM_WRITE | VM_HUGEPAGE)

        async def t() -> None:
            mni = await w.insert("m", 0, 4096)
            assert (await cpu_access(w.mm, BASE, write=True, value=1))[0] == 0
            await mprotect(w.mm, BASE, 512, VM_READ)
            w.out["whole"] = _orders((await fault(w, mni, BASE, BASE + 512, NOFAULT))[1])
            await mprotect(w.mm, BASE + 256, 256, VM_READ | VM_WRITE)
            w.out["half"] = _orders((await fault(w, mni, BASE, BASE + 256, NOFAULT))[1])

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out == {"whole": [9], "half": [0]}
