"""tools/testing/selftests/mm/hmm-tests.c, case by case, on the dmirror model.

Each ported case sets up the mappings the selftest sets up, performs its operations
through the dmirror driver model, and asserts what the selftest asserts (return codes,
``cpages``/``faults``, snapshot flags, data), in the selftest's order.  Sizes are the
selftest's (``HMM_BUFFER_SIZE`` is 1024 pages, ``read_pmd_pagesize()`` 512) except where a
case says otherwise.  Cases written against device memory the model does not have are in
:data:`NOT_PORTED` with the reason.

A case is an ``async`` function of a :class:`Selftest`; ``concurrent`` cases (a second
thread) are run under many schedules, the others once (their only other task, a forked
child, is waited for, so there is one interleaving that matters).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from concsim.driver.dmirror._test_hmm import (
    EFAULT,
    EPERM,
    HMM_DMIRROR_CHECK_EXCLUSIVE,
    HMM_DMIRROR_EXCLUSIVE,
    HMM_DMIRROR_PROT_ERROR,
    HMM_DMIRROR_PROT_PMD,
    HMM_DMIRROR_PROT_PUD,
    HMM_DMIRROR_PROT_READ,
    HMM_DMIRROR_PROT_WRITE,
    HMM_DMIRROR_PROT_ZERO,
    HMM_DMIRROR_READ,
    HMM_DMIRROR_SNAPSHOT,
    HMM_DMIRROR_WRITE,
    Dmirror,
)
from concsim.exploration._selftest import (
    HMM_BUFFER_PAGES,
    PMD_PAGES,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    HmmBuffer,
    Selftest,
    patterns,
)
from concsim.kernel import Completion
from concsim.kernel._mm import PMD_ORDER, PUD_ORDER

RW = PROT_READ | PROT_WRITE
NTIMES = 10

Body = Callable[[Selftest], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    name: str
    expects: str
    body: Body
    concurrent: bool = False
    #: what of the selftest is left out (device memory the model does not have)
    partial: str = ""
    #: a documented reason when concsim's outcome differs from the selftest's expectation
    divergence: str = ""
    #: the default huge page size of the system the case runs on, as an order (the
    #: hugetlb cases run once per size the selftest accepts)
    hugepage_order: int = PMD_ORDER


CASES: list[Case] = []


def case(
    expects: str,
    *,
    name: str = "",
    concurrent: bool = False,
    partial: str = "",
    hugepage_order: int = PMD_ORDER,
) -> Callable[[Body], Body]:
    def deco(fn: Body) -> Body:
        c = Case(name or fn.__name__, expects, fn, concurrent, partial, "", hugepage_order)
        CASES.append(c)
        return fn

    return deco


def _buffer(t: Selftest, npages: int, prot: int, **kw: object) -> HmmBuffer:
    ptr = t.mmap(npages, prot, **kw)  # type: ignore[arg-type]
    return HmmBuffer(ptr, npages, np.zeros(npages, dtype=np.int64))


async def _cmd_ok(
    t: Selftest,
    d: Dmirror,
    request: str,
    b: HmmBuffer,
    npages: int,
    *,
    faults: int | None = 1,
    label: str = "",
) -> None:
    """``ret = hmm_dmirror_cmd(...)`` and the ASSERTs the selftests make after it: ret is 0,
    ``cpages`` is npages and (unless ``faults`` is None, as for SNAPSHOT and EXCLUSIVE)
    ``faults`` is 1.  ``label`` prefixes the checks' names (``"read ret"``)."""
    p = f"{label} " if label else ""
    t.assert_eq(f"{p}ret", await t.hmm_dmirror_cmd(d, request, b, npages), 0)
    t.assert_eq(f"{p}cpages", b.cpages, npages)
    if faults is not None:
        t.assert_eq(f"{p}faults", b.faults, faults)


# ---------------------------------------------------------------------- hmm fixture


@case("the device file opens and closes")
async def open_close(t: Selftest) -> None:
    d = await t.hmm_open(0)
    await t.close(d)
    t.assert_eq("released", d.released, True)


@case(
    "READ of a read-only buffer whose first page is pte_none and second the zero page: "
    "0, cpages=npages, faults=1; the device reads 0 from both, i from the rest"
)
async def anon_read(t: Selftest) -> None:
    n = HMM_BUFFER_PAGES
    b = _buffer(t, n, RW)
    await t.store(b.ptr + 2, patterns(n)[2:])
    t.assert_eq("mprotect", await t.mprotect(b.ptr, n, PROT_READ), 0)
    t.assert_eq("zero page read", int((await t.load(b.ptr + 1, 1))[0]), 0)
    d = await t.hmm_open(0)
    await _cmd_ok(t, d, HMM_DMIRROR_READ, b, n)
    t.assert_eq("mirror[0:2]", b.mirror[:2], np.zeros(2, dtype=np.int64))
    t.assert_eq("mirror[2:]", b.mirror[2:], patterns(n)[2:])


@case("READ of a PROT_NONE buffer: -EFAULT; the mirror is not written; the CPU still sees i")
async def anon_read_prot(t: Selftest) -> None:
    n = HMM_BUFFER_PAGES
    b = _buffer(t, n, RW)
    await t.store(b.ptr, patterns(n))
    b.mirror[:] = patterns(n, sign=-1)
    t.assert_eq("mprotect NONE", await t.mprotect(b.ptr, n, PROT_NONE), 0)
    d = await t.hmm_open(0)
    t.assert_eq("ret", await t.hmm_dmirror_cmd(d, HMM_DMIRROR_READ, b, n), -EFAULT)
    t.assert_eq("mprotect READ", await t.mprotect(b.ptr, n, PROT_READ), 0)
    t.assert_eq("ptr", await t.load(b.ptr, n), patterns(n))
    t.assert_eq("mirror", b.mirror, patterns(n, sign=-1))


@case("WRITE of an untouched buffer: 0, cpages=npages, faults=1; the CPU reads what was written")
async def anon_write(t: Selftest) -> None:
    n = HMM_BUFFER_PAGES
    b = _buffer(t, n, RW)
    b.mirror[:] = patterns(n)
    d = await t.hmm_open(0)
    await _cmd_ok(t, d, HMM_DMIRROR_WRITE, b, n)
    t.assert_eq("ptr", await t.load(b.ptr, n), patterns(n))


@case(
    "READ of one page of a PROT_READ buffer: 0, cpages=1, faults=1; WRITE: -EPERM and the "
    "buffer stays 0; after mprotect(RW) WRITE: 0, cpages=npages, faults=1, the zero page "
    "replaced"
)
async def anon_write_prot(t: Selftest) -> None:
    n = HMM_BUFFER_PAGES
    b = _buffer(t, n, PROT_READ)
    d = await t.hmm_open(0)
    await _cmd_ok(t, d, HMM_DMIRROR_READ, b, 1, label="read")
    b.mirror[:] = patterns(n)
    t.assert_eq("write ret", await t.hmm_dmirror_cmd(d, HMM_DMIRROR_WRITE, b, n), -EPERM)
    t.assert_eq("ptr", await t.load(b.ptr, n), np.zeros(n, dtype=np.int64))
    t.assert_eq("mprotect", await t.mprotect(b.ptr, n, RW), 0)
    await _cmd_ok(t, d, HMM_DMIRROR_WRITE, b, n, label="write")
    t.assert_eq("ptr", await t.load(b.ptr, n), patterns(n))


async def _child_writes(child: Selftest, ptr: int, n: int, mirror: npt.NDArray[np.int64]) -> None:
    """The child's half of the anon_write_child cases: it sees the parent's values (and its
    copy of the mirror buffer, ``-i``), opens its own mirror (of its own mm), WRITEs the
    buffer through it and reads it back."""
    cb = HmmBuffer(ptr, n, mirror)
    child.assert_eq("child ptr", await child.load(cb.ptr, n), patterns(n))
    child.assert_eq("child mirror", cb.mirror, patterns(n, sign=-1))
    fd = await child.hmm_open(0)
    await _cmd_ok(child, fd, HMM_DMIRROR_WRITE, cb, n)
    child.assert_eq("child ptr after", await child.load(cb.ptr, n), patterns(n, sign=-1))
    await child.close(fd)
    await child.exit()


async def _write_child(t: Selftest, use_thp: bool) -> None:
    n = PMD_PAGES if use_thp else HMM_BUFFER_PAGES
    b = _buffer(t, 2 * n, RW)
    if use_thp:
        b.ptr = -(-b.ptr // n) * n  # ALIGN(ptr, size)
        t.assert_eq("madvise", await t.madvise_hugepage(b.ptr, n), 0)
    b.mirror = np.zeros(n, dtype=np.int64)
    await t.store(b.ptr, patterns(n))
    b.mirror[:] = patterns(n, sign=-1)
    child = await t.fork()
    body = _child_writes(child, b.ptr, n, b.mirror.copy())  # the child's copy of the buffer
    await t.spawn("child", body).wait_for_completion()
    t.assert_eq("parent ptr", await t.load(b.ptr, n), patterns(n))


@case(
    "fork; the child's device WRITE: 0, cpages=npages, faults=1, the child sees it; the "
    "parent's buffer is unchanged (COW)",
    name="anon_write_child",
    partial="migrate=0 only (the migrate=1 iterations need device memory)",
)
async def anon_write_child(t: Selftest) -> None:
    await _write_child(t, use_thp=False)


@case(
    "as anon_write_child, on a MADV_HUGEPAGE buffer of one PMD",
    name="anon_write_child[use_thp]",
    partial="migrate=0 only (the migrate=1 iterations need device memory)",
)
async def anon_write_child_thp(t: Selftest) -> None:
    await _write_child(t, use_thp=True)


@case(
    "MAP_SHARED|MAP_ANONYMOUS, fork; the child's device WRITE: 0, cpages=npages, faults=1; "
    "the parent sees the child's data (no COW)"
)
async def anon_write_child_shared(t: Selftest) -> None:
    n = HMM_BUFFER_PAGES
    b = _buffer(t, n, RW, shared=True)
    await t.store(b.ptr, patterns(n))
    b.mirror[:] = patterns(n, sign=-1)
    child = await t.fork()
    body = _child_writes(child, b.ptr, n, b.mirror.copy())
    await t.spawn("child", body).wait_for_completion()
    t.assert_eq("parent ptr", await t.load(b.ptr, n), patterns(n, sign=-1))


@case("WRITE of a MADV_HUGEPAGE PMD: 0, cpages=npages, faults=1; the CPU reads it")
async def anon_write_huge(t: Selftest) -> None:
    size = PMD_PAGES
    b = _buffer(t, 2 * size, RW)
    b.ptr = -(-b.ptr // size) * size
    t.assert_eq("madvise", await t.madvise_hugepage(b.ptr, size), 0)
    b.mirror = patterns(size)
    d = await t.hmm_open(0)
    await _cmd_ok(t, d, HMM_DMIRROR_WRITE, b, size)
    t.assert_eq("ptr", await t.load(b.ptr, size), patterns(size))


async def _write_hugetlbfs(t: Selftest) -> None:
    n = t.hugetlb_pages()
    b = _buffer(t, n, RW, hugetlb=True)
    b.mirror = patterns(n)
    d = await t.hmm_open(0)
    await _cmd_ok(t, d, HMM_DMIRROR_WRITE, b, n)
    t.assert_eq("ptr", await t.load(b.ptr, n), patterns(n))


@case("WRITE of a MAP_HUGETLB 2 MiB page: 0, cpages=npages, faults=1; the CPU reads it")
async def anon_write_hugetlbfs(t: Selftest) -> None:
    await _write_hugetlbfs(t)


@case(
    "with 1 GiB default huge pages: WRITE of one MAP_HUGETLB 1 GiB page (262,144 pages): "
    "0, cpages=npages, faults=1; the CPU reads it",
    name="anon_write_hugetlbfs[1G]",
    hugepage_order=PUD_ORDER,
)
async def anon_write_hugetlbfs_1g(t: Selftest) -> None:
    await _write_hugetlbfs(t)


@case("READ of a PROT_READ MAP_SHARED file: 0, cpages=npages, faults=1; the file's data")
async def file_read(t: Selftest) -> None:
    n = HMM_BUFFER_PAGES
    f = t.create_file(n)
    for k, v in enumerate(patterns(n).tolist()):
        f.pwrite(k, v)
    b = HmmBuffer(t.mmap(n, PROT_READ, shared=True, fd=f), n, np.zeros(n, dtype=np.int64), f)
    d = await t.hmm_open(0)
    await _cmd_ok(t, d, HMM_DMIRROR_READ, b, n)
    t.assert_eq("mirror", b.mirror, patterns(n))


@case("WRITE of a RW MAP_SHARED file: 0, cpages=npages, faults=1; the CPU and pread see it")
async def file_write(t: Selftest) -> None:
    n = HMM_BUFFER_PAGES
    f = t.create_file(n)
    b = HmmBuffer(t.mmap(n, RW, shared=True, fd=f), n, patterns(n), f)
    d = await t.hmm_open(0)
    await _cmd_ok(t, d, HMM_DMIRROR_WRITE, b, n)
    t.assert_eq("ptr", await t.load(b.ptr, n), patterns(n))
    t.assert_eq("pread", np.array([f.pread(k) for k in range(n)]), patterns(n))


@case("ten buffers, each READ: 0, cpages=npages, faults=1, the device reads i + c")
async def anon_read_multiple(t: Selftest) -> None:
    n = HMM_BUFFER_PAGES
    d = await t.hmm_open(0)
    for c in range(NTIMES):
        b = _buffer(t, n, RW)
        await t.store(b.ptr, patterns(n, c))
        await _cmd_ok(t, d, HMM_DMIRROR_READ, b, n, label=f"[{c}]")
        t.assert_eq(f"[{c}] mirror", b.mirror, patterns(n, c))
        await t.munmap(b.ptr, n)


#: anon_teardown's buffer, scaled from 1024 pages to two 64-page fault chunks: the race
#: (a READ faulting chunk by chunk while another thread unmaps the second half) is the same,
#: and each schedule stays short enough to run hundreds of them.
TEARDOWN_PAGES = 128


@case(
    "READ while another thread unmaps the buffer's second half, ten times: either an error, "
    "or 0 with cpages=npages, faults=1 and the data the CPU wrote",
    concurrent=True,
    partial=f"buffer of {TEARDOWN_PAGES} pages (two fault chunks) instead of 1024",
)
async def anon_teardown(t: Selftest) -> None:
    n = TEARDOWN_PAGES
    d = await t.hmm_open(0)
    for c in range(NTIMES):
        b = _buffer(t, n, RW)
        await t.store(b.ptr, patterns(n, c))

        async def unmap_buffer(b: HmmBuffer = b) -> None:
            await t.munmap(b.ptr + n // 2, n - n // 2)

        joined = t.spawn(f"unmap{c}", unmap_buffer())
        rc = await t.hmm_dmirror_cmd(d, HMM_DMIRROR_READ, b, n)
        t.notes.append(f"rc={rc}")
        if rc == 0:
            t.assert_eq(f"[{c}] cpages", b.cpages, n)
            t.assert_eq(f"[{c}] faults", b.faults, 1)
            t.assert_eq(f"[{c}] mirror", b.mirror, patterns(n, c))
        await joined.wait_for_completion()
        await t.munmap(b.ptr, n)


@case("SNAPSHOT of one page of a private mmap of the device file: 0, cpages=1, m[0]=READ")
async def mixedmap(t: Selftest) -> None:
    d = await t.hmm_open(0)
    ptr = t.mmap(1, RW)
    vma = t.mm.vma_lookup(ptr)
    assert vma is not None
    t.assert_eq("mmap", t.driver.dmirror_fops_mmap(t.mm, vma), 0)
    b = HmmBuffer(ptr, 1, np.zeros(1, dtype=np.uint8))
    await _cmd_ok(t, d, HMM_DMIRROR_SNAPSHOT, b, 1, faults=None)
    t.assert_eq("m[0]", int(b.mirror[0]), HMM_DMIRROR_PROT_READ)


@case(
    "hmm2: SNAPSHOT of 7 pages: PROT_NONE -> ERROR, a hole -> ERROR, a read zero page -> "
    "ZERO|READ, a written read-only page -> READ, a written page -> WRITE",
    partial="pages 5 and 6 (migrated to device 0 and 1 in the selftest) are not checked",
)
async def snapshot(t: Selftest) -> None:
    n = 7
    p = t.mmap(n, PROT_NONE)
    d0 = await t.hmm_open(0)
    await t.hmm_open(1)
    t.assert_eq("munmap", await t.munmap(p + 1, 1), 0)
    t.assert_eq("mprotect 2", await t.mprotect(p + 2, 1, PROT_READ), 0)
    val = int((await t.load(p + 2, 1))[0]) + 3
    t.assert_eq("val", val, 3)
    t.assert_eq("mprotect 3 rw", await t.mprotect(p + 3, 1, RW), 0)
    await t.store(p + 3, np.array([val], dtype=np.int64))
    t.assert_eq("mprotect 3 ro", await t.mprotect(p + 3, 1, PROT_READ), 0)
    t.assert_eq("mprotect 4-6", await t.mprotect(p + 4, 3, RW), 0)
    await t.store(p + 4, np.array([val], dtype=np.int64))
    b = HmmBuffer(p, n, np.zeros(n, dtype=np.uint8))
    await _cmd_ok(t, d0, HMM_DMIRROR_SNAPSHOT, b, n, faults=None)
    m = [int(x) for x in b.mirror]
    t.assert_eq("m[0]", m[0], HMM_DMIRROR_PROT_ERROR)
    t.assert_eq("m[1]", m[1], HMM_DMIRROR_PROT_ERROR)
    t.assert_eq("m[2]", m[2], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ)
    t.assert_eq("m[3]", m[3], HMM_DMIRROR_PROT_READ)
    t.assert_eq("m[4]", m[4], HMM_DMIRROR_PROT_WRITE)


async def _compound(t: Selftest) -> None:
    n = t.hugetlb_pages()
    b = HmmBuffer(t.mmap(n, RW, hugetlb=True), n, np.zeros(n, dtype=np.uint8))
    await t.store(b.ptr, patterns(n))
    d = await t.hmm_open(0)
    await _cmd_ok(t, d, HMM_DMIRROR_SNAPSHOT, b, n, faults=None)
    # The level comes from the first page; every page must show it (as the selftest does).
    level = HMM_DMIRROR_PROT_PUD if b.mirror[0] & HMM_DMIRROR_PROT_PUD else HMM_DMIRROR_PROT_PMD
    want = HMM_DMIRROR_PROT_PUD if t.hugepage_order == PUD_ORDER else HMM_DMIRROR_PROT_PMD
    t.assert_eq("level", level, want)
    t.assert_eq("m", b.mirror, np.full(n, HMM_DMIRROR_PROT_WRITE | level))
    t.assert_eq("mprotect", await t.mprotect(b.ptr, n, PROT_READ), 0)
    await _cmd_ok(t, d, HMM_DMIRROR_SNAPSHOT, b, n, faults=None)
    t.assert_eq("m", b.mirror, np.full(n, HMM_DMIRROR_PROT_READ | level))


@case(
    "SNAPSHOT of a written MAP_HUGETLB 2 MiB page: every page WRITE|PMD; after "
    "mprotect(PROT_READ): READ|PMD"
)
async def compound(t: Selftest) -> None:
    await _compound(t)


@case(
    "with 1 GiB default huge pages: SNAPSHOT of a written MAP_HUGETLB 1 GiB page: every page "
    "WRITE|PUD; after mprotect(PROT_READ): READ|PUD",
    name="compound[1G]",
    hugepage_order=PUD_ORDER,
)
async def compound_1g(t: Selftest) -> None:
    await _compound(t)


@case(
    "hmm2: two devices READ the same read-only memory: each 0, cpages=npages, faults=1, data i",
    partial="the migration to device 1 and device 0's READ after it are not ported",
)
async def double_map(t: Selftest) -> None:
    n = 6
    b = _buffer(t, n, RW)
    await t.store(b.ptr, patterns(n))
    t.assert_eq("mprotect", await t.mprotect(b.ptr, n, PROT_READ), 0)
    d0 = await t.hmm_open(0)
    d1 = await t.hmm_open(1)
    for name, d in (("dev0", d0), ("dev1", d1)):
        b.mirror[:] = 0
        await _cmd_ok(t, d, HMM_DMIRROR_READ, b, n, label=name)
        t.assert_eq(f"{name} mirror", b.mirror, patterns(n))


async def _increment(t: Selftest, ptr: int, n: int, label: str) -> None:
    """``for (i...) ASSERT_EQ(ptr[i]++, i)``, then every ``ptr[i] == i + 1``."""
    before = np.zeros(n, dtype=np.int64)
    for k in range(n):
        v = int((await t.load(ptr + k, 1))[0])
        before[k] = v
        await t.store(ptr + k, np.array([v + 1], dtype=np.int64))
    t.assert_eq(f"{label} ptr[i]++", before, patterns(n))
    t.assert_eq(f"{label} ptr", await t.load(ptr, n), patterns(n) + 1)


@case(
    "EXCLUSIVE: 0, cpages=npages, the device reads i; the CPU's accesses revoke it (each "
    "page reads i, then i + 1); CHECK_EXCLUSIVE: 0 (no page still atomic)"
)
async def exclusive(t: Selftest) -> None:
    n = HMM_BUFFER_PAGES
    b = _buffer(t, n, RW)
    await t.store(b.ptr, patterns(n))
    d = await t.hmm_open(0)
    t.assert_eq("ret", await t.hmm_dmirror_cmd(d, HMM_DMIRROR_EXCLUSIVE, b, n), 0)
    t.assert_eq("cpages", b.cpages, n)
    t.assert_eq("mirror", b.mirror, patterns(n))
    await _increment(t, b.ptr, n, "cpu")
    t.assert_eq("check", await t.hmm_dmirror_cmd(d, HMM_DMIRROR_CHECK_EXCLUSIVE, b, n), 0)


@case("EXCLUSIVE, then mprotect(PROT_READ): a device WRITE returns -EPERM")
async def exclusive_mprotect(t: Selftest) -> None:
    n = HMM_BUFFER_PAGES
    b = _buffer(t, n, RW)
    await t.store(b.ptr, patterns(n))
    d = await t.hmm_open(0)
    t.assert_eq("ret", await t.hmm_dmirror_cmd(d, HMM_DMIRROR_EXCLUSIVE, b, n), 0)
    t.assert_eq("cpages", b.cpages, n)
    t.assert_eq("mirror", b.mirror, patterns(n))
    t.assert_eq("mprotect", await t.mprotect(b.ptr, n, PROT_READ), 0)
    t.assert_eq("write ret", await t.hmm_dmirror_cmd(d, HMM_DMIRROR_WRITE, b, n), -EPERM)


#: exclusive_cow's buffer, scaled from 1024 pages so that hundreds of schedules stay cheap.
COW_PAGES = 64


@case(
    "EXCLUSIVE, fork; the child and the parent each increment every int at once: both "
    "read i then i + 1 (COW separates them)",
    concurrent=True,
    partial=f"buffer of {COW_PAGES} pages instead of 1024",
)
async def exclusive_cow(t: Selftest) -> None:
    n = COW_PAGES
    b = _buffer(t, n, RW)
    await t.store(b.ptr, patterns(n))
    d = await t.hmm_open(0)
    t.assert_eq("ret", await t.hmm_dmirror_cmd(d, HMM_DMIRROR_EXCLUSIVE, b, n), 0)
    t.assert_eq("cpages", b.cpages, n)
    child = await t.fork()

    async def child_body() -> None:
        await _increment(child, b.ptr, n, "child")
        await child.exit()

    waited = t.spawn("child", child_body())
    await _increment(t, b.ptr, n, "parent")
    await waited.wait_for_completion()


@case(
    "after the pages are written (and migrated to the device), gup_test's four FOLL_WRITE "
    "calls (GUP basic, GUP fast, PIN fast LONGTERM, PIN LONGTERM) on pages 0-3 each "
    "return 0; SNAPSHOT: 0, cpages=4, every page WRITE; the CPU still reads i",
    partial="the pages stay in system memory: the migration to the device, which GUP "
    "undoes in the selftest, is not modelled",
)
async def hmm_gup_test(t: Selftest) -> None:
    n = 4
    b = HmmBuffer(t.mmap(n, RW), n, np.zeros(n, dtype=np.uint8))
    await t.store(b.ptr, patterns(n))
    d = await t.hmm_open(0)
    for k, what in enumerate(("GUP_BASIC", "GUP_FAST", "PIN_FAST", "PIN_LONGTERM")):
        t.assert_eq(what, await t.gup_test_exec(b.ptr + k, 1), 0)
    await _cmd_ok(t, d, HMM_DMIRROR_SNAPSHOT, b, n, faults=None)
    t.assert_eq("m", b.mirror, np.full(n, HMM_DMIRROR_PROT_WRITE))
    t.assert_eq("ptr", await t.load(b.ptr, n), patterns(n))


@case(
    "the pages are written (and migrated to the device); fork, the child waits; the parent "
    "writes every page (a COW break each), kills the child; SNAPSHOT: 0, cpages=4, every "
    "page WRITE",
    partial="the pages stay in system memory: the migration to the device (the parent's "
    "writes migrate them back first in the selftest) is not modelled",
)
async def hmm_cow_in_device(t: Selftest) -> None:
    n = 4
    b = HmmBuffer(t.mmap(n, RW), n, np.zeros(n, dtype=np.uint8))
    await t.store(b.ptr, patterns(n))
    d = await t.hmm_open(0)
    child = await t.fork()
    killed = Completion(t.rt, "SIGKILL")

    async def child_body() -> None:
        await killed.wait_for_completion()  # while (1) {} until SIGKILL
        await child.exit()

    waited = t.spawn("child", child_body())
    await t.store(b.ptr, patterns(n))
    await killed.complete_all()
    await waited.wait_for_completion()
    await _cmd_ok(t, d, HMM_DMIRROR_SNAPSHOT, b, n, faults=None)
    t.assert_eq("m", b.mirror, np.full(n, HMM_DMIRROR_PROT_WRITE))


_DEVICE_MEMORY = (
    "device-private/device-coherent memory (migrate_vma_*, ZONE_DEVICE pages, "
    "migrate_to_ram) is not modelled"
)

#: Selftest cases not ported, and why.
NOT_PORTED: dict[str, str] = {
    "anon_write_child[migrate=1] (2 iterations)": _DEVICE_MEMORY,
    "migrate": _DEVICE_MEMORY,
    "migrate_file_private": _DEVICE_MEMORY,
    "migrate_fault": _DEVICE_MEMORY,
    "migrate_release": _DEVICE_MEMORY,
    "migrate_shared": _DEVICE_MEMORY,
    "migrate_mixed": _DEVICE_MEMORY,
    "migrate_multiple": _DEVICE_MEMORY,
    "migrate_anon_huge_empty": _DEVICE_MEMORY,
    "migrate_anon_huge_zero": _DEVICE_MEMORY,
    "migrate_anon_huge_free": _DEVICE_MEMORY,
    "migrate_anon_huge_fault": _DEVICE_MEMORY + " (and /proc/self/pagemap)",
    "migrate_partial_unmap_fault": _DEVICE_MEMORY,
    "migrate_remap_fault": _DEVICE_MEMORY + " (and mremap)",
    "migrate_anon_huge_err": _DEVICE_MEMORY,
    "migrate_anon_huge_zero_err": _DEVICE_MEMORY,
    "benchmark_thp_migration": "a timing benchmark of device migration, not a check",
    "the hmm_device_coherent fixture variants": (
        "device-coherent memory is not modelled; for the cases above the device type does "
        "not change the code path, so each is ported once"
    ),
}
