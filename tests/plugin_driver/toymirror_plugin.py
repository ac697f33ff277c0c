"""A third HMM driver, outside concsim: the test of the plug-in boundary.

``toymirror`` mirrors one page at a time: a device read of vpn ``v`` looks ``v`` up in its
page table under its mutex and, when the entry is missing, faults that single page in with
``hmm_range_fault`` under the ``mmu_interval_read_begin``/``read_retry`` loop.  It exposes
the hooks concsim's mirror oracles read (``mirrors``, ``on_store``, ``on_access``, ...), so
D1-D3 and L1 check it unchanged, and adds an invariant of its own (T1: a read returns what
the CPU last stored there).  Loaded with ``concsim --import toymirror_plugin`` or through a
``concsim.plugins`` entry point.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from concsim.checks import MIRRORS_OBJ, DmirrorOracles, LockDep
from concsim.driver import patched
from concsim.engine import Runtime
from concsim.kernel import Completion, Mutex
from concsim.kernel import _mm_events as ev
from concsim.kernel._hmm import HMM_PFN_REQ_FAULT, HMM_PFN_WRITE, HMMRange, hmm_range_fault
from concsim.kernel._mm import MM, PTE_PRESENT, VM_READ, VM_WRITE
from concsim.kernel._mm_user import cpu_access
from concsim.kernel._mmu_notifier import (
    ULONG_MAX_VPN,
    MMUIntervalNotifier,
    MMUNotifierRange,
    mmu_interval_notifier_insert,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
    mmu_notifier_range_blockable,
)
from concsim.kernel._pagealloc import PAGE_DATA, PageAllocator
from concsim.scenarios import Param, Scenario, register

EBUSY = 16
BASE = 512


class ToyMirror:
    def __init__(self, rt: Runtime, mm: MM) -> None:
        self.name = "toy0"
        self.mm = mm
        self.lock = Mutex(rt, "toy0.lock", "toy.lock")
        self.notifier = MMUIntervalNotifier("toy0.notifier")
        self.notifier.owner = self
        self.pt = np.zeros(mm.nr_vpns, dtype=np.int64)
        self.pt_write = np.zeros(mm.nr_vpns, dtype=np.bool_)
        self.released = False
        self.pt_obj = "toy0.pt"  # its footprint object (the oracles read it too)


class ToyDriver:
    name: ClassVar[str] = "toy"
    summary: ClassVar[str] = "a one-page-at-a-time HMM mirror"
    mutant: ClassVar[bool] = False
    expect_kinds: ClassVar[tuple[str, ...]] = ()
    expect_invariants: ClassVar[tuple[str, ...]] = ()
    catch_scenario: ClassVar[str] = "toymirror"
    catch_params: ClassVar[dict[str, object]] = {}

    def __init__(self, rt: Runtime, retry_bound: int = 64) -> None:
        self.rt = rt
        self.retry_bound = retry_bound
        self.mirrors: list[ToyMirror] = []
        self.on_store: list[Any] = []
        self.on_access: list[Any] = []
        self.on_snapshot: list[Any] = []
        self.on_open: list[Any] = []

    async def toy_open(self, mm: MM) -> ToyMirror:
        m = ToyMirror(self.rt, mm)
        self.rt.access(MIRRORS_OBJ)  # the oracles read the list of mirrors
        self.mirrors.append(m)
        for hook in self.on_open:
            hook(m)
        await mmu_interval_notifier_insert(m.notifier, mm, 0, ULONG_MAX_VPN, self.toy_invalidate)
        return m

    async def toy_invalidate(self, mni: MMUIntervalNotifier, r: MMUNotifierRange, seq: int) -> bool:
        m: ToyMirror = mni.owner
        if mmu_notifier_range_blockable(r):
            await m.lock.lock()
        elif not await m.lock.trylock():
            return False
        await mmu_interval_set_seq(mni, seq)
        hi = min(r.end, m.mm.nr_vpns)
        self.rt.access(m.pt_obj)
        m.pt[r.start : hi] = 0
        m.pt_write[r.start : hi] = False
        await m.lock.unlock()
        return True

    async def toy_fault(self, m: ToyMirror, vpn: int) -> int:
        for _ in range(self.retry_bound):
            r = HMMRange(m.notifier, 0, vpn, vpn + 1, np.zeros(1, dtype=np.uint64))
            r.default_flags = np.uint64(HMM_PFN_REQ_FAULT)
            r.notifier_seq = await mmu_interval_read_begin(m.notifier)
            await m.mm.mmap_lock.down_read()
            ret = await hmm_range_fault(m.mm, r)
            await m.mm.mmap_lock.up_read()
            if ret == -EBUSY:
                continue
            if ret:
                return ret
            await m.lock.lock()
            if await mmu_interval_read_retry(m.notifier, r.notifier_seq):
                await m.lock.unlock()
                continue
            await self.rt.point("toy_store", m.pt_obj)
            pfn = np.array([int(r.hmm_pfns[0]) & ((1 << 53) - 1)], dtype=np.int64)
            write = np.array([bool(r.hmm_pfns[0] & HMM_PFN_WRITE)])
            for hook in self.on_store:
                hook(m, np.array([vpn], dtype=np.int64), pfn, write)
            m.pt[vpn] = pfn[0]
            m.pt_write[vpn] = write[0]
            await m.lock.unlock()
            return 0
        self.rt.count("dmirror_timeouts")
        return -EBUSY

    async def toy_read(self, m: ToyMirror, vpn: int) -> tuple[int, int]:
        while True:
            await m.lock.lock()
            self.rt.access(m.pt_obj, write=False)
            pfn = int(m.pt[vpn])
            if pfn:
                for hook in self.on_access:
                    hook(m, vpn, pfn, False)
                self.rt.access(PAGE_DATA, write=False)
                value = int(m.mm.pages.data[pfn])
                await m.lock.unlock()
                return 0, value
            await m.lock.unlock()
            ret = await self.toy_fault(m, vpn)
            if ret:
                return ret, 0


class ToyNoRetry(ToyDriver):
    name = "toy-no-retry"
    summary = "toy_fault stores without mmu_interval_read_retry"
    mutant = True
    expect_kinds = ("safety",)
    expect_invariants = ("D1", "D2")

    toy_fault = patched(
        ToyDriver.toy_fault,
        ("if await mmu_interval_read_retry(m.notifier, r.notifier_seq):", "if False:"),
    )


VARIANTS = {v.name: v for v in (ToyDriver, ToyNoRetry)}


def _build(rt: Runtime, params: dict[str, Any], variant: type[ToyDriver]) -> None:
    n = int(params["pages"])
    pages = PageAllocator(rt, 256)
    mm = MM(rt, 2048, pages)
    mm.mmap(BASE, n, VM_READ | VM_WRITE)
    pfns = pages.alloc_pages_bulk(n)
    pages.data[pfns] = 100 + np.arange(n)
    vpns = np.arange(BASE, BASE + n, dtype=np.int64)
    mm.pte_state[vpns] = PTE_PRESENT
    mm.pte_pfn[vpns] = pfns
    mm.pte_write[vpns] = True
    driver = variant(rt)
    rt.ext["lockdep"] = LockDep(rt)
    DmirrorOracles(rt, driver, [mm])
    opened = Completion(rt, "toy_opened")
    box: dict[str, ToyMirror] = {}
    stored: dict[int, int] = {}

    async def device() -> None:
        box["m"] = await driver.toy_open(mm)
        await opened.complete_all()
        for k in range(n):
            before = stored.get(BASE + k, 100 + k)
            ret, value = await driver.toy_read(box["m"], BASE + k)
            # T1, the plug-in's own invariant: a read returns what the CPU stored last before
            # the read or while it ran (the read ends with an unlock, a scheduling point, so
            # a store may land between the read of the value and this check).
            want = {before, stored.get(BASE + k, 100 + k)}
            rt.check(ret != 0 or value in want, f"T1: read {value} at page {k}, want {want}")

    async def cpu() -> None:
        await opened.wait_for_completion()
        await cpu_access(mm, BASE + n - 1, write=True, value=7)
        stored[BASE + n - 1] = 7

    async def migrate() -> None:
        await opened.wait_for_completion()
        await ev.migrate_page(mm, BASE)

    rt.spawn("device", device())
    rt.spawn("cpu", cpu())
    rt.spawn("migrate", migrate())


register(
    Scenario(
        name="toymirror",
        summary="plug-in: a one-page-at-a-time HMM mirror read while a page migrates",
        build=_build,
        params=(Param("pages", int, 3, "pages mirrored", minimum=1, maximum=64),),
        variants=lambda: VARIANTS,
        default_variant="toy",
        max_steps=20_000,
        pct_k=30,
    )
)
