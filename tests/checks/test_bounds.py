"""S9 bounds: an out-of-range index or range into each model array is the invariant
failure S9 naming the array, the range and the caller, never a silent numpy clip or a
plain IndexError; in-range use of the same entry points is clean."""

from __future__ import annotations

import numpy as np
import pytest

from concsim.driver import AfterPatch
from concsim.driver._region import MshvMemRegion
from concsim.engine import Failure
from concsim.kernel._hmm import HMMRange, hmm_range_fault
from concsim.kernel._hv import HV_MAP_GPA_NO_ACCESS
from concsim.kernel._mm_events import madvise_dontneed
from concsim.scenarios._mshv_world import MshvWorld

from .world import RW, clean, expect, run_mshv

U = 1024  # hva page of gfn 0 (region 0, 64 pages)


def _s9(f: Failure | None, array: str, lo: int, hi: int, caller: str) -> None:
    expect(f, "safety", "S9", caller)
    assert f is not None
    assert f.details["array"] == array
    assert f.details["range"] == [lo, hi]
    assert array in f.message
    assert caller in f.message


# ---------------------------------------------------------------- mreg_pfns


def test_mreg_pfns_range_past_the_end() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await w.driver.mshv_region_chunk_remap(r, RW, 60, 10, False)

    _w, _rt, f = run_mshv(body)
    _s9(f, "region0.mreg_pfns", 60, 70, "mshv_region_chunk_remap")
    assert f is not None
    assert f.details["size"] == 64


def test_mreg_pfns_in_range_is_clean() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()
        assert await w.driver.mshv_region_chunk_remap(r, HV_MAP_GPA_NO_ACCESS, 54, 10, False) == 0
        await r.mreg_mutex.unlock()

    clean(run_mshv(body)[2])


def test_mreg_pfns_negative_offset() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.driver.mshv_region_invalidate_pfns(r, -2, 4)

    _w, _rt, f = run_mshv(body)
    _s9(f, "region0.mreg_pfns", -2, 2, "mshv_region_invalidate_pfns")


class FaultPastTheEnd(AfterPatch):
    """The GPA fault always collects a full 512-page window, even past the region's end."""

    name = "fault-past-the-end"

    async def mshv_region_handle_gfn_fault(self, region: MshvMemRegion, gfn: int) -> bool:
        off = gfn - region.start_gfn
        off -= off % 512
        return await self.mshv_region_range_fault(region, off, 512) == 0


def test_a_variant_faulting_past_the_region_is_reported_not_clipped() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await w.driver.mshv_region_handle_gfn_fault(r, 3)

    _w, _rt, f = run_mshv(body, variant=FaultPastTheEnd)
    _s9(f, "region0.mreg_pfns", 0, 512, "mshv_region_collect_and_map")


# ---------------------------------------------------------------- the SLAT


def test_slat_hypercall_past_the_end() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        n = w.slat.nr_gfns
        await w.hv.hv_call_map_ram_pfns(n - 2, 4, HV_MAP_GPA_NO_ACCESS, None)

    w, _rt, f = run_mshv(body)
    n = w.slat.nr_gfns
    _s9(f, "the SLAT", n - 2, n + 2, "hv_call_map_ram_pfns")


def test_slat_unmap_past_the_end() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await w.hv.hv_call_unmap_gpa_pages(w.slat.nr_gfns, 1, 0)

    w, _rt, f = run_mshv(body)
    n = w.slat.nr_gfns
    _s9(f, "the SLAT", n, n + 1, "hv_call_unmap_gpa_pages")


def test_slat_write_of_a_negative_gfn() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.slat.write(
            np.array([-1], dtype=np.int64),
            np.array([HV_MAP_GPA_NO_ACCESS], dtype=np.uint32),
            np.zeros(1, dtype=np.int64),
        )

    _w, _rt, f = run_mshv(body)
    _s9(f, "the SLAT", -1, 0, "SLAT.write")


def test_slat_map_with_too_few_pfns() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await r.mreg_mutex.lock()
        await w.hv.hv_call_map_ram_pfns(0, 8, RW, np.array([2, 3], dtype=np.int64))

    _w, _rt, f = run_mshv(body)
    _s9(f, "the pfns argument", 0, 8, "hv_call_map_ram_pfns")


# ---------------------------------------------------------------- the page table


def test_page_table_range_past_the_end() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await madvise_dontneed(w.mm, w.mm.nr_vpns - 2, 4)

    w, _rt, f = run_mshv(body)
    n = w.mm.nr_vpns
    _s9(f, "the page table", n - 2, n + 2, "madvise_dontneed")


def test_page_table_set_ptes_negative_vpn() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        w.mm.set_ptes(np.array([U, -3], dtype=np.int64), 0)

    _w, _rt, f = run_mshv(body)
    _s9(f, "the page table", -3, U + 1, "set_ptes")


@pytest.mark.parametrize("off", [0, 60])
def test_page_table_in_range_is_clean(off: int) -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await madvise_dontneed(w.mm, U + off, 4)

    clean(run_mshv(body)[2])


# ---------------------------------------------------------------- HMM's pfns


async def _hmm(w: MshvWorld, r: MshvMemRegion, n_pfns: int, end: int) -> int:
    seq = r.mreg_mni.invalidate_seq
    await w.mm.mmap_lock.down_read()
    try:
        rng = HMMRange(r.mreg_mni, seq, U, end, np.zeros(n_pfns, dtype=np.uint64))
        return await hmm_range_fault(w.mm, rng)
    finally:
        await w.mm.mmap_lock.up_read()


def test_hmm_pfns_shorter_than_the_range() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await _hmm(w, r, 16, U + 64)

    _w, _rt, f = run_mshv(body)
    _s9(f, "hmm_pfns", 0, 64, "hmm_range_fault")
    assert f is not None
    assert f.details["size"] == 16


def test_hmm_range_past_the_page_table() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        await _hmm(w, r, w.mm.nr_vpns + 8 - U, w.mm.nr_vpns + 8)

    w, _rt, f = run_mshv(body)
    _s9(f, "the page table", U, w.mm.nr_vpns + 8, "hmm_range_fault")


def test_hmm_in_range_is_clean() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        assert await _hmm(w, r, 64, U + 64) == 0

    clean(run_mshv(body)[2])


def test_driver_pfns_array_shorter_than_the_walk() -> None:
    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        pfns = np.zeros(8, dtype=np.uint64)
        await w.driver.mshv_region_hmm_fault_and_lock(r, U, U + 64, pfns, False)

    _w, _rt, f = run_mshv(body)
    _s9(f, "pfns", 0, 64, "mshv_region_hmm_fault_and_lock")
