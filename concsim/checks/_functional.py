"""Functional oracles F1-F3: the VMM and the guest see results, not only memory states.

A safety oracle asks "is the state sound?"; these ask "did the call return what the kernel
returns for that input?".  Each wraps one driver entry point of the world's driver
instance (the driver code is not touched), snapshots at the call what the answer depends
on, and compares the return code with the codes the kernel gives for that input:

* **F1** ``mshv_map_user_memory`` (the MSHV_SET_GUEST_MEMORY map ioctl):

  - ``size == 0`` -> -EINVAL;
  - no VMA at ``userspace_addr`` -> -EINVAL (``vma_lookup`` in the ioctl);
  - ``guest_pfn + size`` overflows a u64 -> -EINVAL (``check_add_overflow``);
  - the gfn range overlaps a listed region -> -EEXIST;
  - a hole in the VMAs over [userspace_addr, +size): -EFAULT when the revision's
    creation walks the range (the series: ``hmm_range_fault`` finds no VMA; a pinned
    region: the pin stops short, -ENOMEM, or -EFAULT if nothing was pinned); mainline
    (``before-patch``) looks up the first page only and maps the rest NO_ACCESS: 0;
  - a pinned region over a VMA without VM_WRITE -> -EFAULT/-ENOMEM (the pin is for write);
  - otherwise 0.

* **F2** ``mshv_unmap_user_memory``: no listed region holds ``guest_pfn`` -> -ENOENT; a
  region holds it but its start gfn, size or address differ -> -EINVAL; otherwise 0.
  Nothing the environment does can make it fail.

* **F3** ``mshv_region_range_fault`` (the GPA intercept's fault of a 512-page window):
  a hole, VM_IO / VM_PFNMAP or a VMA without VM_READ in the window -> -EFAULT
  (``hmm_range_fault``); the revision asking HMM for write access on a VMA without
  VM_WRITE -> -EPERM; otherwise 0.

When the environment injected a failure during the call (a hypercall failure, a failed
GFP_KERNEL allocation: the ``hv_failures`` and ``alloc_failures`` counters moved) any
error code is acceptable (0 too: the call may have retried around it).  When the VMAs
changed during the call (a racing munmap, mprotect or exit), the walk may have met any
layout in between: the codes of the final layout, -EFAULT (a hole) and -ENOMEM (a short
pin; F1) or -EPERM (a VMA that lost VM_WRITE; F3) are acceptable as well.  A return code
outside the acceptable set is a failure of kind ``functional`` with the invariant's name,
the call's input, the code returned and the codes expected; ``details["step"]`` is the
engine step of the return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from concsim.driver._region import (
    MSHV_MAP_FAULT_IN_PAGES,
    MSHV_REGION_TYPE_MEM_PINNED,
    U64_MAX,
    MshvMemRegion,
    MshvUserMemRegion,
)
from concsim.kernel._hmm import HMM_PFN_REQ_WRITE
from concsim.kernel._mm import VM_IO, VM_PFNMAP, VM_READ, VM_WRITE

if TYPE_CHECKING:
    from concsim.driver._driver import MshvDriverBase
    from concsim.driver._region import MshvPartition
    from concsim.engine import Runtime
    from concsim.kernel._mm import MM


class MshvWorld(Protocol):
    """What these oracles need of a world (concsim.scenarios' MshvWorld builds one)."""

    rt: Runtime
    mm: MM
    partition: MshvPartition
    driver: MshvDriverBase


EPERM = 1
ENOENT = 2
ENOMEM = 12
EFAULT = 14
EEXIST = 17
EINVAL = 22

_ERRNO = {
    0: "0",
    -EPERM: "-EPERM",
    -ENOENT: "-ENOENT",
    -ENOMEM: "-ENOMEM",
    -EFAULT: "-EFAULT",
    -EEXIST: "-EEXIST",
    -EINVAL: "-EINVAL",
    -5: "-EIO",
}

Layout = tuple[tuple[int, int, int], ...]


def errno_name(ret: int) -> str:
    return _ERRNO.get(ret, str(ret))


def _names(codes: set[int]) -> str:
    return " or ".join(errno_name(c) for c in sorted(codes, reverse=True))


class FunctionalOracles:
    """F1-F3 over one :class:`MshvWorld`'s driver instance."""

    def __init__(self, world: MshvWorld) -> None:
        self.w = world
        self.rt = world.rt
        d = world.driver
        # On the instance, as the driver's own hypercall attribution does, so a variant's
        # override of a method is checked as well.
        d.mshv_map_user_memory = self._wrap_map(d.mshv_map_user_memory)  # type: ignore[method-assign,assignment]
        d.mshv_unmap_user_memory = self._wrap_unmap(d.mshv_unmap_user_memory)  # type: ignore[method-assign,assignment]
        d.mshv_region_range_fault = self._wrap_fault(d.mshv_region_range_fault)  # type: ignore[method-assign,assignment]

    # ------------------------------------------------------------------ what a call sees

    def _env_failures(self) -> int:
        st = self.rt.stats
        return st.get("hv_failures", 0) + st.get("alloc_failures", 0)

    def _layout(self) -> Layout:
        return tuple((v.vm_start, v.vm_end, v.vm_flags) for v in self.w.mm.vmas)

    @staticmethod
    def _coverage(layout: Layout, start: int, end: int) -> list[tuple[int, int, int]]:
        """The VMA pieces over [start, end), or an empty list if there is a hole."""
        pieces = []
        addr = start
        for a, b, flags in layout:
            if b <= addr or a >= end:
                continue
            if a > addr:
                return []
            pieces.append((addr, min(b, end), flags))
            addr = min(b, end)
            if addr >= end:
                return pieces
        return []

    def _fail(self, invariant: str, message: str, **details: Any) -> BaseException:
        return self.rt.fail(
            "functional", message, invariant=invariant, step=self.rt.step, **details
        )

    # ------------------------------------------------------------------ F1: map ioctl

    def map_expected(self, mem: MshvUserMemRegion, layout: Layout) -> set[int]:
        """The return codes of the map ioctl for ``mem`` with VMAs ``layout`` (see F1)."""
        if mem.size <= 0:
            return {-EINVAL}
        first = self._coverage(layout, mem.userspace_addr, mem.userspace_addr + 1)
        if not first:
            return {-EINVAL}
        if mem.guest_pfn + mem.size > U64_MAX:
            return {-EINVAL}
        end = mem.guest_pfn + mem.size
        for rg in self.w.partition.pt_mem_regions:
            if rg.start_gfn < end and mem.guest_pfn < rg.start_gfn + rg.nr_pfns:
                return {-EEXIST}
        pieces = self._coverage(layout, mem.userspace_addr, mem.userspace_addr + mem.size)
        if self.w.partition.encrypted:  # a pinned region: pinned for write, page by page
            if not pieces or any(not f & VM_WRITE for _, _, f in pieces):
                return {-EFAULT, -ENOMEM}
            return {0}
        if not pieces and self.w.driver.creation_walks_range:
            return {-EFAULT}
        return {0}

    def _wrap_map(
        self, orig: Callable[[Any, MshvUserMemRegion], Awaitable[int]]
    ) -> Callable[[Any, MshvUserMemRegion], Awaitable[int]]:
        async def mshv_map_user_memory(partition: Any, mem: MshvUserMemRegion) -> int:
            env = self._env_failures()
            before = self._layout()
            expected = self.map_expected(mem, before)
            ret = await orig(partition, mem)
            after = self._layout()
            if after != before:
                # The walk or the pin may have met any layout in between: a hole (-EFAULT;
                # a short pin, -ENOMEM) is acceptable, as is what the final layout gives.
                expected |= self.map_expected(mem, after) | {-EFAULT, -ENOMEM}
            if self._env_failures() != env:
                return ret
            if ret not in expected:
                raise self._fail(
                    "F1",
                    f"MSHV_SET_GUEST_MEMORY map of gfn {mem.guest_pfn:#x}+{mem.size} at hva page "
                    f"{mem.userspace_addr} returned {errno_name(ret)}, expected "
                    f"{_names(expected)} (no failure was injected)",
                    where="mshv_map_user_memory",
                    gfn=mem.guest_pfn,
                    size=mem.size,
                    hva=mem.userspace_addr,
                    ret=ret,
                    expected=sorted(expected),
                )
            return ret

        return mshv_map_user_memory

    # ------------------------------------------------------------------ F2: unmap ioctl

    def unmap_expected(self, mem: MshvUserMemRegion) -> int:
        rg = self.w.driver._region_by_gfn(self.w.partition, mem.guest_pfn)
        if rg is None:
            return -ENOENT
        if (rg.start_uaddr, rg.start_gfn, rg.nr_pfns) != (
            mem.userspace_addr,
            mem.guest_pfn,
            mem.size,
        ):
            return -EINVAL
        return 0

    def _wrap_unmap(
        self, orig: Callable[[Any, MshvUserMemRegion], Awaitable[int]]
    ) -> Callable[[Any, MshvUserMemRegion], Awaitable[int]]:
        async def mshv_unmap_user_memory(partition: Any, mem: MshvUserMemRegion) -> int:
            expected = self.unmap_expected(mem)
            ret = await orig(partition, mem)
            if ret != expected:
                raise self._fail(
                    "F2",
                    f"MSHV_SET_GUEST_MEMORY unmap of gfn {mem.guest_pfn:#x}+{mem.size} returned "
                    f"{errno_name(ret)}, expected {errno_name(expected)}",
                    where="mshv_unmap_user_memory",
                    gfn=mem.guest_pfn,
                    size=mem.size,
                    ret=ret,
                    expected=[expected],
                )
            return ret

        return mshv_unmap_user_memory

    # ------------------------------------------------------------------ F3: GPA fault

    def fault_expected(
        self, region: MshvMemRegion, off: int, count: int, layout: Layout
    ) -> set[int]:
        """The fault walks the window one VMA piece at a time, in address order, and stops
        at the first piece that fails: a hole, VM_IO / VM_PFNMAP or no VM_READ (-EFAULT),
        or a write request on a VMA without VM_WRITE (-EPERM)."""
        start = region.start_uaddr + off
        end = start + count
        d = self.w.driver
        addr = start
        for a, b, flags in layout:
            if b <= addr or a >= end:
                continue
            if a > addr:
                return {-EFAULT}  # a hole before this VMA
            if flags & (VM_IO | VM_PFNMAP) or not flags & VM_READ:
                return {-EFAULT}
            vma = self.w.mm.vma_lookup(a if a > addr else addr)
            if vma is not None and (vma.vm_start, vma.vm_end, vma.vm_flags) == (a, b, flags):
                wants_write = bool(d.hmm_default_flags(region, vma, True) & HMM_PFN_REQ_WRITE)
                if wants_write and not flags & VM_WRITE:
                    return {-EPERM}
            addr = min(b, end)
            if addr >= end:
                return {0}
        return {-EFAULT}  # a hole at the end

    def _wrap_fault(
        self, orig: Callable[[MshvMemRegion, int, int], Awaitable[int]]
    ) -> Callable[[MshvMemRegion, int, int], Awaitable[int]]:
        async def mshv_region_range_fault(region: MshvMemRegion, off: int, count: int) -> int:
            env = self._env_failures()
            before = self._layout()
            expected = self.fault_expected(region, off, count, before)
            ret = await orig(region, off, count)
            after = self._layout()
            if after != before:
                # hmm_range_fault may have met a hole (-EFAULT) or a VMA that lost VM_WRITE
                # under a write request (-EPERM) in between.
                expected |= self.fault_expected(region, off, count, after) | {-EFAULT, -EPERM}
            if self._env_failures() != env or region.mreg_type == MSHV_REGION_TYPE_MEM_PINNED:
                return ret
            if ret not in expected:
                gfn = region.start_gfn + off
                raise self._fail(
                    "F3",
                    f"the GPA fault of {region.name}'s gfns {gfn}+{count} (window of "
                    f"{MSHV_MAP_FAULT_IN_PAGES}) returned {errno_name(ret)}, expected "
                    f"{_names(expected)} (no failure was injected)",
                    where="mshv_region_range_fault",
                    gfn=gfn,
                    count=count,
                    region=region.name,
                    ret=ret,
                    expected=sorted(expected),
                )
            return ret

        return mshv_region_range_fault
