"""Every synchronisation and publication operation is a scheduling point (issue 11).

For each operation, a two-task world whose bug (an assertion of the other task) is found
by exhaustive search only because that operation is a point: the same world with that one
point removed (the operation runs atomically with the code before it) is clean.

The common shape: task ``a`` writes ``phase = 1`` in one step, then performs the operation
and writes ``phase = 2``; task ``b`` asserts it never sees ``phase == 1``.  Without a point
before the operation, ``phase = 1`` and ``phase = 2`` happen in one step and ``b`` cannot
see the first.  The list operations under the partition lock sit inside driver paths, so
their worlds observe the driver's state instead.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import pytest

from concsim.driver import AfterPatch
from concsim.engine import Runtime
from concsim.kernel import MM, Completion, Mutex, PageAllocator, RWSem, SpinLock, WaitQueue
from concsim.kernel._mmu_notifier import (
    MMUIntervalNotifier,
    mmu_interval_check_retry,
    mmu_interval_notifier_insert,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
)
from tests.checks.world import make_world
from tests.explore.dpor_programs import dfs


@types.coroutine
def _no_switch() -> Generator[Any, None, None]:
    return
    yield  # pragma: no cover - makes this a generator


def _without_point(build: Callable[[Runtime], None], op: str) -> Callable[[Runtime], None]:
    """``build`` with the scheduling point named ``op`` removed (it no longer yields)."""

    def b(rt: Runtime) -> None:
        orig = rt.point

        def point(o: str, obj: str, *values: object, read: bool = False) -> Any:
            if o == op:
                t = rt.current
                assert t is not None
                return _no_switch()
            return orig(o, obj, *values, read=read)

        rt.point = point  # type: ignore[method-assign]
        build(rt)

    return b


def _found(build: Callable[[Runtime], None]) -> frozenset[str]:
    out = dfs(build, reduction=True, limit=20_000)
    assert out.complete
    return out.signatures


Setup = Callable[[Runtime], Any]
Op = Callable[[Any], Awaitable[object]]


def _phase_world(setup: Setup, before: Op | None, op: Op) -> Callable[[Runtime], None]:
    def build(rt: Runtime) -> None:
        state = {"phase": 0}
        obj = setup(rt)

        async def a() -> None:
            if before is not None:
                await before(obj)
            rt.access("phase")
            state["phase"] = 1
            await op(obj)
            rt.access("phase")
            state["phase"] = 2

        async def b() -> None:
            await rt.point("look", "phase", read=True)
            rt.access("phase", write=False)
            rt.check(state["phase"] != 1, "saw the state right before the operation")

        rt.spawn("a", a())
        rt.spawn("b", b())

    return build


def _mm(rt: Runtime) -> MMUIntervalNotifier:
    mm = MM(rt, 64, PageAllocator(rt, 64))
    mni = MMUIntervalNotifier("n")
    mni.mm = mm
    return mni


async def _insert(mni: MMUIntervalNotifier) -> None:
    assert mni.mm is not None

    async def cb(*_: object) -> bool:
        return True

    await mmu_interval_notifier_insert(mni, mni.mm, 0, 4, cb)


class _Kref:
    """The driver's kref functions on a stand-in region (refcount 2, so a put never
    destroys)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.region = types.SimpleNamespace(name="r", freed=False, mreg_refcount=2)

    def _check_alive(self, region: object, where: str) -> None:
        pass

    async def get(self) -> bool:
        return await AfterPatch.mshv_region_get(self, self.region)  # type: ignore[arg-type]

    async def put(self) -> None:
        await AfterPatch.mshv_region_put(self, self.region)  # type: ignore[arg-type]


CASES: list[tuple[str, Setup, Op | None, Op]] = [
    ("mutex_lock", lambda rt: Mutex(rt, "m"), None, lambda m: m.lock()),
    ("mutex_trylock", lambda rt: Mutex(rt, "m"), None, lambda m: m.trylock()),
    ("mutex_unlock", lambda rt: Mutex(rt, "m"), lambda m: m.lock(), lambda m: m.unlock()),
    ("spin_lock", lambda rt: SpinLock(rt, "s"), None, lambda s: s.lock()),
    ("spin_unlock", lambda rt: SpinLock(rt, "s"), lambda s: s.lock(), lambda s: s.unlock()),
    ("down_read", lambda rt: RWSem(rt, "rw"), None, lambda r: r.down_read()),
    ("down_read_trylock", lambda rt: RWSem(rt, "rw"), None, lambda r: r.down_read_trylock()),
    ("up_read", lambda rt: RWSem(rt, "rw"), lambda r: r.down_read(), lambda r: r.up_read()),
    ("down_write", lambda rt: RWSem(rt, "rw"), None, lambda r: r.down_write()),
    ("up_write", lambda rt: RWSem(rt, "rw"), lambda r: r.down_write(), lambda r: r.up_write()),
    (
        "downgrade_write",
        lambda rt: RWSem(rt, "rw"),
        lambda r: r.down_write(),
        lambda r: r.downgrade_write(),
    ),
    ("complete", lambda rt: Completion(rt, "c"), None, lambda c: c.complete()),
    ("complete_all", lambda rt: Completion(rt, "c"), None, lambda c: c.complete_all()),
    ("wake_up_all", lambda rt: WaitQueue(rt, "wq"), None, lambda q: q.wake_up_all()),
    ("kref_get_unless_zero", _Kref, None, lambda k: k.get()),
    ("kref_put", _Kref, None, lambda k: k.put()),
    ("mmu_interval_read_begin", _mm, _insert, lambda n: mmu_interval_read_begin(n)),
    ("mmu_interval_read_retry", _mm, _insert, lambda n: mmu_interval_read_retry(n, 0)),
    ("mmu_interval_check_retry", _mm, _insert, lambda n: mmu_interval_check_retry(n, 0)),
    ("mmu_interval_set_seq", _mm, _insert, lambda n: mmu_interval_set_seq(n, 3)),
]


@pytest.mark.parametrize(("op", "setup", "before", "action"), CASES, ids=[c[0] for c in CASES])
def test_the_operation_is_a_scheduling_point(
    op: str, setup: Setup, before: Op | None, action: Op
) -> None:
    build = _phase_world(setup, before, action)
    assert _found(build) == {"assertion:saw the state right before the operation"}
    assert _found(_without_point(build, op)) == frozenset()


def _list_world(unmap: bool) -> Callable[[Runtime], None]:
    """Task ``vmm`` maps region 0 (and unmaps it with ``unmap``); task ``peek`` asserts it
    never sees the partition lock held by ``vmm`` between its acquisition and the list
    operation: the created region not listed yet (insert) or still listed while ``vmm``
    is unmapping (remove)."""

    def build(rt: Runtime) -> None:
        w = make_world(rt, pages=4, populated=0.0)
        state = {"unmapping": False}
        lock = w.partition.pt_mem_regions_lock

        async def vmm() -> None:
            assert await w.driver.mshv_map_user_memory(w.partition, w.mems[0]) == 0
            if unmap:
                rt.access("unmapping")
                state["unmapping"] = True
                await w.driver.mshv_unmap_user_memory(w.partition, w.mems[0])

        async def peek() -> None:
            await rt.point("peek", "pt_mem_regions", read=True)
            rt.access("unmapping", write=False)
            rt.access("pt_mem_regions_lock", write=False)
            regions = w.partition.all_regions
            held = lock.owner is not None and lock.owner.name == "vmm"
            if not regions or not held:
                return
            r = regions[0]
            mapped = bool(w.slat.flags[w.mems[0].guest_pfn])  # creation's map has run
            if unmap:
                rt.check(not (state["unmapping"] and r.listed), "held before the list removal")
            else:
                rt.check(not (mapped and not r.listed), "held before the list insert")

        rt.spawn("vmm", vmm())
        rt.spawn("peek", peek())

    return build


@pytest.mark.parametrize(("op", "unmap"), [("hlist_add_head", False), ("hlist_del", True)])
def test_list_operations_under_the_partition_lock_are_scheduling_points(
    op: str, unmap: bool
) -> None:
    build = _list_world(unmap)
    assert len(_found(build)) == 1
    assert _found(_without_point(build, op)) == frozenset()
