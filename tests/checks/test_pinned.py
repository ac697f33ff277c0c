"""Pinned regions (B8): the pin, the events that must leave pinned pages alone, the guest's
rule for a pinned region, and the destroy order, each both ways."""

from __future__ import annotations

import numpy as np
import pytest

import concsim
from concsim.driver import MUTANTS
from concsim.driver._region import (
    HV_INTERCEPT_ACCESS_READ,
    HV_INTERCEPT_ACCESS_WRITE,
    MSHV_INVALID_PFN,
    MSHV_REGION_TYPE_MEM_PINNED,
    MshvMemRegion,
)
from concsim.engine import Runtime
from concsim.kernel._mm import PTE_MIGRATION, PTE_NONE, PTE_PRESENT
from concsim.kernel._mm_events import (
    change_prot_numa,
    ksm_merge,
    migrate_page,
    munmap,
    reclaim_page,
)
from concsim.kernel._mm_fault import pin_user_pages_fast
from concsim.scenarios._mshv_world import MshvWorld
from concsim.strategies import Replay

from ..kernel.world import Tiny
from .world import clean, expect, run_mshv

U = 1024  # hva page of gfn 0 (region 0)


def _pinned(w: MshvWorld, r: MshvMemRegion) -> np.ndarray:
    assert r.mreg_type == MSHV_REGION_TYPE_MEM_PINNED
    assert r.mreg_pfns is not None
    return r.mreg_pfns.astype(np.int64)


# ---------------------------------------------------------------------- creation


def test_a_pinned_region_pins_every_page_for_write_and_maps_it() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        p = _pinned(w, r)
        vpns = np.arange(U, U + r.nr_pfns)
        # Every page was faulted in for write (the odd ones were not populated) and pinned.
        assert (w.mm.pte_state[vpns] == PTE_PRESENT).all()
        assert (p == w.mm.pte_pfn[vpns]).all()
        assert (w.pages.pincount[p] == 1).all()
        assert (w.slat.pfn[: r.nr_pfns] == p).all()
        assert all(w.slat.grants(g) for g in range(r.nr_pfns))

    clean(run_mshv(body, pinned=True)[2])


def test_pinning_fails_on_a_read_only_vma_and_pins_nothing() -> None:
    async def body(w: MshvWorld, r: None) -> None:
        ret = await w.driver.mshv_map_user_memory(w.partition, w.mems[0])
        assert ret == -14  # -EFAULT: FOLL_WRITE on a VMA without VM_WRITE
        assert not w.pages.pincount.any()
        assert not any(w.slat.grants(g) for g in range(64))

    clean(run_mshv(body, create=False, pinned=True, vma_prot="ro")[2])


def test_a_short_pin_unpins_what_it_pinned() -> None:
    async def body(w: MshvWorld, r: None) -> None:
        await munmap(w.mm, U + 40, 4)  # a hole in the middle of the region
        ret = await w.driver.mshv_map_user_memory(w.partition, w.mems[0])
        assert ret == -12  # 40 pages pinned, then short: -ENOMEM (none pinned: -EFAULT)
        assert not w.pages.pincount.any()
        assert not any(w.slat.grants(g) for g in range(64))

    clean(run_mshv(body, create=False, pinned=True)[2])


# ---------------------------------------------------------------------- GUP and the events


def _tiny_run(body) -> Tiny:  # type: ignore[no-untyped-def]
    rt = Runtime(Replay([], strict=False), trace=True)
    t = Tiny(rt)
    rt.spawn("test", body(t))
    f = rt.run()
    assert f is None, f
    return t


def test_pin_waits_out_a_migration_and_pins_the_new_page() -> None:
    rt = Runtime(Replay([], strict=False), trace=True)
    t = Tiny(rt)
    (old,) = t.populate([t.base])
    t.mm.pte_state[t.base] = PTE_MIGRATION  # a migration is under way

    async def pin() -> None:  # runs first, and waits
        out = np.full(1, MSHV_INVALID_PFN, dtype=np.uint64)
        assert await pin_user_pages_fast(t.mm, t.base, 1, out) == 1
        t.out["pinned"] = int(out[0])

    async def finish_migration() -> None:
        new = t.pages.alloc_page()
        t.mm.set_ptes(np.array([t.base]), PTE_PRESENT, new, True)
        await t.mm.migration_wq.wake_up_all()
        t.out["new"] = new

    rt.spawn("pin", pin())
    rt.spawn("migrate", finish_migration())
    assert rt.run() is None
    assert t.out["pinned"] == t.out["new"] != int(old)
    assert t.pages.pincount[t.out["new"]] == 1
    assert rt.stats.get("migration_waits") == 1


@pytest.mark.parametrize("event", ["migrate", "reclaim", "numa", "ksm"])
def test_events_leave_a_pinned_page_alone_and_take_an_unpinned_one(event: str) -> None:
    async def body(t: Tiny) -> None:
        pfns = t.populate([t.base, t.base + 1, t.base + 2, t.base + 3])
        t.pages.pin_user_page(int(pfns[0]))
        t.pages.pin_user_page(int(pfns[1]))
        for vpn in (t.base, t.base + 2):  # one pinned, one not
            if event == "migrate":
                await migrate_page(t.mm, vpn)
            elif event == "reclaim":
                await reclaim_page(t.mm, vpn)
            elif event == "numa":
                await change_prot_numa(t.mm, vpn, 1)
            else:
                await ksm_merge(t.mm, vpn, vpn + 1)
        t.out["pfns"] = pfns

    t = _tiny_run(body)
    pfns = t.out["pfns"]
    assert t.mm.pte_state[t.base] == PTE_PRESENT
    assert t.mm.pte_pfn[t.base] == pfns[0]
    assert t.mm.pte_write[t.base]
    changed = (
        t.mm.pte_state[t.base + 2] != PTE_PRESENT
        or t.mm.pte_pfn[t.base + 2] != pfns[2]
        or not t.mm.pte_write[t.base + 2]
    )
    assert changed, f"{event} did nothing to the unpinned page either"


def test_unpinning_a_page_that_is_not_pinned_is_a_failure() -> None:
    rt = Runtime(Replay([], strict=False))
    t = Tiny(rt)

    async def body() -> None:
        (pfn,) = t.populate([t.base])
        t.pages.unpin_user_pages(np.array([pfn]))

    rt.spawn("test", body())
    f = rt.run()
    assert f is not None
    assert f.kind == "memory"
    assert "not pinned" in f.message


# ---------------------------------------------------------------------- the guest's rule


def test_guest_access_to_a_pinned_page_the_process_unmapped_is_silent() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await munmap(w.mm, U, 8)
        assert w.mm.pte_state[U] == PTE_NONE
        w.oracles.guest_access(0, HV_INTERCEPT_ACCESS_READ)
        w.oracles.guest_access(1, HV_INTERCEPT_ACCESS_WRITE)

    clean(run_mshv(body, pinned=True)[2])


def test_guest_access_past_the_pin_is_s1() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        # Behind every hook's back: gfn 0's page is no longer pinned for the region.
        assert r.mreg_pfns is not None
        w.pages.pincount[int(r.mreg_pfns[0])] = 0
        w.oracles.guest_access(0, HV_INTERCEPT_ACCESS_READ)

    _, _, f = run_mshv(body, pinned=True)
    expect(f, "safety", "S1", "guest_access")
    assert f is not None
    assert "not the page pinned" in f.message


def test_guest_access_to_another_page_than_the_pinned_one_is_s1() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        assert r.mreg_pfns is not None
        r.mreg_pfns[0] = np.uint64(w.pages.alloc_page())
        w.oracles.guest_access(0, HV_INTERCEPT_ACCESS_READ)

    _, _, f = run_mshv(body, pinned=True)
    expect(f, "safety", "S1", "guest_access")


# ---------------------------------------------------------------------- whole runs


@pytest.mark.parametrize("variant", ["before-patch", "after-patch", "v3", "stateless"])
def test_pinned_regions_are_clean_under_every_event(variant: str) -> None:
    params = {
        "pinned": True,
        "destroy": True,
        "events": "migrate,reclaim,munmap,oom,madvise,numa,ksm,thp",
    }
    for seed in range(60):
        r = concsim.run("default", variant=variant, seed=seed, params=params, trace=False)
        assert r.ok, (seed, r.failure)
        assert r.stats.get("hypercalls.creation", 0) >= 1


def test_destroy_that_unpins_before_unmapping_is_caught() -> None:
    cls = MUTANTS["pinned-unpin-before-unmap"]
    found = [
        r.failure
        for s in range(20)
        if (
            r := concsim.run(
                "default", variant=cls.name, seed=s, params=cls.catch_params, trace=False
            )
        ).failure
        is not None
    ]
    assert found
    assert {(f.kind, f.invariant) for f in found} == {("safety", "S1")}


# ---------------------------------------------------------------------- KSM against a zap


def test_ksm_backs_off_when_a_page_is_zapped_between_its_steps() -> None:
    """KSM write-protects one page, then the other; a madvise(DONTNEED) of either page in
    between used to make it merge a page that was gone (a reference dropped on pfn 0).
    Over 300 random walks: no failure, and each page's references are exactly the PTEs
    that map it."""
    from concsim.kernel._mm_events import madvise_dontneed
    from concsim.strategies import RandomWalk

    for seed in range(300):
        rt = Runtime(RandomWalk(seed), trace=False)
        t = Tiny(rt)
        a, b = t.base, t.base + 1
        pa, pb = t.populate([a, b])
        rt.spawn("ksm", ksm_merge(t.mm, a, b))
        rt.spawn("madvise", madvise_dontneed(t.mm, b if seed % 2 else a, 1))
        f = rt.run()
        assert f is None, (seed, f)
        # Every page's references are exactly the PTEs that map it, whatever the order.
        for pfn in (pa, pb):
            maps = sum(
                1
                for vpn in (a, b)
                if t.mm.pte_state[vpn] == PTE_PRESENT and t.mm.pte_pfn[vpn] == pfn
            )
            assert t.pages.refcount[pfn] == maps, (seed, pfn)
        if t.mm.pte_state[b] == PTE_PRESENT and t.mm.pte_pfn[b] == pa:
            assert not t.mm.pte_write[b]  # merged: b shares a's page read-only
