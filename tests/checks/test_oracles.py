"""Every oracle of concsim/checks/_oracles.py, both ways: a hand-built state that breaks
the invariant is reported (with the right invariant, at the right place), and the nearest
correct state is not."""

from __future__ import annotations

import numpy as np
import pytest

from concsim.driver import V3
from concsim.driver._region import (
    HV_INTERCEPT_ACCESS_READ,
    HV_INTERCEPT_ACCESS_WRITE,
    MSHV_INVALID_PFN,
    U64_MAX,
    MshvMemRegion,
)
from concsim.engine import Runtime
from concsim.kernel import Completion
from concsim.kernel._hv import HV_MAP_GPA_NO_ACCESS
from concsim.kernel._mm import PTE_NONE, PTE_PRESENT
from concsim.kernel._mm_events import madvise_dontneed, mprotect_readonly, reclaim_page
from concsim.kernel._mmu_notifier import mmu_interval_notifier_remove
from concsim.kernel._pagealloc import ZERO_PFN
from concsim.scenarios._mshv_world import MshvWorld
from concsim.strategies import RandomWalk

from .world import RO, RW, clean, expect, make_world, pfns, run_mshv

U = 1024  # hva page of gfn 0 (region 0)


def vpn(g: int) -> np.ndarray:
    return np.array([U + g], dtype=np.int64)


def test_the_base_world_is_clean_and_as_described() -> None:
    w, _rt, f = run_mshv()
    clean(f)
    assert w.slat.grants(0)
    assert not w.slat.grants(1)
    assert int(w.slat.flags[1]) == HV_MAP_GPA_NO_ACCESS
    assert int(w.slat.pfn[0]) == int(w.mm.pte_pfn[U])


# ---------------------------------------------------------------- S1


def test_s1_page_freed_while_the_slat_grants_it() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.mm.pages.put_page(int(w.slat.pfn[2]))

    _w, _, f = run_mshv(body)
    expect(f, "safety", "S1", "page_freed")
    assert f is not None
    assert f.details["gfn"] == 2


def test_s1_page_freed_after_the_invalidation_is_silent() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await reclaim_page(w.mm, U + 2)  # invalidate -> NO_ACCESS -> swap out -> free

    w, rt, f = run_mshv(body)
    clean(f)
    assert rt.stats["reclaims"] == 1
    assert rt.stats["pages_freed"] == 1
    assert not w.slat.grants(2)


def test_s1_a_free_page_nobody_maps_is_silent() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.mm.pages.put_page(w.mm.pages.alloc_page())

    clean(run_mshv(body)[2])


def test_s1_pte_change_without_invalidation() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.mm.set_ptes(vpn(4), PTE_NONE)

    _, _, f = run_mshv(body)
    expect(f, "safety", "S1", "pte_changed")
    assert f is not None
    assert (f.details["gfn"], f.details["hva"]) == (4, U + 4)


def test_s1_pte_change_inside_an_invalidation_is_silent() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await madvise_dontneed(w.mm, U + 4, 1)
        # A PTE change under a gfn that grants nothing (odd: NO_ACCESS) needs no invalidation.
        p = w.mm.pages.alloc_page()
        w.mm.set_ptes(vpn(5), PTE_PRESENT, p, True)

    w, _, f = run_mshv(body)
    clean(f)
    assert int(w.mm.pte_state[U + 4]) == PTE_NONE


def test_s1_stale_pfn_installed_at_slat_write() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()
        # gfn 1's hva page is not mapped; install some other page there.
        await w.hv.hv_call_map_ram_pfns(1, 1, RW, pfns(int(w.slat.pfn[0])))

    _, _, f = run_mshv(body)
    expect(f, "safety", "S1", "slat_write")
    assert f is not None
    assert f.details["gfn"] == 1


def test_s1_stale_pfn_in_a_multi_entry_write() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()
        good = int(w.slat.pfn[2])
        await w.hv.hv_call_map_ram_pfns(2, 2, RW, pfns(good, good))

    _, _, f = run_mshv(body)
    expect(f, "safety", "S1", "slat_write")
    assert f is not None
    assert f.details["gfn"] == 3


def test_s1_installing_what_the_page_table_maps_is_silent() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        # Fault hva page 3 in (adding a mapping needs no invalidation).
        w.mm.set_ptes(vpn(3), PTE_PRESENT, w.mm.pages.alloc_page(), True)
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(0, 1, RW, pfns(int(w.mm.pte_pfn[U])))
        now = w.mm.pte_pfn[U + 2 : U + 5].copy()
        await w.hv.hv_call_map_ram_pfns(2, 3, RW, now)  # one multi-entry write
        assert r.mreg_pfns is not None
        r.mreg_pfns[2:5] = now.astype(np.uint64)
        await r.mreg_mutex.unlock()

    w, _, f = run_mshv(body)
    clean(f)
    assert w.slat.grants(3)


def test_s1_guest_reaches_a_page_the_process_no_longer_maps() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        # Behind every hook's back (as a lost update would): the PTE now maps another page.
        w.mm.pte_pfn[U] = w.mm.pages.alloc_page()
        w.oracles.guest_access(0, HV_INTERCEPT_ACCESS_READ)

    _, _, f = run_mshv(body)
    expect(f, "safety", "S1", "guest_access")


def test_s1_guest_reaches_a_gfn_no_live_region_owns() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.oracles.guest_access(100, HV_INTERCEPT_ACCESS_READ)

    _, _, f = run_mshv(body)
    expect(f, "safety", "S1", "guest_access")
    assert f is not None
    assert "no live region" in f.message


def test_s1_guest_access_to_a_correct_mapping_is_silent() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        for g in (0, 2, 62):
            w.oracles.guest_access(g, HV_INTERCEPT_ACCESS_READ)
            w.oracles.guest_access(g, HV_INTERCEPT_ACCESS_WRITE)

    clean(run_mshv(body)[2])


def test_s1_audit_catches_what_no_incremental_hook_saw() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.mm.pte_state[U + 6] = PTE_NONE  # a PTE cleared behind the hooks' back

    _, _, f = run_mshv(body)
    expect(f, "safety", "S1", "audit")
    assert f is not None
    assert f.details["gfn"] == 6


def test_s1_audit_is_silent_while_the_mutex_is_held_mid_update() -> None:
    """The audit excuses a region whose mreg_mutex is held (a remap in progress); a step
    audit then sees it, the final one would report the leaked mutex instead."""

    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()
        w.mm.pte_state[U + 6] = PTE_NONE
        w.oracles.audit(final=False)
        w.mm.pte_state[U + 6] = PTE_PRESENT
        await r.mreg_mutex.unlock()

    clean(run_mshv(body)[2])


# ---------------------------------------------------------------- S2


def test_s2_at_install_slot_valid_but_slat_grants_nothing() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        assert r.mreg_pfns is not None
        r.mreg_pfns[1] = np.uint64(int(w.slat.pfn[0]))
        w.oracles.installed(r, 0, 4)

    _, _, f = run_mshv(body)
    expect(f, "safety", "S2", "mshv_region_collect_and_map")
    assert f is not None
    assert f.details["gfn"] == 1


def test_s2_at_install_slot_invalid_but_slat_grants() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        assert r.mreg_pfns is not None
        r.mreg_pfns[2] = MSHV_INVALID_PFN
        w.oracles.installed(r, 2, 1)

    expect(run_mshv(body)[2], "safety", "S2", "mshv_region_collect_and_map")


def test_s2_at_install_is_silent_on_the_mirror_creation_left() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.oracles.installed(r, 0, r.nr_pfns)

    clean(run_mshv(body)[2])


def test_s2_audit_invalid_slot_while_the_slat_grants() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        assert r.mreg_pfns is not None
        r.mreg_pfns[8] = MSHV_INVALID_PFN  # S1 still holds: the SLAT maps the right page

    _, _, f = run_mshv(body)
    expect(f, "safety", "S2", "audit")
    assert f is not None
    assert f.details["gfn"] == 8


def test_s2_audit_ignores_a_stale_valid_slot_over_no_access() -> None:
    """The safe half (B5.5: slot keeps a pfn, the SLAT grants nothing) is not reported."""

    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(8, 1, HV_MAP_GPA_NO_ACCESS, None)
        await r.mreg_mutex.unlock()
        assert r.mreg_pfns is not None
        assert r.mreg_pfns[8] != MSHV_INVALID_PFN

    clean(run_mshv(body)[2])


# ---------------------------------------------------------------- S3


@pytest.mark.parametrize("count", [1, 2])
def test_s3_slat_write_without_the_mutex_while_registered(count: int) -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await w.hv.hv_call_map_ram_pfns(0, count, HV_MAP_GPA_NO_ACCESS, None)

    _, _, f = run_mshv(body)
    expect(f, "safety", "S3", "slat_write")


@pytest.mark.parametrize("count", [1, 2])
def test_s3_the_same_write_under_the_mutex_is_silent(count: int) -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(0, count, HV_MAP_GPA_NO_ACCESS, None)
        assert r.mreg_pfns is not None
        r.mreg_pfns[0:count] = MSHV_INVALID_PFN
        await r.mreg_mutex.unlock()

    clean(run_mshv(body)[2])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("count", [1, 2])
def test_s3_the_mutex_held_by_another_task_does_not_count(count: int, seed: int) -> None:
    rt = Runtime(RandomWalk(seed), max_steps=50_000)
    w = make_world(rt)
    created = Completion(rt, "created")
    held = Completion(rt, "held")

    async def vmm() -> None:
        assert await w.driver.mshv_map_user_memory(w.partition, w.mems[0]) == 0
        await created.complete_all()
        await held.wait_for_completion()
        await w.hv.hv_call_map_ram_pfns(0, count, HV_MAP_GPA_NO_ACCESS, None)

    async def holder() -> None:
        await created.wait_for_completion()
        await w.partition.pt_mem_regions[0].mreg_mutex.lock()
        await held.complete_all()

    rt.spawn("vmm", vmm())
    rt.spawn("holder", holder())
    f = rt.run()
    expect(f, "safety", "S3", "slat_write")
    assert f is not None
    assert f.task == "vmm"


def test_s3_does_not_bind_once_the_notifier_is_removed() -> None:
    """Destroy unmaps after notifier_remove, without the mutex (B10.2): not an S3 case."""

    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await mmu_interval_notifier_remove(r.mreg_mni)
        await w.hv.hv_call_unmap_gpa_pages(0, 4, 0)

    clean(run_mshv(body)[2])


def test_s3_write_to_no_access_gfns_only_is_silent_without_mutex() -> None:
    """A write that neither grants nor revokes access (NO_ACCESS over NO_ACCESS)."""

    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await w.hv.hv_call_map_ram_pfns(1, 1, HV_MAP_GPA_NO_ACCESS, None)

    clean(run_mshv(body)[2])


# ---------------------------------------------------------------- S5


def test_s5_region_freed_with_its_notifier_registered() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.driver._vfree(r)

    _, _, f = run_mshv(body)
    expect(f, "safety", "S5", "vfree")


def test_s5_region_destroyed_through_the_unmap_ioctl_is_silent() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        assert await w.driver.mshv_unmap_user_memory(w.partition, w.mems[0]) == 0
        assert r.freed
        assert not r.mreg_mni.in_tree

    w, _, f = run_mshv(body)
    clean(f)
    assert not w.slat.grants(0)


# ---------------------------------------------------------------- S7


def test_after_patch_creation_maps_the_zero_page_writable() -> None:
    """v1/v2 keep every VALID entry at creation, zero page included: S7 (v3 fixed it)."""
    _, _, f = run_mshv(None, zero_pages=1)
    expect(f, "safety", "S7", "slat_write")
    assert f is not None
    assert f.details["pfn"] == ZERO_PFN


def test_v3_creation_leaves_the_zero_page_no_access() -> None:
    w, _, f = run_mshv(None, variant=V3, zero_pages=1)
    clean(f)
    assert int(w.mm.pte_pfn[U + 1]) == ZERO_PFN
    assert int(w.slat.flags[1]) == HV_MAP_GPA_NO_ACCESS


def test_s7_zero_page_mapped_writable() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        assert int(w.mm.pte_pfn[U + 1]) == ZERO_PFN  # read-faulted zero page, NO_ACCESS
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(1, 1, RW, pfns(ZERO_PFN))

    _, _, f = run_mshv(body, variant=V3, zero_pages=1)
    expect(f, "safety", "S7", "slat_write")
    assert f is not None
    assert "zero page" in f.message


def test_s7_zero_page_mapped_writable_in_a_multi_entry_write() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(0, 2, RW, pfns(int(w.mm.pte_pfn[U]), ZERO_PFN))

    _, _, f = run_mshv(body, variant=V3, zero_pages=1)
    expect(f, "safety", "S7", "slat_write")
    assert f is not None
    assert f.details["gfn"] == 1


def test_s7_zero_page_mapped_read_only_is_silent_and_guest_reads_it() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        assert not w.slat.grants(1)  # v3 left the zero page NO_ACCESS at creation
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(1, 1, RO, pfns(ZERO_PFN))
        assert r.mreg_pfns is not None
        r.mreg_pfns[1] = np.uint64(ZERO_PFN)  # S2: the slot mirrors the SLAT
        await r.mreg_mutex.unlock()
        w.oracles.guest_access(1, HV_INTERCEPT_ACCESS_READ)

    clean(run_mshv(body, variant=V3, zero_pages=1)[2])


def test_s7_guest_write_to_the_zero_page() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(1, 1, RO, pfns(ZERO_PFN))
        await r.mreg_mutex.unlock()
        w.oracles.guest_access(1, HV_INTERCEPT_ACCESS_WRITE)

    _, _, f = run_mshv(body, variant=V3, zero_pages=1)
    expect(f, "safety", "S7", "guest_access")
    assert f is not None
    assert "zero page" in f.message


async def _write_protect(w: MshvWorld, g: int) -> int:
    """mprotect one page read-only (properly: an invalidation), return its pfn."""
    await mprotect_readonly(w.mm, U + g, 1)
    assert not w.mm.pte_write[U + g]
    return int(w.mm.pte_pfn[U + g])


def test_s7_writable_mapping_over_a_read_only_pte() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        p = await _write_protect(w, 2)
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(2, 1, RW, pfns(p))

    _, _, f = run_mshv(body)
    expect(f, "safety", "S7", "slat_write")
    assert f is not None
    assert "read-only" in f.message


def test_s7_writable_mapping_over_a_read_only_pte_in_a_multi_entry_write() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.mm.set_ptes(vpn(1), PTE_PRESENT, w.mm.pages.alloc_page(), True)  # fault in gfn 1
        await _write_protect(w, 2)
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(0, 3, RW, w.mm.pte_pfn[U : U + 3].copy())

    _, _, f = run_mshv(body)
    expect(f, "safety", "S7", "slat_write")
    assert f is not None
    assert f.details["gfn"] == 2
    assert "read-only" in f.message


def test_s7_read_only_mapping_over_a_read_only_pte_is_silent() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        p = await _write_protect(w, 2)
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(2, 1, RO, pfns(p))
        assert r.mreg_pfns is not None
        r.mreg_pfns[2] = np.uint64(p)  # S2: the slot mirrors the SLAT
        await r.mreg_mutex.unlock()
        w.oracles.guest_access(2, HV_INTERCEPT_ACCESS_READ)

    clean(run_mshv(body)[2])


def test_s7_guest_write_to_a_read_only_page() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        p = await _write_protect(w, 2)
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(2, 1, RO, pfns(p))
        await r.mreg_mutex.unlock()
        w.oracles.guest_access(2, HV_INTERCEPT_ACCESS_WRITE)

    _, _, f = run_mshv(body)
    expect(f, "safety", "S7", "guest_access")


def test_s7_pte_write_protected_while_the_slat_lets_the_guest_write() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        p = int(w.mm.pte_pfn[U + 2])
        w.mm.set_ptes(vpn(2), PTE_PRESENT, p, False)  # no invalidation

    _, _, f = run_mshv(body)
    expect(f, "safety", "S7", "pte_changed")


def test_s7_mprotect_with_its_invalidation_is_silent() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await _write_protect(w, 2)

    w, _, f = run_mshv(body)
    clean(f)
    assert not w.slat.grants(2)


# ---------------------------------------------------------------- gfn overlap


def _fake_region(w: MshvWorld, start_gfn: int, n: int) -> MshvMemRegion:
    return w.driver._new_region(start_gfn, n, 4096, RW)


@pytest.mark.parametrize(
    ("start", "n"),
    [(10, 4), (60, 8), (0, 64), ((U64_MAX + 1) - 2, 4)],
    ids=["inside", "straddles-end", "same", "wraps-past-2^64"],
)
def test_gfn_overlap_is_reported(start: int, n: int) -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.oracles.region_created(_fake_region(w, start, n))

    _, _, f = run_mshv(body)
    expect(f, "safety", "gfn-overlap", "mshv_partition_create_region")


@pytest.mark.parametrize(
    ("start", "n"),
    [(64, 4), (100, 8), ((U64_MAX + 1) - 4, 4)],
    ids=["adjacent", "apart", "ends-exactly-at-2^64"],
)
def test_disjoint_gfn_ranges_are_silent(start: int, n: int) -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        fake = _fake_region(w, start, n)
        w.oracles.region_created(fake)
        fake.freed = True  # hand-built: never really created

    clean(run_mshv(body)[2])


@pytest.mark.parametrize(("n", "overlaps"), [(4, False), (5, True)])
def test_gfn_overlap_boundary_below_the_region(n: int, overlaps: bool) -> None:
    """Region 0 at gfn 8 (align=8): [4, 8) touches it, [4, 9) overlaps it."""

    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        assert r.start_gfn == 8
        fake = _fake_region(w, 4, n)
        w.oracles.region_created(fake)
        fake.freed = True

    _, _, f = run_mshv(body, align=8)
    if overlaps:
        expect(f, "safety", "gfn-overlap", "mshv_partition_create_region")
    else:
        clean(f)


def test_gfn_overlap_ignores_freed_regions() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        assert await w.driver.mshv_unmap_user_memory(w.partition, w.mems[0]) == 0
        fake = _fake_region(w, 10, 4)
        w.oracles.region_created(fake)
        fake.freed = True

    clean(run_mshv(body)[2])


# ---------------------------------------------------------------- L4


def test_l4_mutex_leaked_at_the_final_audit() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()

    _, _, f = run_mshv(body)
    expect(f, "deadlock", "L4", "audit")
    assert f is not None
    assert f.details["lock"] == "region0.mreg_mutex"


def test_l4_mutex_released_is_silent() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()
        await r.mreg_mutex.unlock()

    clean(run_mshv(body)[2])
