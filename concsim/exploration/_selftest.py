"""A user process for the ported HMM selftests: the calls hmm-tests.c makes, on the model.

:class:`Selftest` is one run's world (page allocator, the process's mm, the dmirror driver
with its oracles D1-D3 watching) plus the process-side helpers the selftests use: mmap,
munmap, mprotect, madvise, loads and stores, fork, ``hmm_open`` and ``hmm_dmirror_cmd``.
Addresses and sizes are in pages.  A page's 1024 ints are one token (``PageAllocator.data``):
the selftests' ``ptr[i] = i`` on page ``k`` of a buffer is :func:`pattern` ``(k)``.

``ASSERT_EQ`` is :meth:`Selftest.assert_eq`: it records the comparison and, if it fails,
stops the case (``CaseFailed``), as the kselftest harness does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from concsim.checks import LockDep
from concsim.checks._dmirror import DmirrorOracles
from concsim.driver.dmirror._test_hmm import Dmirror, DmirrorDriver, HmmDmirrorCmd
from concsim.engine import Runtime
from concsim.kernel import Completion, WaitQueue
from concsim.kernel import _mm_events as ev
from concsim.kernel._mm import MM, PMD_ORDER, VM_HUGETLB, VM_READ, VM_SHARED, VM_WRITE
from concsim.kernel._mm_fault import pin_user_pages_fast
from concsim.kernel._mm_user import EFAULT, cpu_access, dup_mm, madvise_hugepage, mprotect
from concsim.kernel._pagealloc import PageAllocator
from concsim.kernel._pagecache import PageCacheFile

PROT_NONE = 0
PROT_READ = VM_READ
PROT_WRITE = VM_WRITE
#: read_pmd_pagesize() and HMM_BUFFER_SIZE (1024 << 12), in pages
PMD_PAGES = 512
HMM_BUFFER_PAGES = 1024
INTS_PER_PAGE = 1024
_UNIT = 1 << 24


def pattern(k: int, c: int = 0, sign: int = 1) -> int:
    """The token of page ``k`` after ``ptr[i] = sign * (i + c)`` (``ptr[i] = i`` by default)."""
    return sign * ((c + 1) * _UNIT + k)


def patterns(n: int, c: int = 0, sign: int = 1) -> npt.NDArray[np.int64]:
    return np.array([pattern(k, c, sign) for k in range(n)], dtype=np.int64)


class CaseFailed(Exception):
    """An ASSERT_* of the selftest did not hold: the case stops there."""


@dataclass
class HmmBuffer:
    """``struct hmm_buffer``: ``ptr`` is a vpn, ``mirror`` the malloc'ed user buffer."""

    ptr: int
    size: int
    mirror: npt.NDArray[Any]
    fd: PageCacheFile | None = None
    cpages: int = 0
    faults: int = 0


@dataclass
class Check:
    label: str
    got: object
    want: object
    ok: bool


@dataclass
class Selftest:
    rt: Runtime
    driver_cls: type[DmirrorDriver] = DmirrorDriver
    nr_vpns: int = 1 << 15
    capacity: int = 1 << 15
    #: the system's default huge page size (``default_huge_page_size()``), as an order:
    #: PMD_ORDER (2 MiB) or PUD_ORDER (1 GiB); MAP_HUGETLB mappings use it
    hugepage_order: int = PMD_ORDER
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pages = PageAllocator(self.rt, self.capacity)
        self.mm = MM(self.rt, self.nr_vpns, self.pages)
        self.driver = self.driver_cls(self.rt)
        self.rt.ext["lockdep"] = LockDep(self.rt)
        self.rt.deadlock_invariant = "L4"
        self.oracles = DmirrorOracles(self.rt, self.driver, [self.mm])
        self._brk = PMD_PAGES
        self._jobs: list[tuple[str, Any, Completion]] = []
        self._closing = False
        self._wq = WaitQueue(self.rt, "selftest.threads")

    # ------------------------------------------------------------------ harness

    def assert_eq(self, label: str, got: object, want: object) -> None:
        if isinstance(got, np.ndarray):
            ok = bool(np.array_equal(got, np.asarray(want)))
        else:
            ok = got == want
        self.checks.append(Check(label, _show(got), _show(want), ok))
        if not ok:
            raise CaseFailed(f"ASSERT_EQ({label}): got {_show(got)}, want {_show(want)}")

    def view(self, mm: MM) -> Selftest:
        """The same world seen from another process (a forked child)."""
        other = Selftest.__new__(Selftest)
        other.__dict__.update(self.__dict__)
        other.mm = mm
        return other

    # ------------------------------------------------------------------ memory

    def mmap(
        self,
        npages: int,
        prot: int,
        *,
        shared: bool = False,
        fd: PageCacheFile | None = None,
        hugetlb: bool = False,
    ) -> int:
        """mmap(NULL, npages, prot, MAP_PRIVATE/MAP_SHARED | MAP_ANONYMOUS/fd): its vpn.
        Addresses are handed out upwards with a PMD between mappings (hugetlb ones start on
        a default huge page, the ones a selftest aligns itself on a PMD)."""
        align = 1 << self.hugepage_order
        start = -(-self._brk // align) * align if hugetlb else self._brk
        self._brk = start + npages + PMD_PAGES
        flags = prot | (VM_SHARED if shared else 0) | (VM_HUGETLB if hugetlb else 0)
        if shared and fd is None:
            fd = PageCacheFile(self.pages, "shmem", npages)  # MAP_SHARED | MAP_ANONYMOUS
        self.mm.mmap(start, npages, flags, fd, 0, vm_huge_order=self.hugepage_order)
        return start

    def hugetlb_pages(self) -> int:
        """``ALIGN(TWOMEG, default_huge_page_size())`` in pages: one default huge page."""
        return max(PMD_PAGES, 1 << self.hugepage_order)

    def create_file(self, npages: int) -> PageCacheFile:
        return PageCacheFile(self.pages, "tmpfile", npages)

    async def munmap(self, addr: int, npages: int) -> int:
        await ev.munmap(self.mm, addr, npages)
        return 0

    async def mprotect(self, addr: int, npages: int, prot: int) -> int:
        return await mprotect(self.mm, addr, npages, prot)

    async def madvise_hugepage(self, addr: int, npages: int) -> int:
        return await madvise_hugepage(self.mm, addr, npages)

    async def store(self, addr: int, values: npt.NDArray[np.int64]) -> None:
        """``for (i...) ptr[i] = ...`` over ``len(values)`` pages (SIGSEGV fails the case)."""
        for k, v in enumerate(values.tolist()):
            ret, _ = await cpu_access(self.mm, addr + k, write=True, value=int(v))
            if ret:
                raise CaseFailed(f"SIGSEGV storing to page {k}")

    async def load(self, addr: int, npages: int) -> npt.NDArray[np.int64]:
        out = np.zeros(npages, dtype=np.int64)
        for k in range(npages):
            ret, v = await cpu_access(self.mm, addr + k, write=False)
            if ret:
                raise CaseFailed(f"SIGSEGV loading page {k}")
            out[k] = v
        return out

    async def gup_test_exec(self, addr: int, npages: int) -> int:
        """An ioctl of ``/sys/kernel/debug/gup_test`` with FOLL_WRITE (GUP_BASIC_TEST,
        GUP_FAST_BENCHMARK, PIN_FAST_BENCHMARK, PIN_LONGTERM_BENCHMARK): GUP faults each page
        in for write and takes a reference, the test drops it.  All four are
        ``pin_user_pages_fast`` then an unpin here (what differs between them, the kind of
        reference and the fast path, leaves nothing behind).  0, or the errno."""
        pages = np.zeros(npages, dtype=np.uint64)
        got = await pin_user_pages_fast(self.mm, addr, npages, pages)
        if got > 0:
            self.pages.unpin_user_pages(pages[:got].astype(np.int64))
        return 0 if got == npages else (-got if got < 0 else EFAULT)

    async def fork(self) -> Selftest:
        return self.view(await dup_mm(self.mm))

    async def exit(self) -> None:
        await ev.exit_mmap(self.mm)

    def spawn(self, name: str, coro: Any) -> Completion:
        """pthread_create / a forked child: the job runs on the world's thread task (tasks
        cannot be added to a running world); the completion is its join."""
        done = Completion(self.rt, f"{name}.done")
        self._jobs.append((name, coro, done))
        self._wq._wake()  # harness bookkeeping from a plain call: a wake-up without a point
        return done

    async def thread(self) -> None:
        """The task that runs the jobs :meth:`spawn` hands it, one after the other."""
        while True:
            await self._wq.wait_event(lambda: bool(self._jobs) or self._closing, "thread_idle")
            if not self._jobs:
                return
            name, coro, done = self._jobs.pop(0)
            self.rt.event("thread_start", name)
            try:
                await coro
            finally:
                await done.complete_all()

    def close_threads(self) -> None:
        """The process is done: an idle thread task exits."""
        self._closing = True
        self._wq._wake()  # harness bookkeeping from a plain call: a wake-up without a point

    # ------------------------------------------------------------------ the device

    async def hmm_open(self, unit: int = 0) -> Dmirror:
        return await self.driver.dmirror_fops_open(self.mm, mdevice=unit)

    async def close(self, d: Dmirror) -> None:
        await self.driver.dmirror_fops_release(d)

    async def hmm_dmirror_cmd(self, d: Dmirror, request: str, b: HmmBuffer, npages: int) -> int:
        cmd = HmmDmirrorCmd(b.ptr, npages, b.mirror)
        ret = await self.driver.dmirror_fops_unlocked_ioctl(d, request, cmd)
        if ret:
            return ret
        b.cpages = cmd.cpages
        b.faults = cmd.faults
        return 0


def _show(v: object) -> object:
    if isinstance(v, np.ndarray):
        if v.size and (v == v.flat[0]).all():
            return f"[{v.flat[0]!r} x{v.size}]"
        return f"array({v.size} items)"
    return v
