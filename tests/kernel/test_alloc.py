"""The allocation limit (spec D.5): kmalloc_array refuses more than KMALLOC_MAX_SIZE,
vmalloc_array does not; hence the patch's switch to vmalloc_array for the pfn array."""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from concsim.driver import AfterPatch
from concsim.driver._region import MshvMemRegion
from concsim.engine import Runtime
from concsim.kernel._alloc import KMALLOC_MAX_SIZE, KernelAllocator
from concsim.runs import run_world
from concsim.scenarios import get_scenario
from concsim.strategies import RandomWalk

from .world import clean

LIMIT = 524_288  # 4 MiB of 8-byte entries


def test_kmalloc_max_size_is_4_mib() -> None:
    assert KMALLOC_MAX_SIZE == 4 << 20
    assert LIMIT * 8 == KMALLOC_MAX_SIZE


def test_kmalloc_array_fails_above_4_mib_and_vmalloc_array_does_not() -> None:
    rt = Runtime(RandomWalk(0))
    k = KernelAllocator(rt)
    got: dict[str, npt.NDArray[np.uint64] | None] = {}

    async def t() -> None:
        got["k_at"] = await k.kmalloc_array(LIMIT, 8)
        got["k_over"] = await k.kmalloc_array(LIMIT + 1, 8)
        got["k_over_bytes"] = await k.kmalloc_array(LIMIT // 2 + 1, 16)
        got["v_over"] = await k.vmalloc_array(LIMIT + 1, 8)
        got["v_4g"] = await k.vmalloc_array(2 * LIMIT, 8)

    rt.spawn("t", t())
    clean(rt.run())
    at = got["k_at"]
    assert at is not None
    assert at.shape == (LIMIT,)
    assert at.dtype == np.uint64
    assert got["k_over"] is None
    assert got["k_over_bytes"] is None
    v = got["v_over"]
    assert v is not None
    assert v.shape == (LIMIT + 1,)
    v4 = got["v_4g"]
    assert v4 is not None
    assert v4.shape == (2 * LIMIT,)


class KmallocCollectAndMap(AfterPatch):
    """After-patch, but collect_and_map allocates its pfn array with kmalloc_array, as
    mainline's mshv_region_range_fault did (the only change)."""

    name = "after-patch-kmalloc"

    async def mshv_region_collect_and_map(
        self, region: MshvMemRegion, off: int, count: int, do_fault: bool
    ) -> int:
        pfns = await self.kalloc.kmalloc_array(count, 8)  # <- was vmalloc_array
        if pfns is None:
            return -12  # -ENOMEM
        start = region.start_uaddr + off
        end = start + count
        ret = await self.hmm_fault_and_lock_loop(region, start, end, pfns, do_fault)
        if ret:
            return ret
        self.mshv_region_collect_pfns(region, off, count, pfns, do_fault)
        ret = await self.mshv_region_remap_pfns(region, region.hv_map_flags, off, count)
        self._installed(region, off, count, ret)
        await region.mreg_mutex.unlock()
        return ret


FOUR_GIB = {"pages": 1 << 20, "populated": 0.0, "vcpus": 0, "events": ""}


def _create_4gib(variant: type[AfterPatch]):  # type: ignore[no-untyped-def]
    scn = get_scenario("default")
    params = scn.resolve_params(FOUR_GIB)
    return run_world(scn, variant.name, variant, params, RandomWalk(0), "random", 0, False, None)


def test_a_4_gib_movable_region_needs_vmalloc_array() -> None:
    t0 = time.perf_counter()
    ok = _create_4gib(AfterPatch)
    t1 = time.perf_counter()
    bad = _create_4gib(KmallocCollectAndMap)
    t2 = time.perf_counter()

    assert ok.failure is None, ok.failure
    assert "create_errors" not in ok.stats
    assert "create_failed" not in ok.stats
    # The whole region went through the hypervisor (NO_ACCESS: nothing is populated).
    assert ok.stats["hypercall_reps"] >= 1 << 20

    # A valid request refused with nothing injected: the functional oracle F1 reports it.
    f = bad.failure
    assert f is not None
    assert (f.kind, f.invariant) == ("functional", "F1")
    assert f.details["ret"] == -12
    assert f.details["expected"] == [0]
    assert bad.stats["create_failed"] == 1
    assert "hypercalls" not in bad.stats  # failed before any mapping

    # Runtime budget (measured: about 0.5 s for both runs together).
    assert t1 - t0 < 15, t1 - t0
    assert t2 - t1 < 15, t2 - t1


def test_just_under_the_limit_kmalloc_is_still_fine() -> None:
    """2 GiB (524,288 pages) fits kmalloc_array: the failure above is the size, nothing
    else about the subclass."""
    scn = get_scenario("default")
    params = scn.resolve_params({**FOUR_GIB, "pages": LIMIT})
    res = run_world(scn, "k", KmallocCollectAndMap, params, RandomWalk(0), "random", 0, False, None)
    assert res.failure is None, res.failure
    assert "create_errors" not in res.stats
