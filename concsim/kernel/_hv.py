"""The hypervisor's second-level address table (SLAT) and the map/unmap hypercalls.

The SLAT of a partition is three numpy arrays indexed by gfn: ``flags`` (0 = unmapped,
``HV_MAP_GPA_NO_ACCESS``, or the access flags the page was mapped with) and ``pfn``.  A
reverse-map counter ``refs[pfn]`` counts the gfns that currently grant access to each pfn,
so "is any SLAT entry still pointing at this page?" is O(1) when a page is freed.

Footprint: the SLAT is the object ``"slat"``: :meth:`SLAT.write` writes it, and whoever
looks at an entry (the guest, the oracles, a hypercall's outcome) reads it.

Hypercalls are rep hypercalls: ``hv_call_map_ram_pfns`` maps at most
``HV_MAP_GPA_BATCH_SIZE`` (509) reps per call (2 MiB units with ``HV_MAP_GPA_LARGE_PAGE``),
``hv_call_unmap_gpa_pages`` at most ``HV_UMAP_GPA_PAGES`` (512).  Each call is atomic (one
scheduling point before it); a multi-call map is not, so the guest may see a half-remapped
range.  Each call's outcome is an environment choice, so it replays:

* success;
* ``HV_STATUS_INSUFFICIENT_MEMORY``, offered only when the call creates new mappings (the
  hypervisor needs memory for new SLAT tables, not to change existing entries): the driver
  deposits ``HV_MAP_GPA_DEPOSIT_PAGES`` pages (a GFP_KERNEL allocation, which may sleep)
  and retries the call;
* a hard failure, only when the world enables ``hv_fail``: ``"all"`` lets any call fail;
  ``"holes"`` only a NO_ACCESS remap of gfns that are already NO_ACCESS (re-remapping a
  hole), so a failure can never leave access to a page behind; the loop stops and the GPAs
  the earlier calls mapped are unmapped again (rollback).  Unmap calls fail only with
  ``"all"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from concsim.engine import Runtime
from concsim.kernel._alloc import KernelAllocator
from concsim.kernel._bounds import bounds_failure, check_indices, check_range
from concsim.kernel._views import scalar_view

HV_MAP_GPA_READABLE = 0x1
HV_MAP_GPA_WRITABLE = 0x2
HV_MAP_GPA_KERNEL_EXECUTABLE = 0x4
HV_MAP_GPA_USER_EXECUTABLE = 0x8
HV_MAP_GPA_EXECUTABLE = 0xC
HV_MAP_GPA_ADJUSTABLE = 0x8000
HV_MAP_GPA_NO_ACCESS = 0x10000
HV_MAP_GPA_NOT_CACHED = 0x200000
HV_MAP_GPA_LARGE_PAGE = 0x80000000
ACCESS_MASK = HV_MAP_GPA_READABLE | HV_MAP_GPA_WRITABLE | HV_MAP_GPA_EXECUTABLE

HV_MAP_GPA_BATCH_SIZE = (4096 - 24) // 8  # 509 reps per map hypercall
HV_UMAP_GPA_PAGES = 512
HV_MAP_GPA_DEPOSIT_PAGES = 256
PAGES_PER_2M = 512

HV_STATUS_SUCCESS = 0
HV_STATUS_INVALID_PARAMETER = 5
HV_STATUS_INSUFFICIENT_MEMORY = 11
EINVAL = 22
EIO = 5
ENOMEM = 12

#: (gfns, new flags, new pfns) before a SLAT write; oracles hook in here.
SlatHook = Callable[[npt.NDArray[np.int64], npt.NDArray[np.uint32], npt.NDArray[np.int64]], None]
#: (gfn, new flags, new pfn) before a one-entry SLAT write, as plain ints.
SlatOneHook = Callable[[int, int, int], None]
#: (first gfn, count, new flags, new pfns or None for zeros) before a SLAT write of a range
#: with one flags value (a hypercall's reps).
SlatRangeHook = Callable[[int, int, int, "npt.NDArray[np.int64] | None"], None]


def flags_grant(flags: int) -> bool:
    """Does an entry with these flags let the guest reach its page at all?"""
    return bool(flags & ACCESS_MASK) and not flags & HV_MAP_GPA_NO_ACCESS


_GRANT_MASK = np.uint32(ACCESS_MASK | HV_MAP_GPA_NO_ACCESS)
_ONE = np.uint32(1)
_GRANT_BELOW = np.uint32(HV_MAP_GPA_NO_ACCESS - 1)


def grants_access(flags: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    """:func:`flags_grant` over an array of entries."""
    if flags.dtype != np.uint32:
        return np.asarray(((flags & ACCESS_MASK) != 0) & ((flags & HV_MAP_GPA_NO_ACCESS) == 0))
    # Some access bit and no NO_ACCESS bit: 0 < flags & (ACCESS | NO_ACCESS) < NO_ACCESS
    # (ACCESS_MASK is below NO_ACCESS), as one unsigned comparison (0 - 1 wraps around).
    m = flags & _GRANT_MASK
    m -= _ONE
    return m < _GRANT_BELOW


#: The stats key of each caller label ("hypercalls.<label>"), built once per label.
_PATH_KEYS: dict[str, str] = {}

#: Array writes of up to this many entries update the reference counts entry by entry.
SMALL_WRITE = 16
#: Reference count updates of up to this many pages go entry by entry with plain ints.
SMALL_RANGE = 64


class SLAT:
    def __init__(self, rt: Runtime, nr_gfns: int, nr_pfns: int) -> None:
        self.rt = rt
        self.nr_gfns = nr_gfns
        self.flags = np.zeros(nr_gfns, dtype=np.uint32)
        self.pfn = np.zeros(nr_gfns, dtype=np.int64)
        self.refs = np.zeros(nr_pfns, dtype=np.int32)
        #: The same three arrays as memoryviews, for one-entry reads and writes with plain
        #: ints (a numpy scalar access costs several times as much).
        self.flags_mv = scalar_view(self.flags)
        self.pfn_mv = scalar_view(self.pfn)
        self.refs_mv = scalar_view(self.refs)
        self.on_write: list[SlatHook] = []
        #: Hooks for one-entry writes (:meth:`write_one`) and range writes
        #: (:meth:`write_range`); a subscriber registers in all three lists (each write
        #: calls only its own).
        self.on_write_one: list[SlatOneHook] = []
        self.on_write_range: list[SlatRangeHook] = []

    def check_range(self, start: int, end: int, caller: str) -> None:
        """S9: gfns [start, end) must be inside the SLAT (never clipped)."""
        check_range(self.rt, "the SLAT", start, end, self.nr_gfns, caller)

    def grants(self, gfn: int) -> bool:
        self.rt.access("slat", write=False)
        self.check_range(gfn, gfn + 1, "SLAT.grants")
        return flags_grant(self.flags_mv[gfn])

    def write_one(self, gfn: int, flags: int, pfn: int) -> None:
        """:meth:`write` of one entry, with plain ints (the common hypercall)."""
        if self.rt.observer is not None:  # the footprint: recorded only for an observer
            self.rt.access("slat")
        if not 0 <= gfn < self.nr_gfns:
            self.check_range(gfn, gfn + 1, "SLAT.write_one")
        for hook in self.on_write_one:
            hook(gfn, flags, pfn)
        fl = self.flags_mv
        refs = self.refs_mv
        old = fl[gfn]
        if old & ACCESS_MASK and not old & HV_MAP_GPA_NO_ACCESS:
            refs[self.pfn_mv[gfn]] -= 1
        if flags & ACCESS_MASK and not flags & HV_MAP_GPA_NO_ACCESS:
            refs[pfn] += 1
        fl[gfn] = flags
        self.pfn_mv[gfn] = pfn

    def write_range(self, gfn: int, n: int, flags: int, pfns: npt.NDArray[np.int64] | None) -> None:
        """:meth:`write` of the ``n`` entries from ``gfn`` with the same ``flags`` (one
        hypercall's reps): slices instead of index arrays; ``pfns`` None means zeros."""
        self.rt.access("slat")
        b = gfn + n
        if not 0 <= gfn < b <= self.nr_gfns:
            if n <= 0:
                return
            raise bounds_failure(self.rt, "the SLAT", gfn, b, self.nr_gfns, "SLAT.write")
        for hook in self.on_write_range:
            hook(gfn, n, flags, pfns)
        old = self.flags[gfn:b]
        if n <= SMALL_WRITE:  # a few reps: does any old entry grant access?  (plain ints)
            granted = any(
                f & ACCESS_MASK and not f & HV_MAP_GPA_NO_ACCESS
                for f in self.flags_mv[gfn:b].tolist()
            )
        else:
            granted = True
        if granted:
            old_access = grants_access(old)
            if np.count_nonzero(old_access):
                self._add_refs(self.pfn[gfn:b][old_access], -1)
        if flags_grant(flags):
            assert pfns is not None
            self._add_refs(pfns, 1)
        old[:] = flags
        self.pfn[gfn:b] = 0 if pfns is None else pfns

    def _add_refs(self, pfns: npt.NDArray[np.int64], delta: int) -> None:
        """``refs[p] += delta`` for every p of ``pfns``, counting repeated pfns (the zero
        page, KSM) as often as they occur."""
        if pfns.size <= SMALL_RANGE:  # a few: one by one with plain ints
            view = self.refs_mv
            for p in pfns.tolist():
                view[p] += delta
        elif np.count_nonzero(pfns[1:] <= pfns[:-1]) == 0:  # increasing: all distinct
            self.refs[pfns] += delta
        else:
            u, c = np.unique(pfns, return_counts=True)
            self.refs[u] += delta * c.astype(np.int32)

    def write(
        self,
        gfns: npt.NDArray[np.int64],
        flags: npt.NDArray[np.uint32],
        pfns: npt.NDArray[np.int64],
    ) -> None:
        """Atomically set entries (one hypercall's reps)."""
        self.rt.access("slat")
        check_indices(self.rt, "the SLAT", gfns, self.nr_gfns, "SLAT.write")
        for hook in self.on_write:
            hook(gfns, flags, pfns)
        if gfns.size == 1:
            g = int(gfns[0])
            if self.grants(g):
                self.refs[self.pfn[g]] -= 1
            f = int(flags[0])
            if flags_grant(f):
                self.refs[pfns[0]] += 1
            self.flags[g] = f
            self.pfn[g] = pfns[0]
            return
        if gfns.size <= SMALL_WRITE:
            # A few entries (distinct gfns: one call's reps): the reference counts entry by
            # entry with plain ints, the same sums as the vectorised update below.
            refs = self.refs
            old_flags = self.flags[gfns].tolist()
            old_pfns = self.pfn[gfns].tolist()
            for f, p in zip(old_flags, old_pfns, strict=True):
                if f & ACCESS_MASK and not f & HV_MAP_GPA_NO_ACCESS:
                    refs[p] -= 1
            for f, p in zip(flags.tolist(), pfns.tolist(), strict=True):
                if f & ACCESS_MASK and not f & HV_MAP_GPA_NO_ACCESS:
                    refs[p] += 1
            self.flags[gfns] = flags
            self.pfn[gfns] = pfns
            return
        old_access = grants_access(self.flags[gfns])
        if np.count_nonzero(old_access):
            u, c = np.unique(self.pfn[gfns][old_access], return_counts=True)
            self.refs[u] -= c.astype(np.int32)
        new_access = grants_access(flags)
        if np.count_nonzero(new_access):
            u, c = np.unique(pfns[new_access], return_counts=True)
            self.refs[u] += c.astype(np.int32)
        self.flags[gfns] = flags
        self.pfn[gfns] = pfns


class Hypervisor:
    """Hypercall entry points for one partition's SLAT, with outcome choices."""

    def __init__(
        self,
        rt: Runtime,
        slat: SLAT,
        kalloc: KernelAllocator,
        *,
        hv_fail: str = "none",
        deposit_on_remap: bool = False,
    ) -> None:
        if hv_fail not in ("none", "holes", "all"):
            raise ValueError(f"hv_fail must be none, holes or all, not {hv_fail!r}")
        self.rt = rt
        self.slat = slat
        self.kalloc = kalloc
        self.hv_fail = hv_fail
        self.deposit_on_remap = deposit_on_remap
        self.batch = HV_MAP_GPA_BATCH_SIZE
        # Which caller each task is in, innermost last (task id -> labels), so that the
        # hypercalls can also be counted per path ("hypercalls.fault", ...).  The driver
        # pushes and pops the labels (MshvDriverBase._attribute_hypercalls); the hypervisor
        # only reads them and never looks at who its caller is.
        self.callers: dict[int, list[str]] = {}

    def _outcome(self, gfn: int, n: int, flags: int, what: str, *, deposited: bool = False) -> int:
        """Draw the hypercall's status through the scheduler.

        The hypervisor asks for a deposit when the call installs access to pages in entries
        that do not exist yet.  With ``deposit_on_remap`` it may ask on any call (a NO_ACCESS
        remap too): then the non-blockable invalidate callback can reach
        hv_call_deposit_pages, a GFP_KERNEL allocation, after its trylock succeeded: a real
        sleep-in-atomic hazard of the kernel code (S6), off by default.
        """
        new_tables = not deposited and (
            self.deposit_on_remap
            or (
                not flags & HV_MAP_GPA_NO_ACCESS
                and bool(np.count_nonzero(self.slat.flags[gfn : gfn + n] == 0))
            )
        )
        options = [HV_STATUS_SUCCESS]
        if new_tables:
            options.append(HV_STATUS_INSUFFICIENT_MEMORY)
        if self.hv_fail == "all" or (
            self.hv_fail == "holes"
            and flags & HV_MAP_GPA_NO_ACCESS
            and bool((self.slat.flags[gfn : gfn + n] == HV_MAP_GPA_NO_ACCESS).all())
        ):
            options.append(HV_STATUS_INVALID_PARAMETER)
        return options[self.rt.choose(what, len(options))]

    def _outcome_one(self, gfn: int, flags: int, what: str, deposited: bool) -> int:
        """:meth:`_outcome` of a one-rep call, with plain ints: the same options, drawn the
        same way (one option is not a choice and records nothing)."""
        old = self.slat.flags_mv[gfn]
        no_access = flags & HV_MAP_GPA_NO_ACCESS
        if self.hv_fail == "none" and not self.deposit_on_remap:  # the common world
            if deposited or no_access or old:
                return HV_STATUS_SUCCESS  # one option: not a choice
            c = self.rt.choose(what, 2)
            return HV_STATUS_INSUFFICIENT_MEMORY if c else HV_STATUS_SUCCESS
        new_tables = not deposited and (self.deposit_on_remap or (not no_access and old == 0))
        fail = self.hv_fail == "all" or (
            self.hv_fail == "holes" and bool(no_access) and old == HV_MAP_GPA_NO_ACCESS
        )
        c = self.rt.choose(what, 1 + new_tables + fail)
        if c == 0:
            return HV_STATUS_SUCCESS
        if c == 1 and new_tables:
            return HV_STATUS_INSUFFICIENT_MEMORY
        return HV_STATUS_INVALID_PARAMETER

    def _count_hypercall(self, reps: int) -> None:
        stats = self.rt.stats
        get = stats.get
        stats["hypercalls"] = get("hypercalls", 0) + 1
        stats["hypercall_reps"] = get("hypercall_reps", 0) + reps
        task = self.rt.current
        labels = self.callers.get(task.id) if task is not None else None
        if labels:
            key = _PATH_KEYS.get(labels[-1]) or self._path_key(labels[-1])
            stats[key] = get(key, 0) + 1

    @staticmethod
    def _path_key(label: str) -> str:
        key = _PATH_KEYS[label] = "hypercalls." + label
        return key

    async def hv_call_deposit_pages(self, num_pages: int) -> int:
        rt = self.rt
        rt.count("deposits")
        if not await self.kalloc.gfp_kernel("hv_call_deposit_pages"):
            return -ENOMEM
        await rt.point("hv_call_deposit_pages", "hv", num_pages)
        return 0

    async def hv_call_map_ram_pfns(
        self,
        gfn: int,
        count: int,
        flags: int,
        pfns: npt.NDArray[np.int64] | Sequence[int] | None,
    ) -> int:
        """Map [gfn, gfn+count) with ``flags`` to ``pfns`` (NO_ACCESS: pfns unused; an array,
        or a list of ints for a few entries).

        A one-rep call (most calls of the scenarios) is modelled with plain ints: a numpy
        call costs about a microsecond whatever its size.  Larger calls use whole arrays.
        """
        rt = self.rt
        if not 0 <= gfn <= gfn + count <= self.slat.nr_gfns:
            self.slat.check_range(gfn, gfn + count, "hv_call_map_ram_pfns")
        if pfns is not None and not flags & HV_MAP_GPA_NO_ACCESS and not 0 <= count <= len(pfns):
            check_range(rt, "the pfns argument", 0, count, len(pfns), "hv_call_map_ram_pfns")
        if count == 1 and not flags & HV_MAP_GPA_LARGE_PAGE:
            # One 4 KiB rep (most calls): the same steps, choices, counts and trace as the
            # batching loop below, without it (nothing to roll back when it fails).
            deposited = False
            common = self.hv_fail == "none" and not self.deposit_on_remap
            while True:
                await rt.point("hv_call_map_gpa_pages", "slat", gfn, 1, flags)
                # _outcome_one's first case written out: success, one option, not a choice.
                old = self.slat.flags_mv[gfn]
                if common and (deposited or flags & HV_MAP_GPA_NO_ACCESS or old):
                    break
                status = self._outcome_one(gfn, flags, "hv_call_map_gpa_pages", deposited)
                if status == HV_STATUS_SUCCESS:
                    break
                if status == HV_STATUS_INSUFFICIENT_MEMORY:
                    rt.count("hv_insufficient_memory")
                    ret = await self.hv_call_deposit_pages(HV_MAP_GPA_DEPOSIT_PAGES)
                    if ret:
                        return ret
                    deposited = True
                    continue
                rt.count("hv_failures")
                if rt.tracing:
                    rt.event("hypercall_failed", "slat", gfn, 1, status)
                return -EIO
            # _count_hypercall(1), written out (the most frequent call of the model).
            stats = rt.stats
            get = stats.get
            stats["hypercalls"] = get("hypercalls", 0) + 1
            stats["hypercall_reps"] = get("hypercall_reps", 0) + 1
            labels = self.callers.get(rt.current.id)  # type: ignore[union-attr]
            if labels:
                key = _PATH_KEYS.get(labels[-1]) or self._path_key(labels[-1])
                stats[key] = get(key, 0) + 1
            pfn = 0 if flags & HV_MAP_GPA_NO_ACCESS or pfns is None else int(pfns[0])
            self.slat.write_one(gfn, flags & 0xFFFFFFFF, pfn)
            if rt.tracing:
                rt.event("slat_map", "slat", gfn, 1, flags)
            return 0
        large = bool(flags & HV_MAP_GPA_LARGE_PAGE)
        if large and count % PAGES_PER_2M:
            return -EINVAL
        unit = PAGES_PER_2M if large else 1
        src = None if flags & HV_MAP_GPA_NO_ACCESS else pfns  # None: every pfn is 0
        entry_flags = flags & ~HV_MAP_GPA_LARGE_PAGE & 0xFFFFFFFF
        done = 0
        ret = 0
        deposited = False  # one deposit of 256 pages covers a batch's new tables
        while done < count:
            n = min(count - done, self.batch * unit)
            g = gfn + done
            await rt.point("hv_call_map_gpa_pages", "slat", g, n, flags)
            if n == 1:
                status = self._outcome_one(g, flags, "hv_call_map_gpa_pages", deposited)
            else:
                status = self._outcome(g, n, flags, "hv_call_map_gpa_pages", deposited=deposited)
            if status == HV_STATUS_INSUFFICIENT_MEMORY:
                rt.count("hv_insufficient_memory")
                ret = await self.hv_call_deposit_pages(HV_MAP_GPA_DEPOSIT_PAGES)
                if ret:
                    break
                deposited = True
                continue
            deposited = False
            if status != HV_STATUS_SUCCESS:
                rt.count("hv_failures")
                if rt.tracing:
                    rt.event("hypercall_failed", "slat", g, n, status)
                ret = -EIO
                break
            self._count_hypercall(n // unit)
            if n == 1:
                self.slat.write_one(g, entry_flags, 0 if src is None else int(src[done]))
            else:
                page_pfns = (
                    None if src is None else np.asarray(src[done : done + n], dtype=np.int64)
                )
                self.slat.write_range(g, n, entry_flags, page_pfns)
            if rt.tracing:
                rt.event("slat_map", "slat", g, n, flags)
            done += n
        if ret and done:
            await self.hv_call_unmap_gpa_pages(gfn, done, 0)
        return ret

    async def hv_call_unmap_gpa_pages(self, gfn: int, count: int, flags: int) -> int:
        rt = self.rt
        self.slat.check_range(gfn, gfn + count, "hv_call_unmap_gpa_pages")
        done = 0
        while done < count:
            n = min(count - done, HV_UMAP_GPA_PAGES)
            g = gfn + done
            await rt.point("hv_call_unmap_gpa_pages", "slat", g, n)
            if self.hv_fail == "all" and rt.choose("hv_call_unmap_gpa_pages", 2):
                rt.count("hv_failures")
                return -EIO
            self._count_hypercall(n)
            if n == 1:
                self.slat.write_one(g, 0, 0)
            else:
                self.slat.write_range(g, n, 0, None)
            if rt.tracing:
                rt.event("slat_unmap", "slat", g, n)
            done += n
        return 0
