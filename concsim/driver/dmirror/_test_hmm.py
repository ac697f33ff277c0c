"""The ``dmirror`` test driver (lib/test_hmm.c), function by function: a second HMM driver.

One open of ``/dev/hmm_dmirrorN`` is a :class:`Dmirror`: an interval notifier over the whole
address space of the process that opened it, a mutex, and a device page table (the C
driver's xarray ``pt``; here numpy arrays indexed by vpn: the pfn the device reaches, 0 for
no entry, and the WRITE tag).  The device reads and writes process memory only through
that table (``dmirror_do_read`` / ``dmirror_do_write``, under the mutex); a missing entry
(or a read-only one, for a write) sends the ioctl to ``dmirror_fault``, which fills the
table with ``hmm_range_fault`` under the ``mmu_interval_read_begin`` / ``read_retry`` loop.
The notifier callback clears the table's entries for every invalidated range under the
same mutex, so an entry never outlives the CPU mapping it was copied from.  The snapshot
ioctl registers a temporary notifier over its range and reports what HMM saw per page
(``HMM_DMIRROR_PROT_*``), without faulting anything in.

Exclusive access (``dmirror_exclusive``): each page is made device-exclusive
(``make_device_exclusive``, which returns it with its folio locked) and mapped in the
device page table tagged ATOMIC before its folio is unlocked; a CPU fault restores the
PTE under the folio lock, and its MMU_NOTIFY_EXCLUSIVE invalidation erases the entry.

Not modelled: device-private and device-coherent memory (the migrate ioctls, the
``MMU_NOTIFY_MIGRATE`` owner check in the callback, RELEASE) and the jiffies clock: the
1 s timeout of the fault loop is a bound on its retries (``retry_bound``), after which the
ioctl fails with -EBUSY as the C driver does when its timeout expires.

Scheduling points: the kernel primitives' own (mutex, ``mmap_lock``, the notifier, HMM's
walk), plus one where the device stores into its page table (``xa_store``) and one where it
copies the pages of a read or write (``memcpy``), each under the mutex.

Footprints (what partial-order reduction decides dependence by, see
:mod:`concsim.strategies._steps`): every read or write of a mirror's device page table (its
entries, tags and ``released``) reports ``<mirror>.pt``, wherever it happens (the fault
path, the notifier callback, release, and the oracles' checks); the list of mirrors reports
``dmirror.mirrors``; the pages' contents that the device copies report ``page_data``, as the
kernel's copies do; the ``mmget_not_zero`` test reads ``mm.exiting``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from concsim.driver.dmirror._tracepoints import (
    WARN_INVALID_ENTRY_AFTER_FAULT,
    WARN_WRITE_FAULT_LEFT_READ_ONLY,
)
from concsim.engine import Runtime
from concsim.kernel._hmm import (
    HMM_PFN_ERROR,
    HMM_PFN_ORDER_SHIFT,
    HMM_PFN_REQ_FAULT,
    HMM_PFN_REQ_WRITE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    HMMRange,
    hmm_pfn_to_pfn,
    hmm_range_fault,
)
from concsim.kernel._mm import MM, MM_EXITING, PTE_PRESENT, VM_MIXEDMAP, VM_SHARED, VM_WRITE, VMA
from concsim.kernel._mm_fault import folio_unlock
from concsim.kernel._mm_user import make_device_exclusive
from concsim.kernel._mmu_notifier import (
    ULONG_MAX_VPN,
    MMUIntervalNotifier,
    MMUNotifierRange,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
    mmu_notifier_range_blockable,
)
from concsim.kernel._mutex import Mutex
from concsim.kernel._pagealloc import PAGE_DATA, ZERO_PFN

EPERM = 1
ENOENT = 2
ENOMEM = 12
EFAULT = 14
EBUSY = 16
EINVAL = 22

#: The xarray tags of a device page-table entry: writable, or mapped for atomic access.
DPT_XA_TAG_ATOMIC = 1
DPT_XA_TAG_WRITE = 3

# The ioctls (lib/test_hmm_uapi.h), by name.
HMM_DMIRROR_READ = "READ"
HMM_DMIRROR_WRITE = "WRITE"
HMM_DMIRROR_SNAPSHOT = "SNAPSHOT"
HMM_DMIRROR_MIGRATE_TO_DEV = "MIGRATE_TO_DEV"
HMM_DMIRROR_MIGRATE_TO_SYS = "MIGRATE_TO_SYS"
HMM_DMIRROR_EXCLUSIVE = "EXCLUSIVE"
HMM_DMIRROR_CHECK_EXCLUSIVE = "CHECK_EXCLUSIVE"
HMM_DMIRROR_RELEASE = "RELEASE"

# What a snapshot reports per page (enum in lib/test_hmm_uapi.h).
HMM_DMIRROR_PROT_ERROR = 0xFF
HMM_DMIRROR_PROT_NONE = 0x00
HMM_DMIRROR_PROT_READ = 0x01
HMM_DMIRROR_PROT_WRITE = 0x02
HMM_DMIRROR_PROT_PMD = 0x04
HMM_DMIRROR_PROT_PUD = 0x08
HMM_DMIRROR_PROT_ZERO = 0x10
HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20
HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30
HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL = 0x40
HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE = 0x50

#: ``unsigned long pfns[64]``: the fault and snapshot paths work in chunks of 64 pages.
PFNS_ARRAY_SIZE = 64
PMD_ORDER = 9
PUD_ORDER = 18


@dataclass
class HmmDmirrorCmd:
    """``struct hmm_dmirror_cmd``: ``addr`` is a vpn; ``ptr`` the user buffer (one int64
    token per page for READ/WRITE, one byte per page for SNAPSHOT)."""

    addr: int
    npages: int
    ptr: npt.NDArray[np.int64] | npt.NDArray[np.uint8] | None = None
    cpages: int = 0
    faults: int = 0


@dataclass
class DmirrorBounce:
    """``struct dmirror_bounce``: the kernel-side copy of the user buffer."""

    addr: int
    size: int
    ptr: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cpages: int = 0


class Dmirror:
    """``struct dmirror``: one open of the device file, mirroring the opener's mm."""

    def __init__(self, rt: Runtime, name: str, mm: MM, mdevice: int) -> None:
        self.name = name
        self.mm = mm
        self.mdevice = mdevice
        self.mutex = Mutex(rt, f"{name}.mutex", "dmirror.mutex")
        self.notifier = MMUIntervalNotifier(f"{name}.notifier")
        self.notifier.owner = self
        # The xarray pt: pfn per vpn (0: no entry) and the WRITE tag.
        self.pt = np.zeros(mm.nr_vpns, dtype=np.int64)
        self.pt_write = np.zeros(mm.nr_vpns, dtype=np.bool_)
        self.pt_atomic = np.zeros(mm.nr_vpns, dtype=np.bool_)
        self.released = False
        #: The footprint object of the device page table (and ``released``).
        self.pt_obj = f"{name}.pt"


#: The footprint object of the driver's list of mirrors.
MIRRORS_OBJ = "dmirror.mirrors"


#: Oracle hooks: (dmirror, vpns, pfns, writable) when entries are stored; (dmirror, vpn, pfn,
#: write) when the device copies a page; (dmirror, range, perms) when a snapshot is taken.
StoreHook = Callable[
    [Dmirror, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]], None
]
AccessHook = Callable[[Dmirror, int, int, bool], None]
SnapshotHook = Callable[[Dmirror, HMMRange], None]


class DmirrorDriver:
    """The driver: lib/test_hmm.c as it is (the correct variant).  A mutant overrides one
    method (see ``_mutants``)."""

    name: ClassVar[str] = "dmirror"
    summary: ClassVar[str] = "lib/test_hmm.c as in mainline"
    mutant: ClassVar[bool] = False
    expect_kinds: ClassVar[tuple[str, ...]] = ()
    expect_invariants: ClassVar[tuple[str, ...]] = ()
    catch_scenario: ClassVar[str] = "dmirror"
    catch_params: ClassVar[dict[str, object]] = {}

    def __init__(self, rt: Runtime, *, retry_bound: int = 64) -> None:
        self.rt = rt
        self.retry_bound = retry_bound
        self.on_store: list[StoreHook] = []
        self.on_access: list[AccessHook] = []
        self.on_snapshot: list[SnapshotHook] = []
        self.on_open: list[Callable[[Dmirror], None]] = []
        self.mirrors: list[Dmirror] = []

    # ------------------------------------------------------------------ open / release

    async def dmirror_fops_open(self, mm: MM, mdevice: int = 0) -> Dmirror:
        """Mirror the opener's whole address space (a notifier over [0, ULONG_MAX))."""
        d = Dmirror(self.rt, f"dmirror{len(self.mirrors)}", mm, mdevice)
        self.rt.access(MIRRORS_OBJ)
        self.mirrors.append(d)
        for hook in self.on_open:
            hook(d)
        await mmu_interval_notifier_insert(
            d.notifier, mm, 0, ULONG_MAX_VPN, self.dmirror_interval_invalidate
        )
        return d

    async def dmirror_fops_release(self, d: Dmirror) -> None:
        await mmu_interval_notifier_remove(d.notifier)
        self.rt.access(d.pt_obj)
        d.pt[:] = 0  # xa_destroy
        d.pt_write[:] = False
        d.released = True

    def dmirror_fops_mmap(self, mm: MM, vma: VMA) -> int:
        """mmap of the device file: a zeroed page per page, ``vm_insert_page``-ed (a mixed
        map of ordinary pages, read-only in a private mapping: COW).  0 or -ENOMEM."""
        vma.vm_flags |= VM_MIXEDMAP
        for vpn in range(vma.vm_start, vma.vm_end):
            pfn = mm.pages.alloc_page()
            if pfn < 0:
                return -ENOMEM
            shared_write = bool(vma.vm_flags & VM_SHARED and vma.vm_flags & VM_WRITE)
            mm.set_ptes(np.array([vpn], dtype=np.int64), PTE_PRESENT, pfn, shared_write)
        return 0

    # ------------------------------------------------------------------ the mirror

    async def dmirror_do_fault(self, d: Dmirror, r: HMMRange) -> int:
        """Store every page of the range in the device page table (under d.mutex)."""
        rt = self.rt
        await rt.point("xa_store", d.pt_obj, r.start, r.end)
        v = r.hmm_pfns
        bad = ((v & HMM_PFN_ERROR) != 0) | ((v & HMM_PFN_VALID) == 0)
        if bad.any():
            # WARN_ON: with HMM_PFN_REQ_FAULT every entry of a successful walk is valid.
            rt.count("kernel_warn")
            rt.event("WARN", d.name, WARN_INVALID_ENTRY_AFTER_FAULT, -EFAULT)
            return -EFAULT
        write = (v & HMM_PFN_WRITE) != 0
        if r.default_flags & HMM_PFN_REQ_WRITE and not write.all():
            rt.count("kernel_warn")
            rt.event("WARN", d.name, WARN_WRITE_FAULT_LEFT_READ_ONLY, -EFAULT)
            return -EFAULT
        vpns = np.arange(r.start, r.end, dtype=np.int64)
        pfns = (v & np.uint64((1 << HMM_PFN_ORDER_SHIFT) - 1)).astype(np.int64)
        for hook in self.on_store:
            hook(d, vpns, pfns, write)
        rt.access(d.pt_obj)
        d.pt[r.start : r.end] = pfns
        d.pt_write[r.start : r.end] = write
        d.pt_atomic[r.start : r.end] = False
        if rt.tracing:
            rt.event("dmirror_do_fault", f"{d.name}.pt", r.start, r.end)
        return 0

    def dmirror_do_update(self, d: Dmirror, start: int, end: int) -> None:
        """Erase the entries of [start, end]: ``xa_for_each_range`` takes the last index
        inclusively, so the page at ``end`` goes too (harmless: it is refaulted)."""
        hi = min(end + 1, d.mm.nr_vpns)
        self.rt.access(d.pt_obj)
        if start < hi:
            d.pt[start:hi] = 0
            d.pt_write[start:hi] = False
            d.pt_atomic[start:hi] = False
        if self.rt.tracing:
            self.rt.event("dmirror_do_update", f"{d.name}.pt", start, end)

    async def dmirror_interval_invalidate(
        self, mni: MMUIntervalNotifier, r: MMUNotifierRange, cur_seq: int
    ) -> bool:
        d: Dmirror = mni.owner
        if mmu_notifier_range_blockable(r):
            await d.mutex.lock()
        elif not await d.mutex.trylock():
            self.rt.count("invalidate_trylock_failed")
            return False
        await mmu_interval_set_seq(mni, cur_seq)
        self.dmirror_do_update(d, r.start, r.end)
        await d.mutex.unlock()
        return True

    async def dmirror_range_fault(self, d: Dmirror, r: HMMRange) -> int:
        mm = d.mm
        retries = 0
        while True:
            if retries > self.retry_bound:  # time_after(jiffies, timeout)
                self.rt.count("dmirror_timeouts")
                return -EBUSY
            r.notifier_seq = await mmu_interval_read_begin(r.notifier)
            await mm.mmap_lock.down_read()
            ret = await hmm_range_fault(mm, r)
            await mm.mmap_lock.up_read()
            if ret:
                if ret == -EBUSY:
                    retries += 1
                    self.rt.count("ebusy_retries")
                    continue
                return ret
            await d.mutex.lock()
            if await mmu_interval_read_retry(r.notifier, r.notifier_seq):
                await d.mutex.unlock()
                retries += 1
                self.rt.count("ebusy_retries")
                continue
            break
        ret = await self.dmirror_do_fault(d, r)
        await d.mutex.unlock()
        return ret

    async def dmirror_fault(self, d: Dmirror, start: int, end: int, write: bool) -> int:
        mm = d.mm
        self.rt.access(MM_EXITING, write=False)
        if mm.exiting:  # mmget_not_zero failed
            return 0
        flags = HMM_PFN_REQ_FAULT | (HMM_PFN_REQ_WRITE if write else np.uint64(0))
        ret = 0
        addr = start
        while addr < end:
            nxt = min(addr + PFNS_ARRAY_SIZE, end)
            r = HMMRange(
                d.notifier,
                0,
                addr,
                nxt,
                np.zeros(nxt - addr, dtype=np.uint64),
                np.uint64(flags),
            )
            ret = await self.dmirror_range_fault(d, r)
            if ret:
                break
            addr = nxt
        return ret

    async def dmirror_do_read(self, d: Dmirror, start: int, end: int, b: DmirrorBounce) -> int:
        rt = self.rt
        await rt.point("memcpy_from_page", d.pt_obj, start, end, read=True)
        rt.access(d.pt_obj, write=False)
        rt.access(PAGE_DATA, write=False)
        data = d.mm.pages.data
        for vpn in range(start, end):
            pfn = int(d.pt[vpn])
            if not pfn:
                return -ENOENT
            for hook in self.on_access:
                hook(d, vpn, pfn, False)
            b.ptr[vpn - b.addr] = data[pfn]
            b.cpages += 1
        return 0

    async def _dmirror_copy_loop(
        self, d: Dmirror, cmd: HmmDmirrorCmd, b: DmirrorBounce, write: bool
    ) -> int:
        """The loop ``dmirror_read`` and ``dmirror_write`` share: copy under the mutex; on a
        missing entry (-ENOENT), fault the rest of the range in (for write or read),
        count the fault, and copy again from the first page not copied yet."""
        do_copy = self.dmirror_do_write if write else self.dmirror_do_read
        start = cmd.addr
        end = start + cmd.npages
        while True:
            await d.mutex.lock()
            ret = await do_copy(d, start, end, b)
            await d.mutex.unlock()
            if ret != -ENOENT:
                return ret
            start = cmd.addr + b.cpages
            ret = await self.dmirror_fault(d, start, end, write)
            if ret:
                return ret
            cmd.faults += 1
            self._watchdog(d, cmd)

    async def dmirror_read(self, d: Dmirror, cmd: HmmDmirrorCmd) -> int:
        b = DmirrorBounce(cmd.addr, cmd.npages, np.zeros(cmd.npages, dtype=np.int64))
        ret = await self._dmirror_copy_loop(d, cmd, b, write=False)
        if ret == 0 and cmd.ptr is not None:
            cmd.ptr[: cmd.npages] = b.ptr  # copy_to_user
        cmd.cpages = b.cpages
        return ret

    async def dmirror_do_write(self, d: Dmirror, start: int, end: int, b: DmirrorBounce) -> int:
        rt = self.rt
        await rt.point("memcpy_to_page", d.pt_obj, start, end)
        rt.access(d.pt_obj, write=False)
        rt.access(PAGE_DATA)
        data = d.mm.pages.data
        for vpn in range(start, end):
            pfn = int(d.pt[vpn])
            if not pfn or not d.pt_write[vpn]:
                return -ENOENT
            for hook in self.on_access:
                hook(d, vpn, pfn, True)
            data[pfn] = b.ptr[vpn - b.addr]
            b.cpages += 1
        return 0

    async def dmirror_write(self, d: Dmirror, cmd: HmmDmirrorCmd) -> int:
        src = np.zeros(cmd.npages, dtype=np.int64) if cmd.ptr is None else cmd.ptr
        b = DmirrorBounce(cmd.addr, cmd.npages, np.asarray(src, dtype=np.int64).copy())
        ret = await self._dmirror_copy_loop(d, cmd, b, write=True)
        cmd.cpages = b.cpages
        return ret

    def _watchdog(self, d: Dmirror, cmd: HmmDmirrorCmd) -> None:
        """Not in the C driver: its copy loop has no bound of its own.  When the mirrored mm
        has exited, ``dmirror_fault`` returns 0 without faulting anything (mmget_not_zero
        fails) and the loop spins for ever; the model reports that as a livelock."""
        if cmd.faults > self.retry_bound:
            self.rt.access(MM_EXITING, write=False)
            raise self.rt.fail(
                "liveness",
                f"{d.name}: the copy loop faulted {cmd.faults} times without progress"
                + (" (the mirrored mm has exited)" if d.mm.exiting else ""),
                invariant="L1",
            )

    # ------------------------------------------------------------------ exclusive access

    def dmirror_check_atomic(self, d: Dmirror, start: int, end: int) -> int:
        """-EPERM while any page of the range is still mapped for atomic access."""
        self.rt.access(d.pt_obj, write=False)
        return -EPERM if d.pt_atomic[start:end].any() else 0

    async def dmirror_atomic_map(self, d: Dmirror, vpn: int, pfn: int) -> int:
        await d.mutex.lock()
        await self.rt.point("xa_store_atomic", d.pt_obj, vpn)
        self.rt.access(d.pt_obj)
        d.pt[vpn] = pfn
        d.pt_write[vpn] = False
        d.pt_atomic[vpn] = True
        for hook in self.on_store:
            hook(
                d,
                np.array([vpn], dtype=np.int64),
                np.array([pfn], dtype=np.int64),
                np.zeros(1, dtype=np.bool_),
            )
        await d.mutex.unlock()
        return 0

    async def dmirror_exclusive(self, d: Dmirror, cmd: HmmDmirrorCmd) -> int:
        mm = d.mm
        start = cmd.addr
        end = start + cmd.npages
        self.rt.access(MM_EXITING, write=False)
        if mm.exiting:
            return -EINVAL
        ret = 0
        await mm.mmap_lock.down_read()
        for vpn in range(start, end):
            pfn = await make_device_exclusive(mm, vpn)
            if pfn < 0:
                ret = pfn
                break
            ret = await self.dmirror_atomic_map(d, vpn, pfn)
            folio_unlock(mm, pfn)
            if ret:
                break
        await mm.mmap_lock.up_read()
        if ret:
            return ret
        b = DmirrorBounce(start, cmd.npages, np.zeros(cmd.npages, dtype=np.int64))
        await d.mutex.lock()
        ret = await self.dmirror_do_read(d, start, end, b)
        await d.mutex.unlock()
        if ret == 0 and cmd.ptr is not None:
            cmd.ptr[: cmd.npages] = b.ptr
        cmd.cpages = b.cpages
        return ret

    # ------------------------------------------------------------------ snapshot

    def dmirror_mkentry(self, d: Dmirror, r: HMMRange, entry: int) -> int:
        if entry & int(HMM_PFN_ERROR):
            return HMM_DMIRROR_PROT_ERROR
        if not entry & int(HMM_PFN_VALID):
            return HMM_DMIRROR_PROT_NONE
        pfn = hmm_pfn_to_pfn(entry)
        perm = HMM_DMIRROR_PROT_ZERO if pfn == ZERO_PFN else HMM_DMIRROR_PROT_NONE
        perm |= HMM_DMIRROR_PROT_WRITE if entry & int(HMM_PFN_WRITE) else HMM_DMIRROR_PROT_READ
        order = (entry >> HMM_PFN_ORDER_SHIFT) & 0x1F
        if order == PMD_ORDER:
            perm |= HMM_DMIRROR_PROT_PMD
        elif order == PUD_ORDER:
            perm |= HMM_DMIRROR_PROT_PUD
        return perm

    async def dmirror_snapshot_invalidate(
        self, mni: MMUIntervalNotifier, r: MMUNotifierRange, cur_seq: int
    ) -> bool:
        d: Dmirror = mni.owner
        if mmu_notifier_range_blockable(r):
            await d.mutex.lock()
        elif not await d.mutex.trylock():
            return False
        # Any invalidation in the interval invalidates the whole snapshot.
        await mmu_interval_set_seq(mni, cur_seq)
        await d.mutex.unlock()
        return True

    async def dmirror_range_snapshot(
        self, d: Dmirror, r: HMMRange, perm: npt.NDArray[np.uint8]
    ) -> int:
        mm = d.mm
        notifier = MMUIntervalNotifier(f"{d.name}.snapshot[{r.start},{r.end})")
        notifier.owner = d
        r.notifier = notifier
        await mmu_interval_notifier_insert(
            notifier, mm, r.start, r.end - r.start, self.dmirror_snapshot_invalidate
        )
        retries = 0
        ret = 0
        while True:
            if retries > self.retry_bound:
                self.rt.count("dmirror_timeouts")
                ret = -EBUSY
                break
            r.notifier_seq = await mmu_interval_read_begin(notifier)
            await mm.mmap_lock.down_read()
            ret = await hmm_range_fault(mm, r)
            await mm.mmap_lock.up_read()
            if ret:
                if ret == -EBUSY:
                    retries += 1
                    continue
                break
            await d.mutex.lock()
            if await mmu_interval_read_retry(notifier, r.notifier_seq):
                await d.mutex.unlock()
                retries += 1
                continue
            for hook in self.on_snapshot:
                hook(d, r)
            for i in range(r.end - r.start):
                perm[i] = self.dmirror_mkentry(d, r, int(r.hmm_pfns[i]))
            await d.mutex.unlock()
            break
        await mmu_interval_notifier_remove(notifier)
        return ret

    async def dmirror_snapshot(self, d: Dmirror, cmd: HmmDmirrorCmd) -> int:
        mm = d.mm
        start = cmd.addr
        end = start + cmd.npages
        self.rt.access(MM_EXITING, write=False)
        if mm.exiting:
            return -EINVAL
        out = np.zeros(cmd.npages, dtype=np.uint8) if cmd.ptr is None else cmd.ptr
        ret = 0
        addr = start
        while addr < end:
            nxt = min(addr + PFNS_ARRAY_SIZE, end)
            r = HMMRange(d.notifier, 0, addr, nxt, np.zeros(nxt - addr, dtype=np.uint64))
            perm = np.zeros(nxt - addr, dtype=np.uint8)
            ret = await self.dmirror_range_snapshot(d, r, perm)
            if ret:
                break
            out[addr - start : nxt - start] = perm  # copy_to_user
            cmd.cpages += nxt - addr
            addr = nxt
        return ret

    # ------------------------------------------------------------------ the ioctl

    async def dmirror_fops_unlocked_ioctl(
        self, d: Dmirror, command: str, cmd: HmmDmirrorCmd
    ) -> int:
        self.rt.access(d.pt_obj, write=False)
        if d.released:
            return -EINVAL
        if cmd.addr < 0 or cmd.npages <= 0:  # addr >= addr + size
            return -EINVAL
        cmd.cpages = 0
        cmd.faults = 0
        if command == HMM_DMIRROR_READ:
            return await self.dmirror_read(d, cmd)
        if command == HMM_DMIRROR_WRITE:
            return await self.dmirror_write(d, cmd)
        if command == HMM_DMIRROR_SNAPSHOT:
            return await self.dmirror_snapshot(d, cmd)
        if command == HMM_DMIRROR_EXCLUSIVE:
            return await self.dmirror_exclusive(d, cmd)
        if command == HMM_DMIRROR_CHECK_EXCLUSIVE:
            return self.dmirror_check_atomic(d, cmd.addr, cmd.addr + cmd.npages)
        return -EINVAL
