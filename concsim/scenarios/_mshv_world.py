"""Building an mshv world: address space, pages, hypervisor, partition, driver, tasks.

Layout (all in pages).  Region ``r`` lives at hva page ``(r + 1) * span + align`` and gfn
``r * span + align`` where ``span`` is the region size rounded up to 2 MiB plus one spare
PMD, so regions never share a VMA and their gfn ranges do not touch.  Pages are populated
before any task runs (the VMM has touched its memory), spread evenly by ``populated``;
the first ``zero_pages`` unpopulated pages are read-faulted, so they map the shared zero page.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from concsim.checks._catalogue import L4
from concsim.driver._driver import MshvDriverBase
from concsim.driver._region import (
    HV_INTERCEPT_ACCESS_READ,
    HV_INTERCEPT_ACCESS_WRITE,
    MSHV_SET_MEM_BIT_WRITABLE,
    U64_MAX,
    MshvPartition,
    MshvUserMemRegion,
)
from concsim.driver._vp import Vcpu
from concsim.engine import Runtime
from concsim.kernel import Completion
from concsim.kernel import _hv as hvmod
from concsim.kernel import _mm_events as ev
from concsim.kernel._alloc import KernelAllocator
from concsim.kernel._hv import SLAT, Hypervisor
from concsim.kernel._mm import MM, PTE_PRESENT, VM_READ, VM_WRITE
from concsim.kernel._pagealloc import ZERO_PFN, PageAllocator

EVENTS = (
    "migrate",
    "reclaim",
    "munmap",
    "oom",
    "madvise",
    "mprotect",
    "numa",
    "ksm",
    "thp",
    "exit",
    "straddle",
)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


@functools.lru_cache(maxsize=64)
def _population(n: int, frac: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The offsets of the populated pages of an ``n``-page region (``frac`` of them, spread
    evenly) and of the others, computed once per shape (every schedule builds a world)."""
    i = np.arange(n, dtype=np.int64)
    sel = np.ceil((i + 1) * frac) > np.ceil(i * frac)
    filled, empty = i[sel], i[~sel]
    filled.flags.writeable = False  # shared between worlds
    empty.flags.writeable = False
    return filled, empty


@dataclass
class MshvWorld:
    rt: Runtime
    params: dict[str, Any]
    variant: type[MshvDriverBase]
    pages: PageAllocator = field(init=False)
    mm: MM = field(init=False)
    slat: SLAT = field(init=False)
    hv: Hypervisor = field(init=False)
    kalloc: KernelAllocator = field(init=False)
    partition: MshvPartition = field(init=False)
    driver: MshvDriverBase = field(init=False)
    audit_every: int = 0

    def __post_init__(self) -> None:
        p = self.params
        rt = self.rt
        n = int(p["pages"])
        nregions = int(p["regions"])
        align = int(p["align"])
        self.audit_every = int(p["audit_every"])
        self.span = _round_up(n, 512) + 512
        nr_vpns = (nregions + 2) * self.span + align + 512
        overflow = 1 if p["overflow_region"] else 0
        capacity = 2 * (nregions + overflow) * n + 4096
        self.pages = PageAllocator(rt, capacity)
        self.mm = MM(rt, nr_vpns, self.pages)
        self.slat = SLAT(rt, (nregions + 1) * self.span + align, capacity)
        self.kalloc = KernelAllocator(
            rt,
            alloc_fail=bool(p["alloc_fail"]),
            direct_reclaim=self._direct_reclaim if p["direct_reclaim"] else None,
        )
        hv_fail = str(p["hv_fail"])
        self.hv = Hypervisor(
            rt,
            self.slat,
            self.kalloc,
            hv_fail=hv_fail,
            deposit_on_remap=bool(p["deposit_on_remap"]),
        )
        if int(p["hv_batch"]) != hvmod.HV_MAP_GPA_BATCH_SIZE:
            self.hv.batch = int(p["hv_batch"])
        # An encrypted partition is the C code's deterministic way to pinned regions (B1.5).
        self.partition = MshvPartition(rt, encrypted=bool(p["pinned"]))
        self.driver = self.variant(
            rt, self.mm, self.hv, self.kalloc, self.partition, retry_bound=int(p["retry_bound"])
        )
        vm_flags = VM_READ | (VM_WRITE if p["vma_prot"] == "rw" else 0)
        self.mems: list[MshvUserMemRegion] = []
        for r in range(nregions):
            uaddr = (r + 1) * self.span + align
            self.mm.mmap(uaddr, n, vm_flags)
            self._populate(uaddr, n, float(p["populated"]), int(p["zero_pages"]), vm_flags)
            flags = (1 << MSHV_SET_MEM_BIT_WRITABLE) if p["writable"] else 0
            self.mems.append(MshvUserMemRegion(r * self.span + align, n, uaddr, flags))
        self.ready = Completion(rt, "regions_ready")
        from concsim.checks import FunctionalOracles, LockDep, MshvOracles

        rt.ext["lockdep"] = LockDep(rt)
        rt.deadlock_invariant = L4
        self.oracles = MshvOracles(self)
        self.functional = FunctionalOracles(self)

    # ------------------------------------------------------------------ setup

    def _populate(self, uaddr: int, n: int, frac: float, zero: int, vm_flags: int) -> None:
        filled, empty = _population(n, frac)
        vpns = uaddr + filled
        if vpns.size:
            pfns = self.pages.alloc_pages_bulk(int(vpns.size))
            self.mm.pte_state[vpns] = PTE_PRESENT
            self.mm.pte_pfn[vpns] = pfns
            self.mm.pte_write[vpns] = bool(vm_flags & VM_WRITE)
        if zero:
            holes = uaddr + empty[:zero]
            self.mm.pte_state[holes] = PTE_PRESENT
            self.mm.pte_pfn[holes] = ZERO_PFN
            self.mm.pte_write[holes] = False

    def populated_vpns(self, r: int = 0) -> list[int]:
        m = self.mems[r]
        return ev.populated_list(self.mm, m.userspace_addr, m.userspace_addr + m.size)

    async def _direct_reclaim(self) -> None:
        """Direct reclaim from an allocation: reclaim the first reclaimable page."""
        vp = self.populated_vpns(0)
        if vp:
            await ev.reclaim_page(self.mm, vp[0])

    # ------------------------------------------------------------------ tasks

    def spawn_tasks(self) -> None:
        p = self.params
        rt = self.rt
        rt.spawn("vmm", self._vmm())
        for i in range(int(p["vcpus"])):
            rt.spawn(f"vcpu{i}", self._vcpu(i))
        events = [e.strip() for e in str(p["events"]).split(",") if e.strip()]
        for e in events:
            rt.spawn(e, self._event(e))

    async def _vmm(self) -> None:
        d = self.driver
        rt = self.rt
        for mem in self.mems:
            ret = await d.mshv_map_user_memory(self.partition, mem)
            rt.event("ioctl", "MSHV_SET_GUEST_MEMORY", "map", mem.guest_pfn, ret)
            if ret:
                rt.count("create_errors")
        if self.params["overflow_region"]:
            n = self.mems[0].size
            uaddr = (len(self.mems) + 1) * self.span + int(self.params["align"])
            self.mm.mmap(uaddr, n, VM_READ | VM_WRITE)
            bad = MshvUserMemRegion((U64_MAX + 1) - n // 2, n, uaddr, 0)
            ret = await d.mshv_map_user_memory(self.partition, bad)
            rt.event("ioctl", "MSHV_SET_GUEST_MEMORY", "map", bad.guest_pfn, ret)
        await self.ready.complete_all()
        if self.params["destroy"]:
            await rt.point("vmm", "ioctl")
            for mem in self.mems:
                await d.mshv_unmap_user_memory(self.partition, mem)

    def _accesses(self, i: int) -> list[tuple[int, int]]:
        p = self.params
        n = int(p["pages"])
        k = int(p["accesses"])
        writes = bool(p["writes"])
        out = []
        step = max(1, n // max(1, k))
        for j in range(k):
            r = j % len(self.mems)
            off = (i * 3 + j * step + j // 2) % n
            write = writes and j % 2 == 1
            access = HV_INTERCEPT_ACCESS_WRITE if write else HV_INTERCEPT_ACCESS_READ
            out.append((self.mems[r].guest_pfn + off, access))
        return out

    async def _vcpu(self, i: int) -> None:
        vp = Vcpu(
            self.driver,
            self.partition,
            f"vcpu{i}",
            self.oracles.guest_access,
            refault_bound=int(self.params["refault_bound"]),
        )
        await self.ready.wait_for_completion()
        for gfn, access in self._accesses(i):
            await vp.access(gfn, access)

    async def _event(self, name: str) -> None:
        mm = self.mm
        m = self.mems[0]
        n = m.size
        u = m.userspace_addr
        pop = self.populated_vpns(0)
        if name == "migrate":
            if pop:
                await ev.migrate_page(mm, pop[0])
        elif name == "reclaim":
            if pop:
                await ev.reclaim_page(mm, pop[min(1, len(pop) - 1)])
        elif name == "munmap":
            # The VMM gives part of the guest's memory back while the guest runs; before
            # creation it would only make creation fail with -EFAULT (no VMA).
            await self.ready.wait_for_completion()
            await ev.munmap(mm, u + (3 * n) // 4, n - (3 * n) // 4)
        elif name == "oom":
            await ev.oom_reap(mm, u + n // 4, max(1, n // 8))
        elif name == "madvise":
            await ev.madvise_dontneed(mm, u, max(1, n // 8))
        elif name == "mprotect":
            await ev.mprotect_readonly(mm, u + n // 2, max(1, n // 8))
        elif name == "numa":
            await ev.change_prot_numa(mm, u, max(1, n // 4))
        elif name == "ksm":
            if len(pop) >= 2:
                await ev.ksm_merge(mm, pop[0], pop[1])
        elif name == "thp":
            await ev.split_huge_pmd(mm, u)
        elif name == "exit":
            await ev.exit_mmap(mm)
        elif name == "straddle":
            # One invalidation over the last pages of region 0 and the first of region 1
            # (and the unmapped gap between them), when there are two regions.
            last = self.mems[-1]
            lo = u + n - max(1, n // 8)
            hi = last.userspace_addr + max(1, n // 8) if len(self.mems) > 1 else u + n
            await ev.madvise_dontneed(mm, lo, hi - lo)
        else:  # pragma: no cover - names are validated by the scenario
            raise AssertionError(name)
