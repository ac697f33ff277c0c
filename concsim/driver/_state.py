"""What the driver's function groups share: the world the mshv code runs in.

``MshvRegions`` (mshv_regions.c) and ``MshvRootMain`` (mshv_root_main.c) build on this
class, so each method sees the driver's state (``self.rt``, ``self.mm``, ``self.hv``, ...)
with its type; :class:`concsim.driver.MshvDriverBase` fills it in.
"""

from __future__ import annotations

from concsim.driver._region import MshvMemRegion, MshvPartition
from concsim.engine import Runtime
from concsim.kernel._alloc import KernelAllocator
from concsim.kernel._bounds import check_range
from concsim.kernel._hv import Hypervisor
from concsim.kernel._mm import MM


class MshvDriverState:
    """The driver's world and the model helpers every function group uses."""

    #: the engine the driver's tasks run under
    rt: Runtime
    #: the process's mm (VMAs, page table, the page allocator)
    mm: MM
    #: the hypervisor: SLAT and hypercalls
    hv: Hypervisor
    #: kmalloc/vmalloc
    kalloc: KernelAllocator
    #: the partition whose regions the driver manages
    partition: MshvPartition
    #: how many -EBUSY retries a fault or creation makes before giving up (a livelock bound)
    retry_bound: int
    _regions_made: int

    def _new_region(
        self, start_gfn: int, nr_pfns: int, start_uaddr: int, flags: int
    ) -> MshvMemRegion:
        self.rt.access("regions")
        name = f"region{self._regions_made}"
        self._regions_made += 1
        region = MshvMemRegion(
            self.rt, name, nr_pfns, start_gfn, start_uaddr, flags, self.partition
        )
        self.partition.all_regions.append(region)
        return region

    def _check_alive(self, region: MshvMemRegion, where: str) -> None:
        """S5: touching a freed region is a use-after-free."""
        self.rt.access("regions", write=False)
        if region.freed:
            raise self.rt.fail(
                "safety",
                f"{where} touched {region.name} after it was freed (use-after-free)",
                invariant="S5",
                where=where,
                region=region.name,
            )

    def _region_range(self, region: MshvMemRegion, off: int, count: int, caller: str) -> None:
        """S9 (a model check, not kernel code): slots [off, off+count) must be inside the
        region, whose ``mreg_pfns`` has ``nr_pfns`` of them; numpy would clip a slice."""
        if not 0 <= off <= off + count <= region.nr_pfns:  # the array's name built only here
            check_range(
                self.rt, f"{region.name}.mreg_pfns", off, off + count, region.nr_pfns, caller
            )

    def _vfree(self, region: MshvMemRegion) -> None:
        self.rt.access("regions")
        for hook in self.partition.on_region_free:
            hook(region)
        region.freed = True
        self.rt.event("vfree", region.name)
