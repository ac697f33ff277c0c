"""The lock-order graph (concsim/checks/_lockdep.py): cycles are reported on schedules
that do not deadlock; consistent orders, trylocks and non-blockable paths are not."""

from __future__ import annotations

from collections import Counter

import pytest

import concsim
from concsim.checks import LockDep
from concsim.engine import Runtime
from concsim.kernel import Completion, Mutex
from concsim.kernel._mm import MM
from concsim.kernel._mmu_notifier import (
    MMU_NOTIFY_CLEAR,
    MMUIntervalNotifier,
    MMUNotifierRange,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
)
from concsim.kernel._pagealloc import PageAllocator
from concsim.strategies import RandomWalk

SEEDS = range(20)


def _run(build, seed: int):  # type: ignore[no-untyped-def]
    rt = Runtime(RandomWalk(seed), max_steps=10_000)
    rt.ext["lockdep"] = LockDep(rt)
    build(rt)
    return rt, rt.run()


# ---------------------------------------------------------------- plain locks


def _ab_then_ba(rt: Runtime) -> None:
    a = Mutex(rt, "a0", "A")
    b = Mutex(rt, "b0", "B")
    first_done = Completion(rt, "first_done")

    async def t1() -> None:
        await a.lock()
        await b.lock()
        await b.unlock()
        await a.unlock()
        await first_done.complete_all()

    async def t2() -> None:
        await first_done.wait_for_completion()  # never concurrent: no real deadlock
        await b.lock()
        await a.lock()
        await a.unlock()
        await b.unlock()

    rt.spawn("t1", t1())
    rt.spawn("t2", t2())


@pytest.mark.parametrize("seed", SEEDS)
def test_ab_ba_on_a_schedule_that_cannot_deadlock_is_reported(seed: int) -> None:
    _rt, f = _run(_ab_then_ba, seed)
    assert f is not None
    assert (f.kind, f.invariant) == ("lock-order", "S4")
    assert f.task == "t2"
    assert f.details["cycle"] == ["B", "A", "B"]
    assert "first A -> B by task 't1'" in f.message


def test_lock_instances_of_one_class_are_one_node() -> None:
    """a0 -> b0 by one task, b1 -> a1 by another: still A/B inversion (lockdep classes)."""

    def build(rt: Runtime) -> None:
        a0, a1 = Mutex(rt, "a0", "A"), Mutex(rt, "a1", "A")
        b0, b1 = Mutex(rt, "b0", "B"), Mutex(rt, "b1", "B")
        done = Completion(rt, "done")

        async def t1() -> None:
            await a0.lock()
            await b0.lock()
            await b0.unlock()
            await a0.unlock()
            await done.complete_all()

        async def t2() -> None:
            await done.wait_for_completion()
            await b1.lock()
            await a1.lock()

        rt.spawn("t1", t1())
        rt.spawn("t2", t2())

    _, f = _run(build, 0)
    assert f is not None
    assert (f.kind, f.invariant) == ("lock-order", "S4")


@pytest.mark.parametrize("seed", SEEDS)
def test_consistent_order_is_silent(seed: int) -> None:
    def build(rt: Runtime) -> None:
        a = Mutex(rt, "a0", "A")
        b = Mutex(rt, "b0", "B")
        c = Mutex(rt, "c0", "C")

        async def t(take_c: bool) -> None:
            for _ in range(2):
                await a.lock()
                await b.lock()
                if take_c:
                    await c.lock()
                    await c.unlock()
                await b.unlock()
                await a.unlock()
                # B alone, then C under B: still consistent with A -> B -> C.
                await b.lock()
                await c.lock()
                await c.unlock()
                await b.unlock()

        rt.spawn("t1", t(True))
        rt.spawn("t2", t(False))

    rt, f = _run(build, seed)
    assert f is None, f
    graph = rt.ext["lockdep"].after
    assert set(graph["A"]) == {"B", "C"}
    assert set(graph["B"]) == {"C"}


def test_trylock_adds_no_edge() -> None:
    def build(rt: Runtime) -> None:
        a = Mutex(rt, "a0", "A")
        b = Mutex(rt, "b0", "B")
        done = Completion(rt, "done")

        async def t1() -> None:
            await a.lock()
            await b.lock()
            await b.unlock()
            await a.unlock()
            await done.complete_all()

        async def t2() -> None:
            await done.wait_for_completion()
            await b.lock()
            assert await a.trylock()  # B -> A by trylock: cannot deadlock
            await a.unlock()
            await b.unlock()

        rt.spawn("t1", t1())
        rt.spawn("t2", t2())

    rt, f = _run(build, 0)
    assert f is None, f
    assert "B" not in rt.ext["lockdep"].after


# ---------------------------------------------------------------- the notifier pseudo-lock


def _notifier_world(rt: Runtime, second: str, *, blockable: bool = True) -> None:
    """Task ``inval`` runs one invalidation whose callback takes the region's mreg_mutex;
    then task ``driver`` does ``second``."""
    pages = PageAllocator(rt, 64)
    mm = MM(rt, 4096, pages)
    mreg_mutex = Mutex(rt, "region0.mreg_mutex", "mreg_mutex")
    mni = MMUIntervalNotifier("region0.mreg_mni")
    inserted = Completion(rt, "inserted")
    done = Completion(rt, "inval_done")

    async def callback(m: MMUIntervalNotifier, r: MMUNotifierRange, cur_seq: int) -> bool:
        if r.blockable:
            await mreg_mutex.lock()
        elif not await mreg_mutex.trylock():
            return False
        await mreg_mutex.unlock()
        return True

    async def driver() -> None:
        await mmu_interval_notifier_insert(mni, mm, 100, 10, callback)
        await inserted.complete_all()
        await done.wait_for_completion()
        if second == "read_begin_under_mutex":
            await mreg_mutex.lock()
            await mmu_interval_read_begin(mni)
            await mreg_mutex.unlock()
        elif second == "remove_under_mutex":
            await mreg_mutex.lock()
            await mmu_interval_notifier_remove(mni)
            await mreg_mutex.unlock()
        elif second == "read_begin_then_mutex":  # B3's order
            await mmu_interval_read_begin(mni)
            await mm.mmap_lock.down_read()
            await mm.mmap_lock.up_read()
            await mreg_mutex.lock()
            await mreg_mutex.unlock()
            await mmu_interval_notifier_remove(mni)
        else:  # pragma: no cover
            raise AssertionError(second)

    async def inval() -> None:
        await inserted.wait_for_completion()
        r = MMUNotifierRange(mm, 100, 101, MMU_NOTIFY_CLEAR, blockable)
        if await mmu_notifier_invalidate_range_start(r) == 0:
            await mmu_notifier_invalidate_range_end(r)
        await done.complete_all()

    rt.spawn("driver", driver())
    rt.spawn("inval", inval())


@pytest.mark.parametrize("second", ["read_begin_under_mutex", "remove_under_mutex"])
@pytest.mark.parametrize("seed", range(5))
def test_read_begin_or_remove_under_mreg_mutex_is_reported(second: str, seed: int) -> None:
    """Nothing waits here (the invalidation is over), yet the order is a deadlock in waiting:
    read_begin/remove may wait for a round whose callback waits for mreg_mutex."""
    _, f = _run(lambda rt: _notifier_world(rt, second), seed)
    assert f is not None
    assert (f.kind, f.invariant) == ("lock-order", "S4")
    assert f.details["cycle"] == [
        "mreg_mutex",
        "mmu_notifier_invalidate_range_start",
        "mreg_mutex",
    ]


@pytest.mark.parametrize("seed", range(5))
def test_the_b3_order_is_silent(seed: int) -> None:
    _, f = _run(lambda rt: _notifier_world(rt, "read_begin_then_mutex"), seed)
    assert f is None, f


@pytest.mark.parametrize("seed", range(5))
def test_a_non_blockable_invalidation_primes_no_edge(seed: int) -> None:
    """The OOM reaper's path: its callback only trylocks mreg_mutex, which adds no
    start map -> mreg_mutex edge, so the later read_begin under the mutex closes no cycle."""
    _, f = _run(lambda rt: _notifier_world(rt, "read_begin_under_mutex", blockable=False), seed)
    assert f is None, f


# ---------------------------------------------------------------- fs_reclaim, end to end

RECLAIM_SEEDS = range(60)


def test_direct_reclaim_lets_lockdep_report_the_fs_reclaim_cycle() -> None:
    kinds: Counter[tuple[str, str | None]] = Counter()
    cycles = []
    for seed in RECLAIM_SEEDS:
        res = concsim.run(
            "default",
            variant="after-patch",
            seed=seed,
            params={"direct_reclaim": True},
            trace=False,
        )
        if res.failure is not None:
            kinds[(res.failure.kind, res.failure.invariant)] += 1
            if res.failure.kind == "lock-order":
                cycles.append(res.failure.details["cycle"])
    assert kinds[("lock-order", "S4")] > 0, kinds
    assert set(kinds) <= {("lock-order", "S4"), ("lock-misuse", None)}, kinds
    # Every cycle is the S4 hazard: mreg_mutex on one side, reclaim's invalidation (the
    # start map or the callback's mreg_mutex under fs_reclaim) on the other; some close
    # through fs_reclaim itself.
    assert all("mreg_mutex" in c for c in cycles)
    assert all({"fs_reclaim", "mmu_notifier_invalidate_range_start"} & set(c) for c in cycles)
    assert any("fs_reclaim" in c for c in cycles)


def test_without_direct_reclaim_the_same_seeds_are_clean() -> None:
    for seed in RECLAIM_SEEDS:
        res = concsim.run(
            "default",
            variant="after-patch",
            seed=seed,
            params={"direct_reclaim": False},
            trace=False,
        )
        assert res.ok, (seed, res.failure)


# ---------------------------------------------------------------- fs_reclaim annotation


def _alloc_under_mreg_mutex(rt: Runtime, *, reclaim: bool) -> None:
    """A blockable invalidation's callback takes mreg_mutex (start map -> mreg_mutex); then
    the driver allocates with GFP_KERNEL under mreg_mutex (the deposit).  Every choice is 0
    in these runs: direct reclaim never actually happens."""
    from concsim.kernel._alloc import KernelAllocator

    async def no_reclaim() -> None:  # pragma: no cover - the choice is never taken
        raise AssertionError("direct reclaim ran")

    kalloc = KernelAllocator(rt, direct_reclaim=no_reclaim if reclaim else None)
    pages = PageAllocator(rt, 64)
    mm = MM(rt, 4096, pages)
    mreg_mutex = Mutex(rt, "region0.mreg_mutex", "mreg_mutex")
    mni = MMUIntervalNotifier("region0.mreg_mni")

    async def callback(m: MMUIntervalNotifier, r: MMUNotifierRange, cur_seq: int) -> bool:
        await mreg_mutex.lock()
        await mreg_mutex.unlock()
        return True

    async def driver() -> None:
        await mmu_interval_notifier_insert(mni, mm, 100, 10, callback)
        r = MMUNotifierRange(mm, 100, 101, MMU_NOTIFY_CLEAR)
        await mmu_notifier_invalidate_range_start(r)
        await mmu_notifier_invalidate_range_end(r)
        await mreg_mutex.lock()
        assert await kalloc.gfp_kernel("hv_call_deposit_pages")
        await mreg_mutex.unlock()

    rt.spawn("driver", driver())


def test_gfp_kernel_under_mreg_mutex_is_reported_without_reclaim_happening() -> None:
    """fs_reclaim_acquire() "takes" the notifier start map (mm: Track mmu notifiers in
    fs_reclaim_acquire/release), so lockdep sees the S4 hazard from the allocation alone,
    on every schedule that has both orders, not only when reclaim really runs."""
    from concsim.strategies import Replay

    rt = Runtime(Replay([], strict=False))
    rt.ext["lockdep"] = LockDep(rt)
    _alloc_under_mreg_mutex(rt, reclaim=True)
    f = rt.run()
    assert f is not None
    assert (f.kind, f.invariant) == ("lock-order", "S4")
    assert "direct_reclaims" not in rt.stats
    assert "mreg_mutex" in f.details["cycle"]
    assert "mmu_notifier_invalidate_range_start" in f.details["cycle"]


def test_gfp_kernel_under_mreg_mutex_is_silent_when_reclaim_is_not_modelled() -> None:
    from concsim.strategies import Replay

    rt = Runtime(Replay([], strict=False))
    rt.ext["lockdep"] = LockDep(rt)
    _alloc_under_mreg_mutex(rt, reclaim=False)
    assert rt.run() is None
