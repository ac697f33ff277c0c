"""The vCPU: mshv_vp_ioctl_run_vp's loop of dispatch, GPA intercept, re-dispatch.

The guest touches a gfn.  The hypervisor looks at the SLAT: an entry that grants the access
lets it through (the oracles check what the guest reached); a NO_ACCESS entry, or one
without the needed permission, raises HVMSG_GPA_INTERCEPT, which mshv handles
(``mshv_handle_gpa_intercept``) and then re-dispatches the vCPU; an unmapped gfn raises
HVMSG_UNMAPPED_GPA, which mshv leaves to the VMM, as it does an intercept it declines.

Liveness (L3): an access the region and the VMA permit must eventually be served.  A vCPU
that keeps faulting on the same access more than ``refault_bound`` times, or whose
permitted access is handed to the VMM while no environment failure was injected, is a
liveness failure.  An unmapped gfn inside a listed region (HVMSG_UNMAPPED_GPA) is the mark
of a failed map hypercall's rollback, so after any injected hypercall failure it is not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from concsim.driver._region import (
    ACCESS_NAMES,
    HV_INTERCEPT_ACCESS_WRITE,
    MSHV_MAP_FAULT_IN_PAGES,
    MSHV_REGION_TYPE_MEM_MOVABLE,
    MshvPartition,
)
from concsim.kernel._hv import (
    HV_MAP_GPA_EXECUTABLE,
    HV_MAP_GPA_READABLE,
    HV_MAP_GPA_WRITABLE,
    flags_grant,
)
from concsim.kernel._mm import VM_READ, VM_WRITE

if TYPE_CHECKING:
    from concsim.driver._driver import MshvDriverBase

_NEED = {0: HV_MAP_GPA_READABLE, 1: HV_MAP_GPA_WRITABLE, 2: HV_MAP_GPA_EXECUTABLE}

GuestHook = Callable[[int, int], None]


class Vcpu:
    def __init__(
        self,
        driver: MshvDriverBase,
        partition: MshvPartition,
        name: str,
        on_access: GuestHook,
        *,
        refault_bound: int = 16,
    ) -> None:
        self.d = driver
        self.partition = partition
        self.name = name
        self.on_access = on_access
        self.refault_bound = refault_bound

    def _permitted(self, gfn: int, access: int) -> bool:
        """Would a correct driver serve this access?  (Region listed and movable, its flags
        and the VMA allow it.)"""
        d = self.d
        region = d._region_by_gfn(self.partition, gfn)
        if region is None or region.mreg_type != MSHV_REGION_TYPE_MEM_MOVABLE:
            return False
        if not region.hv_map_flags & _NEED[access]:
            return False
        # The fault path collects the whole 512-page window around the gfn, so every page of
        # it needs a VMA (a hole anywhere makes the fault fail with -EFAULT, as in the kernel).
        off = gfn - region.start_gfn
        off -= off % MSHV_MAP_FAULT_IN_PAGES
        end = min(region.nr_pfns, off + MSHV_MAP_FAULT_IN_PAGES)
        vpn = region.start_uaddr + off
        while vpn < region.start_uaddr + end:
            vma = d.mm.vma_lookup(vpn)
            if vma is None or not vma.vm_flags & VM_READ:
                return False
            vpn = vma.vm_end
        vma = d.mm.vma_lookup(region.start_uaddr + gfn - region.start_gfn)
        assert vma is not None
        return not (access == HV_INTERCEPT_ACCESS_WRITE and not vma.vm_flags & VM_WRITE)

    def _env_failures(self) -> int:
        self.d.rt.access("env-failures", write=False)  # written by env-choice steps (ALL)
        st = self.d.rt.stats
        return st.get("hv_failures", 0) + st.get("alloc_failures", 0)

    async def access(self, gfn: int, access: int) -> None:
        """One guest access, re-dispatched until it is served or handed to the VMM."""
        d = self.d
        rt = d.rt
        slat = d.hv.slat
        need = _NEED[access]
        env_before = self._env_failures()
        faults = 0
        obj = f"gfn{gfn}"
        while True:
            await rt.point("guest_access", obj, gfn, ACCESS_NAMES[access], read=True)
            rt.access("slat", write=False)
            slat.check_range(gfn, gfn + 1, "guest_access")
            fl = int(slat.flags[gfn])
            if flags_grant(fl) and fl & need:
                self.on_access(gfn, access)
                rt.count("guest_accesses")
                return
            if fl == 0:
                handled = False  # HVMSG_UNMAPPED_GPA: not mshv's, goes to the VMM
            else:
                faults += 1
                rt.count("gpa_intercepts")
                if faults > self.refault_bound:
                    raise rt.fail(
                        "liveness",
                        f"vCPU {self.name} re-faulted {ACCESS_NAMES[access]} of gfn {gfn} "
                        f"{faults} times: the intercept never installs the access",
                        invariant="L3",
                        where="mshv_vp_ioctl_run_vp",
                        gfn=gfn,
                    )
                handled = await d.mshv_handle_gpa_intercept(self.partition, gfn, access)
            if handled:
                continue
            rt.count("vmm_exits")
            # A gfn of a listed region is left unmapped only by the rollback of a map
            # hypercall that failed (a hypervisor failure, or a deposit whose allocation
            # failed), whichever task's it was and however long ago: the guest's exit to
            # the VMM is then the injected failure's lasting effect, not a liveness bug.
            rolled_back = fl == 0 and self._env_failures() > 0
            if (
                self._permitted(gfn, access)
                and self._env_failures() == env_before
                and not rolled_back
            ):
                raise rt.fail(
                    "liveness",
                    f"vCPU {self.name}: {ACCESS_NAMES[access]} of gfn {gfn} is permitted by the "
                    "region and the VMA, but the intercept was handed to the VMM "
                    "(no environment failure was injected)",
                    invariant="L3",
                    where="mshv_vp_ioctl_run_vp",
                    gfn=gfn,
                )
            return
