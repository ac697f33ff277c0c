"""The functional oracles F1-F3 (concsim/checks/_functional.py), both ways: a hand-built
variant that returns the wrong code is reported with the invariant, the call and the codes
expected; the correct variants, on the same input and on the inputs that must fail, are
not."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from concsim.driver import AfterPatch, BeforePatch
from concsim.driver._region import U64_MAX, MshvMemRegion, MshvUserMemRegion
from concsim.engine import Runtime
from concsim.kernel._mm import VM_READ, VM_WRITE
from concsim.kernel._mm_events import munmap
from concsim.scenarios._mshv_world import MshvWorld
from concsim.strategies import PreferTasks

from .world import clean, expect, make_world, run_mshv

U = 1024  # hva page of region 0 (64 pages, gfn 0)
EFAULT, EEXIST, EINVAL, ENOENT, EPERM = 14, 17, 22, 2, 1


class SpuriousCreateFail(AfterPatch):
    """Creation of a movable region fails though nothing failed underneath."""

    name = "spurious-create-fail"

    async def mshv_map_movable_region(self, region: MshvMemRegion) -> int:
        return -EFAULT


class CreateWithoutWalk(AfterPatch):
    """Creation maps the range NO_ACCESS without walking it (mainline's creation), while
    claiming the series' behaviour: a region over a VMA hole is accepted."""

    name = "create-without-walk"
    mshv_map_movable_region = BeforePatch.mshv_map_movable_region


class UnmapIgnoresSize(AfterPatch):
    """The unmap ioctl removes the region holding the gfn whatever size it was given."""

    name = "unmap-ignores-size"

    async def mshv_unmap_user_memory(self, partition: object, mem: MshvUserMemRegion) -> int:
        region = self._region_by_gfn(self.partition, mem.guest_pfn)
        if region is None:
            return -ENOENT
        good = MshvUserMemRegion(region.start_gfn, region.nr_pfns, region.start_uaddr, 0)
        return await super().mshv_unmap_user_memory(self.partition, good)


class SpuriousFaultFail(AfterPatch):
    """The GPA fault gives up on a window it could have served."""

    name = "spurious-fault-fail"

    async def mshv_region_range_fault(self, region: MshvMemRegion, off: int, count: int) -> int:
        return -EFAULT


# ---------------------------------------------------------------- F1: the map ioctl


def test_f1_reports_a_creation_that_fails_with_no_injected_failure() -> None:
    _w, _rt, f = run_mshv(variant=SpuriousCreateFail, create=False, body=_create_first)
    expect(f, "functional", "F1", "mshv_map_user_memory")
    assert f is not None
    assert f.details["ret"] == -EFAULT
    assert f.details["expected"] == [0]
    assert "returned -EFAULT, expected 0" in f.message


async def _create_first(w: MshvWorld, region: MshvMemRegion | None) -> None:
    w.rt.ext["ret"] = await w.driver.mshv_map_user_memory(w.partition, w.mems[0])


@pytest.mark.parametrize("variant", [AfterPatch, BeforePatch])
def test_f1_is_silent_on_a_correct_creation(variant: type[AfterPatch]) -> None:
    _w, rt, f = run_mshv(variant=variant, create=False, body=_create_first)
    clean(f)
    assert rt.ext["ret"] == 0


def _hole_world(variant: type[AfterPatch]) -> tuple[Runtime, object]:
    """Region 0's VMA with page 10 unmapped before creation."""

    async def body(w: MshvWorld, region: MshvMemRegion | None) -> None:
        await munmap(w.mm, U + 10, 1)
        w.rt.ext["ret"] = await w.driver.mshv_map_user_memory(w.partition, w.mems[0])

    _w, rt, f = run_mshv(variant=variant, create=False, body=body)
    return rt, f


def test_f1_reports_a_creation_that_succeeds_over_a_vma_hole() -> None:
    _rt, f = _hole_world(CreateWithoutWalk)
    expect(f, "functional", "F1", "mshv_map_user_memory")
    assert f is not None
    assert f.details["ret"] == 0
    assert f.details["expected"] == [-EFAULT]


def test_f1_a_vma_hole_at_creation_is_efault_for_the_series_and_accepted_by_mainline() -> None:
    rt, f = _hole_world(AfterPatch)
    clean(f)
    assert rt.ext["ret"] == -EFAULT
    rt, f = _hole_world(BeforePatch)  # mainline looks up the first page's VMA only
    clean(f)
    assert rt.ext["ret"] == 0


def test_f1_invalid_requests_get_their_errno_and_the_oracle_is_silent() -> None:
    async def body(w: MshvWorld, region: MshvMemRegion | None) -> None:
        d = w.driver
        m = w.mems[0]
        rets = w.rt.ext.setdefault("rets", {})
        rets["overlap"] = await d.mshv_map_user_memory(
            w.partition, MshvUserMemRegion(m.guest_pfn + 8, 4, m.userspace_addr, 0)
        )
        rets["size0"] = await d.mshv_map_user_memory(
            w.partition, MshvUserMemRegion(4096, 0, m.userspace_addr, 0)
        )
        rets["no_vma"] = await d.mshv_map_user_memory(w.partition, MshvUserMemRegion(4096, 4, 8, 0))
        uaddr = 3 * w.span
        w.mm.mmap(uaddr, 8, VM_READ | VM_WRITE)
        rets["overflow"] = await d.mshv_map_user_memory(
            w.partition, MshvUserMemRegion(U64_MAX - 3, 8, uaddr, 0)
        )

    _w, rt, f = run_mshv(body)
    clean(f)
    assert rt.ext["rets"] == {
        "overlap": -EEXIST,
        "size0": -EINVAL,
        "no_vma": -EINVAL,
        "overflow": -EINVAL,
    }


def test_f1_expected_codes_table() -> None:
    rt = Runtime(PreferTasks([], []))
    w = make_world(rt)
    fo = w.functional
    layout = fo._layout()
    m = w.mems[0]
    assert fo.map_expected(m, layout) == {0}
    assert fo.map_expected(MshvUserMemRegion(0, 0, U, 0), layout) == {-EINVAL}
    assert fo.map_expected(MshvUserMemRegion(U64_MAX, 2, U, 0), layout) == {-EINVAL}
    assert fo.map_expected(MshvUserMemRegion(0, 4, 3, 0), layout) == {-EINVAL}
    a, b, fl = layout[0]
    holed = ((a, a + 10, fl), (a + 11, b, fl))
    assert fo.map_expected(m, holed) == {-EFAULT}


def test_f1_is_silent_when_a_failure_was_injected() -> None:
    """Every hypercall may fail (hv_fail=all): the first map call of creation fails
    (environment choice 2 of [success, insufficient memory, failure]) and the ioctl
    returns -EIO, which F1 accepts."""
    rt = Runtime(PreferTasks([], [2]), max_steps=50_000, trace=True)
    w = make_world(rt, hv_fail="all")

    async def main() -> None:
        rt.ext["ret"] = await w.driver.mshv_map_user_memory(w.partition, w.mems[0])

    rt.spawn("test", main())
    clean(rt.run())
    assert rt.stats.get("hv_failures") == 1
    assert rt.ext["ret"] == -5


# ---------------------------------------------------------------- F2: the unmap ioctl


def _unmap_body(mem_of: str) -> Callable[[MshvWorld, MshvMemRegion], Awaitable[None]]:
    async def body(w: MshvWorld, region: MshvMemRegion) -> None:
        m = w.mems[0]
        mem = {
            "exact": m,
            "wrong_size": MshvUserMemRegion(m.guest_pfn, m.size - 1, m.userspace_addr, 0),
            "no_region": MshvUserMemRegion(4000, 4, m.userspace_addr, 0),
        }[mem_of]
        w.rt.ext["ret"] = await w.driver.mshv_unmap_user_memory(w.partition, mem)

    return body


def test_f2_reports_an_unmap_that_succeeds_on_a_mismatched_size() -> None:
    _w, _rt, f = run_mshv(_unmap_body("wrong_size"), variant=UnmapIgnoresSize)
    expect(f, "functional", "F2", "mshv_unmap_user_memory")
    assert f is not None
    assert f.details["ret"] == 0
    assert f.details["expected"] == [-EINVAL]


@pytest.mark.parametrize(
    ("case", "ret"), [("exact", 0), ("wrong_size", -EINVAL), ("no_region", -ENOENT)]
)
def test_f2_is_silent_on_the_correct_unmap(case: str, ret: int) -> None:
    _w, rt, f = run_mshv(_unmap_body(case))
    clean(f)
    assert rt.ext["ret"] == ret


# ---------------------------------------------------------------- F3: the GPA fault


async def _fault(w: MshvWorld, region: MshvMemRegion) -> None:
    w.rt.ext["ok"] = await w.driver.mshv_region_handle_gfn_fault(region, 1)


def test_f3_reports_a_fault_that_fails_on_a_valid_window() -> None:
    _w, _rt, f = run_mshv(_fault, variant=SpuriousFaultFail)
    expect(f, "functional", "F3", "mshv_region_range_fault")
    assert f is not None
    assert f.details["ret"] == -EFAULT
    assert f.details["expected"] == [0]
    assert f.details["region"] == "region0"


@pytest.mark.parametrize("variant", [AfterPatch, BeforePatch])
def test_f3_is_silent_on_a_correct_fault(variant: type[AfterPatch]) -> None:
    _w, rt, f = run_mshv(_fault, variant=variant)
    clean(f)
    assert rt.ext["ok"] is True


def test_f3_a_hole_in_the_window_is_efault_and_silent() -> None:
    async def body(w: MshvWorld, region: MshvMemRegion) -> None:
        await munmap(w.mm, U + 40, 1)
        await _fault(w, region)

    _w, rt, f = run_mshv(body)
    clean(f)
    assert rt.ext["ok"] is False


def test_f3_mainline_asking_write_on_a_read_only_vma_is_eperm_and_silent() -> None:
    _w, rt, f = run_mshv(_fault, variant=BeforePatch, vma_prot="ro")
    clean(f)
    assert rt.ext["ok"] is False
    assert rt.stats.get("fault_errors") == 1


def test_functional_failures_record_the_step_of_the_return() -> None:
    _w, rt, f = run_mshv(_fault, variant=SpuriousFaultFail)
    assert f is not None
    assert f.details["step"] == f.step == rt.step
    assert np.int64(f.details["gfn"]) == 0
