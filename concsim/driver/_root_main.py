"""drivers/hv/mshv_root_main.c: region creation and removal ioctls, the GPA intercept."""

from __future__ import annotations

import numpy as np

from concsim.driver._region import (
    HV_INTERCEPT_ACCESS_EXECUTE,
    HV_INTERCEPT_ACCESS_WRITE,
    MSHV_REGION_TYPE_MEM_MOVABLE,
    MSHV_REGION_TYPE_MEM_PINNED,
    MSHV_REGION_TYPE_MMIO,
    MSHV_SET_MEM_BIT_EXECUTABLE,
    MSHV_SET_MEM_BIT_WRITABLE,
    U64_MAX,
    MshvMemRegion,
    MshvPartition,
    MshvUserMemRegion,
)
from concsim.driver._regions import MshvRegions
from concsim.kernel._hv import (
    HV_MAP_GPA_ADJUSTABLE,
    HV_MAP_GPA_EXECUTABLE,
    HV_MAP_GPA_READABLE,
    HV_MAP_GPA_WRITABLE,
    grants_access,
)
from concsim.kernel._mm import VM_IO, VM_PFNMAP

EEXIST = 17
EINVAL = 22
ENOENT = 2
ENOMEM = 12


class MshvRootMain(MshvRegions):
    """The functions of mshv_root_main.c.  Mixed into the driver class."""

    def check_add_overflow(self, a: int, b: int) -> bool:
        """True if ``a + b`` does not fit in a u64."""
        return a + b > U64_MAX

    async def mshv_partition_create_region(
        self, partition: MshvPartition, mem: MshvUserMemRegion, is_mmio: bool
    ) -> tuple[int, MshvMemRegion | None]:
        """B1.2-5: overlap check, allocation, type choice (and the notifier for movable)."""
        nr_pfns = mem.size
        start_gfn = mem.guest_pfn
        if self.check_add_overflow(start_gfn, nr_pfns):  # later fix: end gfn overflow
            return -EINVAL, None
        await partition.pt_mem_regions_lock.lock()
        self.rt.access("pt_mem_regions", write=False)
        for rg in partition.pt_mem_regions:
            new_end = (start_gfn + nr_pfns) & U64_MAX
            rg_end = (rg.start_gfn + rg.nr_pfns) & U64_MAX
            if new_end <= rg.start_gfn or rg_end <= start_gfn:
                continue
            await partition.pt_mem_regions_lock.unlock()
            return -EEXIST, None
        await partition.pt_mem_regions_lock.unlock()
        flags = HV_MAP_GPA_READABLE | HV_MAP_GPA_ADJUSTABLE
        if mem.flags & (1 << MSHV_SET_MEM_BIT_WRITABLE):
            flags |= HV_MAP_GPA_WRITABLE
        if mem.flags & (1 << MSHV_SET_MEM_BIT_EXECUTABLE):
            flags |= HV_MAP_GPA_EXECUTABLE
        region = await self.mshv_region_create(start_gfn, nr_pfns, mem.userspace_addr, flags)
        if region is None:
            return -ENOMEM, None
        for hook in partition.on_region_created:
            hook(region)
        self.rt.access("regions")  # mreg_type, read by whoever looks the region up
        if is_mmio:
            region.mreg_type = MSHV_REGION_TYPE_MMIO
        elif partition.encrypted or not await self.mshv_region_movable_init(region):
            region.mreg_type = MSHV_REGION_TYPE_MEM_PINNED
        else:
            region.mreg_type = MSHV_REGION_TYPE_MEM_MOVABLE
        self.rt.event("region_created", region.name, region.mreg_type)
        return 0, region

    async def mshv_map_user_memory(self, partition: MshvPartition, mem: MshvUserMemRegion) -> int:
        """B1: the MSHV_SET_GUEST_MEMORY map ioctl."""
        if mem.size <= 0:
            return -EINVAL
        mm = self.mm
        await mm.mmap_lock.down_read()
        vma = mm.vma_lookup(mem.userspace_addr)
        is_mmio = bool(vma and vma.vm_flags & (VM_IO | VM_PFNMAP))
        await mm.mmap_lock.up_read()
        if vma is None:
            return -EINVAL
        ret, region = await self.mshv_partition_create_region(partition, mem, is_mmio)
        if ret:
            return ret
        assert region is not None
        if region.mreg_type == MSHV_REGION_TYPE_MEM_PINNED:
            ret = await self.mshv_map_pinned_region(region)
        elif region.mreg_type == MSHV_REGION_TYPE_MEM_MOVABLE:
            before = self._slat_access_pages(region)
            ret = await self.mshv_map_movable_region(region)
            self.rt.count("pages_mapped_at_creation", self._slat_access_pages(region) - before)
        else:
            ret = await self.hv.hv_call_map_ram_pfns(
                region.start_gfn, region.nr_pfns, region.hv_map_flags, None
            )
        if ret:
            self.rt.count("create_failed")
            await self.mshv_map_user_memory_errout(region)
            return ret
        await partition.pt_mem_regions_lock.lock()
        await self.rt.point("hlist_add_head", "pt_mem_regions")
        partition.pt_mem_regions.insert(0, region)  # hlist_add_head
        region.listed = True
        await partition.pt_mem_regions_lock.unlock()
        self.rt.event("region_listed", region.name)
        return 0

    async def mshv_map_user_memory_errout(self, region: MshvMemRegion) -> None:
        """The error path of mshv_map_user_memory (fixed: put, so destroy removes the
        notifier; it used to be vfree)."""
        await self.mshv_region_put(region)

    async def mshv_unmap_user_memory(self, partition: MshvPartition, mem: MshvUserMemRegion) -> int:
        """B10.1: unlist the exactly matching region, then drop the list's reference."""
        await partition.pt_mem_regions_lock.lock()
        region = self._region_by_gfn(partition, mem.guest_pfn)
        if region is None:
            await partition.pt_mem_regions_lock.unlock()
            return -ENOENT
        if (
            region.start_uaddr != mem.userspace_addr
            or region.start_gfn != mem.guest_pfn
            or region.nr_pfns != mem.size
        ):
            await partition.pt_mem_regions_lock.unlock()
            return -EINVAL
        await self.rt.point("hlist_del", "pt_mem_regions")
        partition.pt_mem_regions.remove(region)  # hlist_del
        region.listed = False
        await partition.pt_mem_regions_lock.unlock()
        await self.mshv_region_put(region)
        return 0

    def _slat_access_pages(self, region: MshvMemRegion) -> int:
        """Model counter (not kernel): the region's gfns the SLAT maps with access."""
        slat = self.hv.slat
        a = region.start_gfn
        b = region.start_gfn + region.nr_pfns
        slat.check_range(a, b, "_slat_access_pages")
        return int(np.count_nonzero(grants_access(slat.flags[a:b])))

    def _region_by_gfn(self, partition: MshvPartition, gfn: int) -> MshvMemRegion | None:
        self.rt.access("pt_mem_regions", write=False)
        for rg in partition.pt_mem_regions:
            if rg.start_gfn <= gfn < rg.start_gfn + rg.nr_pfns:
                return rg
        return None

    async def mshv_partition_region_by_gfn_get(
        self, partition: MshvPartition, gfn: int
    ) -> MshvMemRegion | None:
        await partition.pt_mem_regions_lock.lock()
        region = self._region_by_gfn(partition, gfn)
        if region is not None and not await self.mshv_region_get(region):
            region = None
        await partition.pt_mem_regions_lock.unlock()
        return region

    def mshv_intercept_access_allowed(self, region: MshvMemRegion, access: int) -> bool:
        """B9.3 (2026 fix): refuse write/execute intercepts the region does not permit."""
        if access == HV_INTERCEPT_ACCESS_WRITE and not region.hv_map_flags & HV_MAP_GPA_WRITABLE:
            return False
        return not (
            access == HV_INTERCEPT_ACCESS_EXECUTE
            and not region.hv_map_flags & HV_MAP_GPA_EXECUTABLE
        )

    async def mshv_handle_gpa_intercept(
        self, partition: MshvPartition, gfn: int, access: int
    ) -> bool:
        """B9: true re-dispatches the vCPU; false hands the intercept to the VMM."""
        region = await self.mshv_partition_region_by_gfn_get(partition, gfn)
        if region is None:
            return False
        if not self.mshv_intercept_access_allowed(region, access):
            await self.mshv_region_put(region)
            return False
        if region.mreg_type != MSHV_REGION_TYPE_MEM_MOVABLE:
            await self.mshv_region_put(region)
            return False
        ret = await self.mshv_region_handle_gfn_fault(region, gfn)
        self.rt.count("faults_handled")
        await self.mshv_region_put(region)
        return ret
