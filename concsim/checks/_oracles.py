"""Safety oracles S1-S8 for the mshv model (spec section C), incremental and audited.

Each check runs where the state it is about changes, so a violation is reported at the step
that commits it, with the gfn, pfn, hva and tasks involved:

* a page is freed while some SLAT entry still grants access to it (S1; O(1) per page with
  the SLAT's reverse-map counter);
* a PTE stops mapping a page that the SLAT still grants access to through that hva (S1),
  or write-protects one the SLAT lets the guest write (S7);
* a SLAT entry for a movable region is written granting access to a pfn the page table
  does not map at that hva (S1: a stale install), or granting write access to the zero
  page or a read-only PTE (S7); or changed without the region's mreg_mutex (S3);
* the guest touches a gfn: through the SLAT it must reach the page the process maps there
  (S1), and may write only a writable, non-zero page (S7);
* collect_and_map drops mreg_mutex: the slots it installed mirror the SLAT (S2);
* a region is created whose gfns overlap a live region ("two regions own one gfn"); a
  region is freed with its notifier still registered (S5).

At the end of every schedule (and every ``audit_every`` steps on request) an audit checks
all of it again with numpy over whole arrays, plus the leaks: a mreg_mutex still held
when every task has exited (L4).

S2 has two directions.  "A slot holds MSHV_INVALID_PFN => the SLAT grants no access" must
hold whenever the mutex is free, and is audited everywhere.  "A slot holds a pfn => the
SLAT maps exactly it" is the installer's promise, checked on the slots collect_and_map just
installed; elsewhere the kernel itself breaks it when an invalidate callback's NO_ACCESS
remap fails (B5.5: the slots keep stale pfns while the SLAT grants nothing), which is not
by itself unsafe, so the audit reports only the unsafe half.

Every check reports what it reads to the step's footprint (``rt.access(obj,
write=False)``): a check runs inside the step that changes the state, and what it reads
there (the SLAT, the page table, a region's ``mreg_pfns`` or mutex) is that step's read
set, so partial-order reduction never treats as independent two steps whose order the
check can tell apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from concsim.checks._catalogue import GFN_OVERLAP, L4, S1, S2, S3, S5, S7
from concsim.driver._region import (
    ACCESS_NAMES,
    HV_INTERCEPT_ACCESS_WRITE,
    MSHV_INVALID_PFN,
    MSHV_REGION_TYPE_MEM_MOVABLE,
    MSHV_REGION_TYPE_MEM_PINNED,
    U64_MAX,
    MshvMemRegion,
)
from concsim.kernel._hv import (
    ACCESS_MASK,
    HV_MAP_GPA_NO_ACCESS,
    HV_MAP_GPA_WRITABLE,
    SMALL_WRITE,
    flags_grant,
    grants_access,
)
from concsim.kernel._mm import PTE_NAMES, PTE_PRESENT
from concsim.kernel._pagealloc import ZERO_PFN
from concsim.kernel._views import scalar_view

#: Up to this many slots, the S2 check after collect_and_map and the audit of a region
#: run with plain ints first (numpy costs about a microsecond a call whatever the size).
SMALL_CHECK = 64
_INVALID_PFN = int(MSHV_INVALID_PFN)

if TYPE_CHECKING:
    from concsim.driver._region import MshvPartition
    from concsim.engine import Runtime
    from concsim.kernel._hv import SLAT
    from concsim.kernel._mm import MM
    from concsim.kernel._pagealloc import PageAllocator


class MshvWorld(Protocol):
    """What the oracles watch of a world (concsim.scenarios' MshvWorld builds one)."""

    rt: Runtime
    pages: PageAllocator
    mm: MM
    slat: SLAT
    partition: MshvPartition
    audit_every: int


class MshvOracles:
    def __init__(self, world: MshvWorld) -> None:
        self.w = world
        self.rt: Runtime = world.rt
        w = world
        w.pages.on_free.append(self.page_freed)
        w.mm.on_pte_change.append(self.pte_changed)
        w.mm.on_pte_change_one.append(self.pte_changed_one)
        w.slat.on_write.append(self.slat_write)
        w.slat.on_write_one.append(self.slat_write_one)
        w.slat.on_write_range.append(self.slat_write_range)
        # Where each SLAT entry was last written (step, task id): failures that the other
        # side of an invariant breaks (a PTE change, a free) name it, and explain links it.
        self.slat_step = np.full(w.slat.nr_gfns, -1, dtype=np.int64)
        self.slat_task = np.full(w.slat.nr_gfns, -1, dtype=np.int64)
        self._slat_step_mv = scalar_view(self.slat_step)
        self._slat_task_mv = scalar_view(self.slat_task)
        w.partition.on_installed.append(self.installed)
        w.partition.on_region_created.append(self.region_created)
        w.partition.on_region_free.append(self.region_freed)
        self.rt.add_final_hook(lambda rt: self.audit(final=True))
        if world.audit_every:
            self.rt.add_step_hook(lambda rt: self.audit(final=False), world.audit_every)

    # ------------------------------------------------------------------ helpers

    def _fail(self, invariant: str, message: str, **details: object) -> BaseException:
        """A safety failure of ``invariant`` (an id of concsim.checks._catalogue)."""
        return self.rt.fail("safety", message, invariant=invariant, **details)

    def _reads(self, *objs: str) -> None:
        rt = self.rt
        if rt.observer is None:  # footprints are recorded only for an observer
            return
        for obj in objs:
            rt.access(obj, write=False)

    def _live_regions(self) -> list[MshvMemRegion]:
        self.rt.access("regions", write=False)
        return [r for r in self.w.partition.all_regions if not r.freed]

    def _hva_of(self, region: MshvMemRegion, gfn: int) -> int:
        return region.start_uaddr + (gfn - region.start_gfn)

    def _owner(self, gfn: int) -> MshvMemRegion | None:
        for r in self.w.partition.all_regions:
            if not r.freed and r.start_gfn <= gfn < r.start_gfn + r.nr_pfns:
                return r
        return None

    def _slat_origin(self, gfn: int) -> dict[str, object]:
        """The step and task of the SLAT write that left gfn's entry as it is."""
        step = int(self.slat_step[gfn])
        if step < 0:
            return {}
        tid = int(self.slat_task[gfn])
        task = self.rt.tasks[tid].name if 0 <= tid < len(self.rt.tasks) else "-"
        return {"slat_step": step, "slat_task": task}

    def _describe_pfn(self, pfn: int) -> str:
        rc = int(self.w.pages.refcount[pfn])
        return f"pfn {pfn} ({'free' if rc == 0 else f'refcount {rc}'})"

    # ------------------------------------------------------------------ S1 at free and PTE change

    def page_freed(self, pfns: npt.NDArray[np.int64]) -> None:
        self._reads("slat")
        slat = self.w.slat
        if pfns.size <= SMALL_CHECK:  # a few pages: the reverse-map counts as plain ints
            refs = slat.refs_mv
            if not any(refs[p] > 0 for p in pfns.tolist()):
                return
        still = pfns[slat.refs[pfns] > 0]
        if still.size == 0:
            return
        pfn = int(still[0])
        gfn = int(np.flatnonzero(grants_access(slat.flags) & (slat.pfn == pfn))[0])
        raise self._fail(
            S1,
            f"page pfn {pfn} freed while the SLAT still grants gfn {gfn} access to it",
            where="page_freed",
            gfn=gfn,
            pfn=pfn,
            **self._slat_origin(gfn),
        )

    def pte_changed_one(self, vpn: int, old: int) -> None:
        if self.rt.observer is not None:
            self._reads("slat", "pt")
        if self.w.slat.refs_mv[old]:  # else no SLAT entry grants the page it mapped
            self.pte_changed(np.array([vpn], dtype=np.int64), np.array([old], dtype=np.int64))

    def pte_changed(self, vpns: npt.NDArray[np.int64], old: npt.NDArray[np.int64]) -> None:
        self._reads("slat", "pt")
        mm = self.w.mm
        slat = self.w.slat
        if vpns.size == 1:
            if not slat.refs[old[0]]:
                return  # no SLAT entry grants the page it mapped: nothing can break
        elif not np.count_nonzero(slat.refs[old]):
            return
        for r in self._live_regions():
            if r.mreg_type != MSHV_REGION_TYPE_MEM_MOVABLE:
                continue
            inside = (vpns >= r.start_uaddr) & (vpns < r.start_uaddr + r.nr_pfns)
            if not np.count_nonzero(inside):
                continue
            v = vpns[inside]
            o = old[inside]
            gfns = r.start_gfn + (v - r.start_uaddr)
            fl = slat.flags[gfns]
            mapped_old = grants_access(fl) & (slat.pfn[gfns] == o)
            present_same = (mm.pte_state[v] == PTE_PRESENT) & (mm.pte_pfn[v] == o)
            lost = mapped_old & ~present_same
            if np.count_nonzero(lost):
                i = int(np.flatnonzero(lost)[0])
                raise self._fail(
                    S1,
                    f"hva page {int(v[i])} stopped mapping pfn {int(o[i])} "
                    f"(now {PTE_NAMES[int(mm.pte_state[v[i]])]}) while the SLAT still grants "
                    f"gfn {int(gfns[i])} access to it",
                    where="pte_changed",
                    gfn=int(gfns[i]),
                    pfn=int(o[i]),
                    hva=int(v[i]),
                    region=r.name,
                    **self._slat_origin(int(gfns[i])),
                )
            wp = mapped_old & present_same & ((fl & HV_MAP_GPA_WRITABLE) != 0) & ~mm.pte_write[v]
            if np.count_nonzero(wp):
                i = int(np.flatnonzero(wp)[0])
                raise self._fail(
                    S7,
                    f"hva page {int(v[i])} was write-protected while the SLAT lets the guest "
                    f"write gfn {int(gfns[i])} (pfn {int(o[i])})",
                    where="pte_changed",
                    gfn=int(gfns[i]),
                    pfn=int(o[i]),
                    hva=int(v[i]),
                    **self._slat_origin(int(gfns[i])),
                )

    # ------------------------------------------------------------------ SLAT writes: S1, S3, S7
    #
    # Two paths with the same rules: a vectorised one for multi-page hypercalls and a scalar
    # one for the common single-page call.  Both report through the builders below.

    def _zero_writable(self, gfn: int) -> BaseException:
        return self._fail(
            S7,
            f"gfn {gfn} mapped writable to the shared zero page",
            where="slat_write",
            gfn=gfn,
            pfn=ZERO_PFN,
        )

    def _unlocked_write(self, gfn: int, r: MshvMemRegion) -> BaseException:
        return self._fail(
            S3,
            f"SLAT entry of gfn {gfn} ({r.name}) changed without holding {r.mreg_mutex.name}",
            where="slat_write",
            gfn=gfn,
            region=r.name,
        )

    def _stale_install(self, gfn: int, pfn: int, v: int, r: MshvMemRegion) -> BaseException:
        state = PTE_NAMES[int(self.w.mm.pte_state[v])]
        return self._fail(
            S1,
            f"gfn {gfn} mapped to {self._describe_pfn(pfn)}, which hva page {v} no longer maps "
            f"(it is {state}): a stale pfn installed",
            where="slat_write",
            gfn=gfn,
            pfn=pfn,
            hva=v,
            region=r.name,
        )

    def _writable_over_ro(self, gfn: int, pfn: int, v: int) -> BaseException:
        return self._fail(
            S7,
            f"gfn {gfn} mapped writable to pfn {pfn}, whose PTE at hva page {v} is read-only "
            "(COW / shared page)",
            where="slat_write",
            gfn=gfn,
            pfn=pfn,
            hva=v,
        )

    def _s3_applies(self, r: MshvMemRegion) -> bool:
        # S3 binds while callbacks can run: once destroy has removed the notifier (and the
        # region is unlisted) mshv_region_unmap rightly runs without the mutex.
        self._reads("subs", r.mreg_mutex.name)
        return r.mreg_mni.in_tree or r.mreg_mni.deferred_insert

    def slat_write(
        self,
        gfns: npt.NDArray[np.int64],
        flags: npt.NDArray[np.uint32],
        pfns: npt.NDArray[np.int64],
    ) -> None:
        self._reads("slat", "pt")
        self._check_slat_write(gfns, flags, pfns)
        t = self.rt.current
        self.slat_step[gfns] = self.rt.step
        self.slat_task[gfns] = t.id if t is not None else -1

    def _check_slat_write(
        self,
        gfns: npt.NDArray[np.int64],
        flags: npt.NDArray[np.uint32],
        pfns: npt.NDArray[np.int64],
    ) -> None:
        if gfns.size == 1:  # (it also records the write's step and task, as the caller does)
            self.slat_write_one(int(gfns[0]), int(flags[0]), int(pfns[0]))
            return
        if gfns.size <= SMALL_WRITE:
            self._slat_write_few(gfns.tolist(), flags.tolist(), pfns.tolist())
            return
        mm = self.w.mm
        slat = self.w.slat
        grants_new = grants_access(flags)
        zero_w = grants_new & ((flags & HV_MAP_GPA_WRITABLE) != 0) & (pfns == ZERO_PFN)
        if np.count_nonzero(zero_w):
            raise self._zero_writable(int(gfns[np.flatnonzero(zero_w)[0]]))
        for r in self._live_regions():
            if r.mreg_type != MSHV_REGION_TYPE_MEM_MOVABLE:
                continue
            inside = (gfns >= r.start_gfn) & (gfns < r.start_gfn + r.nr_pfns)
            if not np.count_nonzero(inside):
                continue
            g = gfns[inside]
            touches_access = grants_new[inside] | grants_access(slat.flags[g])
            if (
                np.count_nonzero(touches_access)
                and self._s3_applies(r)
                and (r.mreg_mutex.owner is not self.rt.current)
            ):
                raise self._unlocked_write(int(g[np.flatnonzero(touches_access)[0]]), r)
            gn = grants_new[inside]
            if not np.count_nonzero(gn):
                continue
            v = r.start_uaddr + (g - r.start_gfn)
            p = pfns[inside]
            present_same = (mm.pte_state[v] == PTE_PRESENT) & (mm.pte_pfn[v] == p)
            stale = gn & ~present_same
            if np.count_nonzero(stale):
                i = int(np.flatnonzero(stale)[0])
                raise self._stale_install(int(g[i]), int(p[i]), int(v[i]), r)
            ro = gn & ((flags[inside] & HV_MAP_GPA_WRITABLE) != 0) & ~mm.pte_write[v]
            if np.count_nonzero(ro):
                i = int(np.flatnonzero(ro)[0])
                raise self._writable_over_ro(int(g[i]), int(p[i]), int(v[i]))

    def slat_write_range(
        self, gfn: int, n: int, flags: int, pfns: npt.NDArray[np.int64] | None
    ) -> None:
        """:meth:`slat_write` of [gfn, gfn+n) with one flags value (``pfns`` None: zeros):
        the same checks and first violation, on slices and scalars."""
        self._reads("slat", "pt")
        self._check_slat_range(gfn, n, flags, pfns)
        t = self.rt.current
        self.slat_step[gfn : gfn + n] = self.rt.step
        self.slat_task[gfn : gfn + n] = t.id if t is not None else -1

    def _check_slat_range(
        self, gfn: int, n: int, flags: int, pfns: npt.NDArray[np.int64] | None
    ) -> None:
        end = gfn + n
        if n <= SMALL_WRITE:
            p = [0] * n if pfns is None else pfns.tolist()
            self._slat_write_few(list(range(gfn, end)), [flags] * n, p)
            return
        grants_new = flags_grant(flags)
        if grants_new and flags & HV_MAP_GPA_WRITABLE:
            assert pfns is not None
            zero = pfns == ZERO_PFN
            if np.count_nonzero(zero):
                raise self._zero_writable(gfn + int(np.argmax(zero)))
        mm = self.w.mm
        slat = self.w.slat
        for r in self._live_regions():
            if r.mreg_type != MSHV_REGION_TYPE_MEM_MOVABLE:
                continue
            lo = max(gfn, r.start_gfn)
            hi = min(end, r.start_gfn + r.nr_pfns)
            if lo >= hi:
                continue
            if grants_new:
                first = lo
            else:
                old = grants_access(slat.flags[lo:hi])
                first = lo + int(np.argmax(old)) if np.count_nonzero(old) else -1
            if first >= 0 and self._s3_applies(r) and (r.mreg_mutex.owner is not self.rt.current):
                raise self._unlocked_write(first, r)
            if not grants_new:
                continue
            assert pfns is not None
            v0 = r.start_uaddr + (lo - r.start_gfn)
            v1 = v0 + (hi - lo)
            if not 0 <= v0 < v1 <= mm.nr_vpns:  # outside the page table: as index arrays
                gfns = np.arange(gfn, end, dtype=np.int64)
                self._check_slat_write(gfns, np.full(n, flags, dtype=np.uint32), pfns)
                return
            p = pfns[lo - gfn : hi - gfn]
            present_same = (mm.pte_state[v0:v1] == PTE_PRESENT) & (mm.pte_pfn[v0:v1] == p)
            if not present_same.all():
                i = int(np.argmin(present_same))
                raise self._stale_install(lo + i, int(p[i]), v0 + i, r)
            if flags & HV_MAP_GPA_WRITABLE:
                ro = ~mm.pte_write[v0:v1]
                if np.count_nonzero(ro):
                    i = int(np.argmax(ro))
                    raise self._writable_over_ro(lo + i, int(p[i]), v0 + i)

    def _slat_write_few(self, gfns: list[int], flags: list[int], pfns: list[int]) -> None:
        """:meth:`slat_write` of a few entries with plain ints: the same checks, reporting
        the same first violation (numpy costs a microsecond a call whatever the size)."""
        self._reads("slat", "pt")
        mm = self.w.mm
        old_flags = self.w.slat.flags
        grants_new = [bool(f & ACCESS_MASK) and not f & HV_MAP_GPA_NO_ACCESS for f in flags]
        for g, f, p, gn in zip(gfns, flags, pfns, grants_new, strict=True):
            if gn and f & HV_MAP_GPA_WRITABLE and p == ZERO_PFN:
                raise self._zero_writable(g)
        for r in self._live_regions():
            if r.mreg_type != MSHV_REGION_TYPE_MEM_MOVABLE:
                continue
            lo = r.start_gfn
            inside = [k for k, g in enumerate(gfns) if lo <= g < lo + r.nr_pfns]
            if not inside:
                continue
            for k in inside:
                old = int(old_flags[gfns[k]])
                if grants_new[k] or (old & ACCESS_MASK and not old & HV_MAP_GPA_NO_ACCESS):
                    if self._s3_applies(r) and r.mreg_mutex.owner is not self.rt.current:
                        raise self._unlocked_write(gfns[k], r)
                    break
            new = [k for k in inside if grants_new[k]]
            hvas = [r.start_uaddr + (gfns[k] - lo) for k in new]
            for k, v in zip(new, hvas, strict=True):
                if int(mm.pte_state[v]) != PTE_PRESENT or int(mm.pte_pfn[v]) != pfns[k]:
                    raise self._stale_install(gfns[k], pfns[k], v, r)
            for k, v in zip(new, hvas, strict=True):
                if flags[k] & HV_MAP_GPA_WRITABLE and not mm.pte_write[v]:
                    raise self._writable_over_ro(gfns[k], pfns[k], v)

    def slat_write_one(self, gfn: int, flags: int, pfn: int) -> None:
        """The checks of :meth:`slat_write` for one entry, then the write's step and task.

        Runs at every one-rep hypercall: the helpers (flags_grant, _owner, _s3_applies,
        _hva_of, _reads) are written out inline, one-entry reads go through memoryviews."""
        w = self.w
        rt = self.rt
        obs = rt.observer
        if obs is not None:
            self._reads("slat", "pt", "regions")
        grants_new = bool(flags & ACCESS_MASK) and not flags & HV_MAP_GPA_NO_ACCESS
        if grants_new and flags & HV_MAP_GPA_WRITABLE and pfn == ZERO_PFN:
            raise self._zero_writable(gfn)
        owner: MshvMemRegion | None = None
        for r in w.partition.all_regions:
            if not r.freed and r.start_gfn <= gfn < r.start_gfn + r.nr_pfns:
                owner = r
                break
        if owner is not None and owner.mreg_type == MSHV_REGION_TYPE_MEM_MOVABLE:
            if grants_new:
                touches = True
            else:
                old = w.slat.flags_mv[gfn]
                touches = bool(old & ACCESS_MASK) and not old & HV_MAP_GPA_NO_ACCESS
            mni = owner.mreg_mni
            if obs is not None:
                self._reads("subs", owner.mreg_mutex.name)
            locked = owner.mreg_mutex.owner is rt.current
            if touches and (mni.in_tree or mni.deferred_insert) and not locked:
                raise self._unlocked_write(gfn, owner)
            if grants_new:
                mm = w.mm
                v = owner.start_uaddr + (gfn - owner.start_gfn)
                if mm.pte_state_mv[v] != PTE_PRESENT or mm.pte_pfn_mv[v] != pfn:
                    raise self._stale_install(gfn, pfn, v, owner)
                if flags & HV_MAP_GPA_WRITABLE and not mm.pte_write_mv[v]:
                    raise self._writable_over_ro(gfn, pfn, v)
        t = rt.current
        self._slat_step_mv[gfn] = rt.step
        self._slat_task_mv[gfn] = t.id if t is not None else -1

    # ------------------------------------------------------------------ the guest's view

    def guest_access(self, gfn: int, access: int) -> None:
        """The guest touched ``gfn`` and the SLAT let it through."""
        self._reads("slat", "pt", "pages")
        slat = self.w.slat
        mm = self.w.mm
        pfn = int(slat.pfn[gfn])
        r = self._owner(gfn)
        if r is None:
            raise self._fail(
                S1,
                f"guest reached pfn {pfn} through gfn {gfn}, which no live region owns",
                where="guest_access",
                gfn=gfn,
                pfn=pfn,
            )
        if r.mreg_type == MSHV_REGION_TYPE_MEM_PINNED:
            self._pinned_access(r, gfn, pfn, access)
            return
        if r.mreg_type != MSHV_REGION_TYPE_MEM_MOVABLE:
            return  # MMIO: device memory, not the process's pages
        v = self._hva_of(r, gfn)
        if int(mm.pte_state[v]) != PTE_PRESENT or int(mm.pte_pfn[v]) != pfn:
            raise self._fail(
                S1,
                f"guest {ACCESS_NAMES[access]} of gfn {gfn} reached {self._describe_pfn(pfn)}, "
                f"but hva page {v} maps {PTE_NAMES[int(mm.pte_state[v])]} "
                f"pfn {int(mm.pte_pfn[v])}: the hypervisor maps a page the process no longer owns",
                where="guest_access",
                gfn=gfn,
                pfn=pfn,
                hva=v,
                region=r.name,
                **self._slat_origin(gfn),
            )
        if access == HV_INTERCEPT_ACCESS_WRITE and (pfn == ZERO_PFN or not mm.pte_write[v]):
            raise self._fail(
                S7,
                f"guest wrote gfn {gfn} (pfn {pfn}) whose PTE at hva page {v} is read-only"
                + (" (the shared zero page)" if pfn == ZERO_PFN else ""),
                where="guest_access",
                gfn=gfn,
                pfn=pfn,
                hva=v,
            )

    def _pinned_access(self, r: MshvMemRegion, gfn: int, pfn: int, access: int) -> None:
        """A pinned region's pages stay the guest's whatever the process does with its own
        mapping (munmap, mprotect: B8), so the rule is the pin's: the guest reaches the page
        the region pinned for that gfn, and that page is allocated."""
        pages = self.w.pages
        slot = r.mreg_pfns[gfn - r.start_gfn] if r.mreg_pfns is not None else MSHV_INVALID_PFN
        if slot == MSHV_INVALID_PFN or int(slot) != pfn or not pages.folio_maybe_dma_pinned(pfn):
            raise self._fail(
                S1,
                f"guest {ACCESS_NAMES[access]} of gfn {gfn} of pinned {r.name} reached "
                f"{self._describe_pfn(pfn)}, which is not the page pinned for it "
                f"({'none' if slot == MSHV_INVALID_PFN else f'pfn {int(slot)}'})",
                where="guest_access",
                gfn=gfn,
                pfn=pfn,
                region=r.name,
            )

    # ------------------------------------------------------------------ S2, regions, S5

    def installed(self, region: MshvMemRegion, off: int, count: int) -> None:
        if region.mreg_pfns is None or count == 0:
            return
        self._reads("slat")
        slat = self.w.slat
        slots = region.mreg_pfns[off : off + count]
        a = region.start_gfn + off
        if count <= SMALL_CHECK and a >= 0 and a + count <= slat.nr_gfns:
            # A few slots (every fault window of a small region): the same test with plain
            # ints through the SLAT's memoryviews; only a violation takes the numpy path
            # below, which reports it (a dozen numpy calls cost more than the loop).
            fl = slat.flags_mv[a : a + count].tolist()
            pf = slat.pfn_mv[a : a + count].tolist()
            for f, p, s in zip(fl, pf, slots.tolist(), strict=True):
                grants = bool(f & ACCESS_MASK) and not f & HV_MAP_GPA_NO_ACCESS
                if (s == _INVALID_PFN and grants) or (
                    s != _INVALID_PFN and not (grants and p == s)
                ):
                    break
            else:
                return
        if a >= 0 and a + count <= slat.nr_gfns:  # slices: views, no index arrays
            g = grants_access(slat.flags[a : a + count])
            same = slat.pfn[a : a + count] == slots.astype(np.int64)
        else:  # out of the SLAT: let the indexing fail as it always did
            gfns = np.arange(a, a + count)
            g = grants_access(slat.flags[gfns])
            same = slat.pfn[gfns] == slots.astype(np.int64)
        valid = slots != MSHV_INVALID_PFN
        bad = np.where(valid, ~(g & same), g)
        if np.count_nonzero(bad):
            gfns = np.arange(a, a + count)
            i = int(np.flatnonzero(bad)[0])
            raise self._fail(
                S2,
                f"after collect_and_map, slot {off + i} of {region.name} holds "
                f"{'MSHV_INVALID_PFN' if not valid[i] else int(slots[i])} but the SLAT "
                f"{'grants' if g[i] else 'does not grant'} gfn {int(gfns[i])} access "
                f"(pfn {int(slat.pfn[gfns[i]])})",
                where="mshv_region_collect_and_map",
                gfn=int(gfns[i]),
                region=region.name,
            )

    def region_created(self, region: MshvMemRegion) -> None:
        a0 = region.start_gfn
        a1 = (region.start_gfn + region.nr_pfns) & U64_MAX
        for r in self._live_regions():
            if r is region:
                continue
            b0 = r.start_gfn
            b1 = r.start_gfn + r.nr_pfns
            # [a0, a1) may wrap past 2^64; r's range does not (it was checked).
            if a1 < a0:
                overlap = b1 > a0 or b0 < a1
            else:
                overlap = a0 < b1 and b0 < a1
            if overlap:
                raise self._fail(
                    GFN_OVERLAP,
                    f"{region.name} (gfn {a0:#x}+{region.nr_pfns}, ends at {a1:#x} after u64 "
                    f"wrap-around) overlaps {r.name} (gfn {b0}+{r.nr_pfns}): two regions own "
                    "one gfn",
                    where="mshv_partition_create_region",
                    region=region.name,
                    other=r.name,
                )

    def region_freed(self, region: MshvMemRegion) -> None:
        self._reads("subs")
        mni = region.mreg_mni
        if mni.in_tree or mni.deferred_insert:
            raise self._fail(
                S5,
                f"{region.name} freed while its interval notifier is still registered: the next "
                "invalidation calls back into freed memory",
                where="vfree",
                region=region.name,
            )

    # ------------------------------------------------------------------ audit

    def _audit_small_ok(self, r: MshvMemRegion) -> bool:
        """The audit of a small region with plain ints: True when none of its checks can
        fail (then the numpy checks are skipped); False sends it through them, which
        report what is wrong.  A region of a few dozen pages is checked at the end of every
        schedule, where a loop costs less than the two dozen numpy calls."""
        w = self.w
        slat = w.slat
        mm = w.mm
        a, n, u = r.start_gfn, r.nr_pfns, r.start_uaddr
        if n > SMALL_CHECK or r.mreg_mutex.is_locked():
            return False
        if not (0 <= a <= a + n <= slat.nr_gfns and 0 <= u <= u + n <= mm.nr_vpns):
            return False
        movable = r.mreg_type == MSHV_REGION_TYPE_MEM_MOVABLE
        pfns = r.mreg_pfns
        slots = pfns.tolist() if pfns is not None else None
        fl = slat.flags_mv[a : a + n].tolist()
        sp = slat.pfn_mv[a : a + n].tolist()
        st = mm.pte_state_mv[u : u + n].tolist()
        pf = mm.pte_pfn_mv[u : u + n].tolist()
        for i in range(n):
            f = fl[i]
            if not f & ACCESS_MASK or f & HV_MAP_GPA_NO_ACCESS:
                continue  # grants nothing: nothing to check
            if movable and (st[i] != PTE_PRESENT or pf[i] != sp[i]):
                return False
            if slots is not None and slots[i] == _INVALID_PFN:
                return False
        return True

    def audit(self, *, final: bool) -> None:
        self._reads("slat", "pt")
        w = self.w
        slat = w.slat
        mm = w.mm
        for r in self._live_regions():
            self._reads(r.mreg_mutex.name)
            if self._audit_small_ok(r):
                continue
            gfns = np.arange(r.start_gfn, r.start_gfn + r.nr_pfns)
            a, b = r.start_gfn, r.start_gfn + r.nr_pfns
            u, n = r.start_uaddr, r.nr_pfns
            inside = 0 <= a <= b <= slat.nr_gfns and 0 <= u <= u + n <= mm.nr_vpns
            # Slices (views) when the region lies inside both tables, else index arrays.
            g = grants_access(slat.flags[a:b] if inside else slat.flags[gfns])
            if r.mreg_type == MSHV_REGION_TYPE_MEM_MOVABLE and np.count_nonzero(g):
                v = r.start_uaddr + (gfns - r.start_gfn)
                if inside:
                    st, pf, sp = mm.pte_state[u : u + n], mm.pte_pfn[u : u + n], slat.pfn[a:b]
                else:
                    st, pf, sp = mm.pte_state[v], mm.pte_pfn[v], slat.pfn[gfns]
                ok = (st == PTE_PRESENT) & (pf == sp)
                bad = g & ~ok
                if np.count_nonzero(bad) and not r.mreg_mutex.is_locked():
                    i = int(np.flatnonzero(bad)[0])
                    raise self._fail(
                        S1,
                        f"audit: SLAT grants gfn {int(gfns[i])} access to pfn "
                        f"{int(slat.pfn[gfns[i]])}, which hva page {int(v[i])} does not map",
                        where="audit",
                        gfn=int(gfns[i]),
                        pfn=int(slat.pfn[gfns[i]]),
                        hva=int(v[i]),
                    )
            if r.mreg_pfns is not None and not r.mreg_mutex.is_locked():
                inval = r.mreg_pfns == MSHV_INVALID_PFN
                bad = inval & g
                if np.count_nonzero(bad):
                    i = int(np.flatnonzero(bad)[0])
                    raise self._fail(
                        S2,
                        f"audit: slot {i} of {r.name} is MSHV_INVALID_PFN but the SLAT grants "
                        f"gfn {int(gfns[i])} access",
                        where="audit",
                        gfn=int(gfns[i]),
                        region=r.name,
                    )
            if final and r.mreg_mutex.is_locked():
                owner = r.mreg_mutex.owner
                assert owner is not None
                raise self.rt.fail(
                    "deadlock",
                    f"{r.mreg_mutex.name} is still held by task {owner.name!r}, which has exited: "
                    "every later mutex_lock on it blocks forever",
                    invariant=L4,
                    where="audit",
                    lock=r.mreg_mutex.name,
                )
