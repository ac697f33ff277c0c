"""Oracles for a device that mirrors a process's page table (the dmirror driver, or any
HMM driver exposing the same hooks): D1-D3 and L1.

* **D1** the device never reaches a page the CPU has unmapped or replaced: an entry of the
  device page table for vpn ``v`` names the pfn the process maps at ``v`` (a present PTE,
  or the device-exclusive entry that keeps the page for the device).
  Checked where entries are stored (a stale install), where the device copies a page
  (``dmirror_do_read``), where a PTE of a mirrored mm changes (an entry left behind), and
  where a page is freed while an entry still names it.
* **D2** a write through the mirror lands in the page the process sees, and only where it
  may write: a writable entry, and every device write, needs a present, writable PTE
  mapping that pfn.
* **D3** a snapshot describes the page table as it is when the driver reports it (under
  its mutex, after ``mmu_interval_read_retry``): every valid pfn it reports is mapped there,
  writable if it says WRITE.
* **D4** a page the device maps for atomic access (an ATOMIC entry) is one the CPU cannot
  reach: its PTE is the device-exclusive entry for that page.
* **L1** the fault loop ends once invalidations stop: hitting the driver's retry bound (the
  C driver's timeout) with finitely many invalidations is a livelock.

Footprints: every check reports what it reads inside the step that runs it (see
:mod:`concsim.strategies._steps`): the process's page table (``"pt"``), the device page
table of each mirror it looks at (``<mirror>.pt``) and the list of mirrors
(``dmirror.mirrors``), so that partial-order reduction orders a PTE change, a page free or
a store against every step whose outcome the check's verdict depends on.

The checks hold for lib/test_hmm.c because every PTE change that removes or replaces a
mapping runs ``invalidate_range_start`` first, whose callback erases the entries under the
mutex that the installer holds from ``mmu_interval_read_retry`` to the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from concsim.checks._catalogue import D1, D2, D3, D4, L1
from concsim.driver.dmirror._test_hmm import MIRRORS_OBJ as MIRRORS_OBJ
from concsim.kernel._hmm import HMM_PFN_ORDER_SHIFT, HMM_PFN_VALID, HMM_PFN_WRITE, HMMRange
from concsim.kernel._mm import MM, PTE_DEVICE_EXCLUSIVE, PTE_NAMES, PTE_PRESENT

if TYPE_CHECKING:
    from concsim.driver.dmirror._test_hmm import Dmirror, DmirrorDriver
    from concsim.engine import Runtime


def _pt_obj(d: Dmirror) -> str:
    """The footprint object of a mirror's device page table (a plugin driver's mirror
    that does not name one gets ``<name>.pt``, as dmirror's does)."""
    obj: str | None = getattr(d, "pt_obj", None)
    return obj if obj is not None else f"{d.name}.pt"


class DmirrorOracles:
    """Installs the D1-D3/L1 checks on a driver and the page allocator it uses."""

    def __init__(self, rt: Runtime, driver: DmirrorDriver, mms: list[MM]) -> None:
        self.rt = rt
        self.driver = driver
        self._mms: list[MM] = []
        driver.on_store.append(self.stored)
        driver.on_access.append(self.accessed)
        driver.on_snapshot.append(self.snapshot)
        driver.on_open.append(lambda d: self.watch(d.mm))
        for mm in mms:
            self.watch(mm)
        rt.add_final_hook(self.final)

    def watch(self, mm: MM) -> None:
        if any(m is mm for m in self._mms):
            return
        if not self._mms:
            mm.pages.on_free.append(self.page_freed)
        self._mms.append(mm)
        mm.on_pte_change.append(lambda vpns, old: self.pte_changed(mm, vpns))
        mm.on_pte_change_one.append(
            lambda vpn, old: self.pte_changed(mm, np.array([vpn], dtype=np.int64))
        )

    # ------------------------------------------------------------------ helpers

    def _live(self, mm: MM | None = None) -> list[Dmirror]:
        self.rt.access(MIRRORS_OBJ, write=False)
        return [d for d in self.driver.mirrors if not d.released and (mm is None or d.mm is mm)]

    def _pte(self, mm: MM, vpn: int) -> str:
        st = int(mm.pte_state[vpn])
        if st != PTE_PRESENT:
            return PTE_NAMES[st]
        w = "writable" if mm.pte_write[vpn] else "read-only"
        return f"present, pfn {int(mm.pte_pfn[vpn])}, {w}"

    def _check_entry(
        self, d: Dmirror, vpn: int, pfn: int, write: bool, inv: str, what: str
    ) -> None:
        mm = d.mm
        self.rt.access("pt", write=False)
        st = int(mm.pte_state[vpn])
        ok = st in (PTE_PRESENT, PTE_DEVICE_EXCLUSIVE) and int(mm.pte_pfn[vpn]) == pfn
        if ok and (not write or mm.pte_write[vpn]):
            return
        if ok:
            inv = D2 if inv == D1 else inv
        raise self.rt.fail(
            "safety",
            f"{what}: {d.name} reaches pfn {pfn}{' for write' if write else ''} at vpn {vpn}, "
            f"where the process's PTE is {self._pte(mm, vpn)}",
            invariant=inv,
            vpn=vpn,
            pfn=pfn,
            mirror=d.name,
        )

    # ------------------------------------------------------------------ hooks

    def stored(
        self,
        d: Dmirror,
        vpns: npt.NDArray[np.int64],
        pfns: npt.NDArray[np.int64],
        writes: npt.NDArray[np.bool_],
    ) -> None:
        mm = d.mm
        self.rt.access("pt", write=False)
        st = mm.pte_state[vpns]
        good = ((st == PTE_PRESENT) | (st == PTE_DEVICE_EXCLUSIVE)) & (mm.pte_pfn[vpns] == pfns)
        good &= ~writes | mm.pte_write[vpns]
        for vpn in vpns.tolist():
            self._check_atomic(d, vpn, "atomic device entry stored")
        if good.all():
            return
        i = int(np.argmax(~good))
        self._check_entry(
            d, int(vpns[i]), int(pfns[i]), bool(writes[i]), D1, "stale device page-table entry"
        )

    def _check_atomic(self, d: Dmirror, vpn: int, what: str) -> None:
        self.rt.access(_pt_obj(d), write=False)
        atomic = getattr(d, "pt_atomic", None)
        if atomic is None or not atomic[vpn]:
            return
        mm = d.mm
        self.rt.access("pt", write=False)
        if int(mm.pte_state[vpn]) == PTE_DEVICE_EXCLUSIVE and mm.pte_pfn[vpn] == d.pt[vpn]:
            return
        raise self.rt.fail(
            "safety",
            f"{what}: {d.name} maps vpn {vpn} for atomic access, but the process's PTE is "
            f"{self._pte(mm, vpn)} (the CPU can reach the page too)",
            invariant=D4,
            vpn=vpn,
            mirror=d.name,
        )

    def accessed(self, d: Dmirror, vpn: int, pfn: int, write: bool) -> None:
        self._check_entry(
            d, vpn, pfn, write, D2 if write else D1, "device write" if write else "device read"
        )

    def snapshot(self, d: Dmirror, r: HMMRange) -> None:
        for i in range(r.end - r.start):
            v = int(r.hmm_pfns[i])
            if not v & int(HMM_PFN_VALID):
                continue
            pfn = v & ((1 << HMM_PFN_ORDER_SHIFT) - 1)
            self._check_entry(
                d, r.start + i, pfn, bool(v & int(HMM_PFN_WRITE)), D3, "stale snapshot"
            )

    def pte_changed(self, mm: MM, vpns: npt.NDArray[np.int64]) -> None:
        for d in self._live(mm):
            self.rt.access(_pt_obj(d), write=False)
            has = d.pt[vpns] != 0
            if not has.any():
                continue
            for vpn in vpns[has].tolist():
                self._check_atomic(d, vpn, "PTE changed under an atomic device entry")
                self._check_entry(
                    d,
                    vpn,
                    int(d.pt[vpn]),
                    bool(d.pt_write[vpn]),
                    D1,
                    "PTE changed under a device page-table entry",
                )

    def page_freed(self, pfns: npt.NDArray[np.int64]) -> None:
        for d in self._live():
            self.rt.access(_pt_obj(d), write=False)
            hit = np.isin(d.pt, pfns)
            if hit.any():
                vpn = int(np.argmax(hit))
                pfn = int(d.pt[vpn])
                raise self.rt.fail(
                    "safety",
                    f"pfn {pfn} freed while {d.name}'s page table still maps it at vpn {vpn}",
                    invariant=D1,
                    vpn=vpn,
                    pfn=pfn,
                    mirror=d.name,
                )

    def final(self, rt: Runtime) -> None:
        n = rt.stats.get("dmirror_timeouts", 0)
        if n:
            raise rt.fail(
                "liveness",
                f"the fault loop hit its retry bound ({self.driver.retry_bound}) {n} time(s) "
                "with finitely many invalidations",
                invariant=L1,
            )
        for d in self._live():
            for vpn in np.nonzero(d.pt)[0].tolist():
                self._check_entry(d, vpn, int(d.pt[vpn]), bool(d.pt_write[vpn]), D1, "at the end")
