"""The dmirror scenarios: ``dmirror`` and ``dmirror-small`` (lib/test_hmm.c under races).

A process maps ``pages`` anonymous pages at vpn ``BASE`` (2 MiB aligned), some of them
populated (page ``k`` holds the token ``TOKEN + k``, the selftests' ``ptr[i] = i``) and some
read-faulted to the zero page; it opens the device (``mirrors`` opens, each a mirror of its
whole address space).  Device tasks then read the range (``readers``), write its first half
(``writers``), snapshot it (``snapshots``) and take it for atomic access (``exclusives``)
through the ioctls, a CPU thread stores to a
few pages (``cpu_writes``), and primary-MMU events race them (``events``).

Each ioctl's result must be one the selftests allow: READ returns 0 with every page
copied, or -EFAULT once part of the range is unmapped; WRITE also -EPERM once part of it is
read-only; SNAPSHOT returns 0; each may return -EINVAL once the process has exited
(``mmget_not_zero`` fails).  The oracles (D1-D3, L1 in ``concsim.checks._dmirror``)
check the mirror itself at every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from concsim._errors import UsageError
from concsim.checks import LockDep
from concsim.checks._dmirror import DmirrorOracles
from concsim.driver.dmirror._test_hmm import (
    EFAULT,
    EINVAL,
    ENOENT,
    EPERM,
    HMM_DMIRROR_EXCLUSIVE,
    HMM_DMIRROR_READ,
    HMM_DMIRROR_SNAPSHOT,
    HMM_DMIRROR_WRITE,
    Dmirror,
    DmirrorDriver,
    HmmDmirrorCmd,
)
from concsim.engine import Runtime
from concsim.kernel import Completion
from concsim.kernel import _mm_events as ev
from concsim.kernel._mm import MM, PTE_PRESENT, VM_READ, VM_WRITE
from concsim.kernel._mm_user import cpu_access, dup_mm
from concsim.kernel._pagealloc import ZERO_PFN, PageAllocator
from concsim.scenarios._registry import Param, ParamValue, Scenario, register

BASE = 512
TOKEN = 1000
WRITE_TOKEN = 7000
EVENTS = (
    "migrate",
    "reclaim",
    "munmap",
    "oom",
    "madvise",
    "mprotect",
    "numa",
    "thp",
    "fork",
    "exit",
)


class DmirrorWorld:
    def __init__(self, rt: Runtime, params: dict[str, ParamValue], variant: type[DmirrorDriver]):
        self.rt = rt
        self.p = params
        n = int(params["pages"])
        self.n = n
        nr_vpns = BASE + max(n, 512) + 512
        self.pages = PageAllocator(rt, 4 * n + 2048)
        self.mm = MM(rt, nr_vpns, self.pages)
        flags = VM_READ | (VM_WRITE if params["vma_prot"] == "rw" else 0)
        self.mm.mmap(BASE, n, flags)
        self._populate(float(params["populated"]), int(params["zero_pages"]), flags)
        self.driver = variant(rt, retry_bound=int(params["retry_bound"]))
        self.mirrors: list[Dmirror] = []
        self.ready = Completion(rt, "dmirror_opened")
        rt.ext["lockdep"] = LockDep(rt)
        rt.deadlock_invariant = "L4"
        self.oracles = DmirrorOracles(rt, self.driver, [self.mm])

    def _populate(self, frac: float, zero: int, flags: int) -> None:
        n = self.n
        i = np.arange(n)
        sel = np.ceil((i + 1) * frac) > np.ceil(i * frac)
        vpns = (BASE + i[sel]).astype(np.int64)
        mm = self.mm
        if vpns.size:
            pfns = self.pages.alloc_pages_bulk(int(vpns.size))
            self.pages.data[pfns] = TOKEN + i[sel]
            mm.pte_state[vpns] = PTE_PRESENT
            mm.pte_pfn[vpns] = pfns
            mm.pte_write[vpns] = bool(flags & VM_WRITE)
        holes = (BASE + i[~sel][:zero]).astype(np.int64)
        if holes.size:
            mm.pte_state[holes] = PTE_PRESENT
            mm.pte_pfn[holes] = ZERO_PFN
            mm.pte_write[holes] = False

    def populated(self) -> list[int]:
        return ev.populated_list(self.mm, BASE, BASE + self.n)

    # ------------------------------------------------------------------ tasks

    def spawn_tasks(self) -> None:
        p = self.p
        rt = self.rt
        rt.spawn("open", self._open())
        for i in range(int(p["readers"])):
            rt.spawn(f"dev_read{i}", self._device(i, HMM_DMIRROR_READ))
        for i in range(int(p["writers"])):
            rt.spawn(f"dev_write{i}", self._device(i, HMM_DMIRROR_WRITE))
        for i in range(int(p["snapshots"])):
            rt.spawn(f"dev_snapshot{i}", self._device(i, HMM_DMIRROR_SNAPSHOT))
        for i in range(int(p["exclusives"])):
            rt.spawn(f"dev_exclusive{i}", self._device(i, HMM_DMIRROR_EXCLUSIVE))
        if int(p["cpu_writes"]):
            rt.spawn("cpu", self._cpu(int(p["cpu_writes"])))
        for e in _events(str(p["events"])):
            rt.spawn(e, self._event(e))

    async def _open(self) -> None:
        for k in range(int(self.p["mirrors"])):
            self.mirrors.append(await self.driver.dmirror_fops_open(self.mm, mdevice=k))
        await self.ready.complete_all()

    async def _device(self, i: int, command: str) -> None:
        rt = self.rt
        await self.ready.wait_for_completion()
        d = self.mirrors[i % len(self.mirrors)]
        n = self.n
        allowed: tuple[int, ...]
        if command == HMM_DMIRROR_WRITE:
            npages = max(1, n // 2)
            buf: Any = WRITE_TOKEN + 100 * i + np.arange(npages, dtype=np.int64)
            allowed = (0, -EFAULT, -EPERM, -EINVAL)
        elif command == HMM_DMIRROR_READ:
            npages = n
            buf = np.zeros(n, dtype=np.int64)
            allowed = (0, -EFAULT, -EINVAL)
        elif command == HMM_DMIRROR_EXCLUSIVE:
            npages = n
            buf = np.zeros(n, dtype=np.int64)
            # -ENOENT: a CPU access revoked a page before the read-back (a race the
            # selftests never run).
            allowed = (0, -EFAULT, -EINVAL, -ENOENT)
        else:
            npages = n
            buf = np.zeros(n, dtype=np.uint8)
            allowed = (0, -EINVAL)
        cmd = HmmDmirrorCmd(BASE, npages, buf)
        ret = await self.driver.dmirror_fops_unlocked_ioctl(d, command, cmd)
        if rt.tracing:
            rt.event("dmirror_ioctl", f"HMM_DMIRROR_{command}", d.name, ret, cmd.cpages)
        rt.count(f"ioctl_{command.lower()}_{'ok' if ret == 0 else 'err'}")
        rt.check(
            ret in allowed,
            f"HMM_DMIRROR_{command} returned {ret}; the selftests allow {allowed}",
            ret=ret,
        )
        if ret == 0:
            rt.check(
                cmd.cpages == npages,
                f"HMM_DMIRROR_{command} returned 0 with cpages={cmd.cpages} of {npages}",
            )

    async def _cpu(self, k: int) -> None:
        n = self.n
        for j in range(k):
            vpn = BASE + (j * 5 + 1) % n
            await cpu_access(self.mm, vpn, write=True, value=TOKEN + 500 + j)

    async def _event(self, name: str) -> None:
        mm = self.mm
        n = self.n
        u = BASE
        pop = self.populated()
        if name == "migrate":
            if pop:
                await ev.migrate_page(mm, pop[0])
        elif name == "reclaim":
            if pop:
                await ev.reclaim_page(mm, pop[min(1, len(pop) - 1)])
        elif name == "munmap":
            # anon_teardown: the second half of the buffer goes while it is being read.
            await self.ready.wait_for_completion()
            await ev.munmap(mm, u + n // 2, n - n // 2)
        elif name == "oom":
            await ev.oom_reap(mm, u + n // 4, max(1, n // 8))
        elif name == "madvise":
            await ev.madvise_dontneed(mm, u, max(1, n // 8))
        elif name == "mprotect":
            await ev.mprotect_readonly(mm, u + n // 4, max(1, n // 4))
        elif name == "numa":
            await ev.change_prot_numa(mm, u, max(1, n // 4))
        elif name == "thp":
            await ev.split_huge_pmd(mm, u)
        elif name == "fork":
            child = await dup_mm(mm)
            if pop:
                await cpu_access(child, pop[-1], write=True, value=-1)
        elif name == "exit":
            await ev.exit_mmap(mm)
        else:  # pragma: no cover - names are validated by the scenario
            raise AssertionError(name)


def _events(spec: str) -> list[str]:
    events = [e.strip() for e in spec.split(",") if e.strip()]
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise UsageError(f"unknown event {unknown[0]!r} in events= (known: {', '.join(EVENTS)})")
    return events


def _variants() -> Mapping[str, Any]:
    from concsim.driver.dmirror import VARIANTS

    return VARIANTS


def _params(**defaults: ParamValue) -> tuple[Param, ...]:
    spec = (
        Param("pages", int, 16, "pages of the mirrored buffer", minimum=1, maximum=1 << 16),
        Param(
            "populated", float, 0.5, "fraction of pages written before", minimum=0.0, maximum=1.0
        ),
        Param("zero_pages", int, 2, "unpopulated pages read-faulted to the zero page", minimum=0),
        Param("vma_prot", str, "rw", "protection of the buffer", choices=("rw", "ro")),
        Param("mirrors", int, 1, "opens of the device (each a mirror)", minimum=1, maximum=4),
        Param("readers", int, 1, "device tasks reading the buffer", minimum=0, maximum=8),
        Param("writers", int, 1, "device tasks writing its first half", minimum=0, maximum=8),
        Param("snapshots", int, 1, "device tasks snapshotting it", minimum=0, maximum=8),
        Param(
            "exclusives",
            int,
            0,
            "device tasks taking it for atomic access (HMM_DMIRROR_EXCLUSIVE)",
            minimum=0,
            maximum=8,
        ),
        Param("cpu_writes", int, 1, "stores by a CPU thread of the process", minimum=0),
        Param(
            "events",
            str,
            "migrate,reclaim,munmap,oom,mprotect",
            f"primary-MMU events racing the device (any of: {', '.join(EVENTS)})",
        ),
        Param("retry_bound", int, 64, "fault-loop retries standing for the 1 s timeout", minimum=1),
    )
    return tuple(
        Param(
            p.name, p.type, defaults.get(p.name, p.default), p.help, p.choices, p.minimum, p.maximum
        )
        for p in spec
    )


def _build(rt: Runtime, params: dict[str, ParamValue], variant: Any) -> None:
    _events(str(params["events"]))
    DmirrorWorld(rt, params, variant).spawn_tasks()


register(
    Scenario(
        name="dmirror",
        summary="lib/test_hmm.c: a 16-page buffer read, written and snapshotted through the "
        "device while migration, reclaim, munmap, the OOM reaper and mprotect race it",
        build=_build,
        params=_params(),
        variants=_variants,
        default_variant="dmirror",
        max_steps=100_000,
        pct_k=120,
    )
)

register(
    Scenario(
        name="dmirror-small",
        summary="lib/test_hmm.c: 4 pages, one device read and one migration (exhaustive search)",
        build=_build,
        params=_params(
            pages=4, zero_pages=1, writers=0, snapshots=0, cpu_writes=0, events="migrate"
        ),
        variants=_variants,
        default_variant="dmirror",
        max_steps=20_000,
        pct_k=20,
    )
)
