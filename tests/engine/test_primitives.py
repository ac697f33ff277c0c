"""Every kernel-style primitive, both ways: correct use is clean, misuse is caught."""

from __future__ import annotations

from concsim.engine import Runtime
from concsim.kernel import (
    Completion,
    Mutex,
    RWSem,
    SpinLock,
    WaitQueue,
    cond_resched,
    nonblock_context,
)

from .helpers import failures_over_seeds, run_world

SEEDS = range(200)


# ---------------------------------------------------------------- mutex


def _mutex_exclusion(rt: Runtime) -> None:
    m = Mutex(rt, "m")
    inside = [0]

    async def t() -> None:
        for _ in range(3):
            await m.lock()
            inside[0] += 1
            rt.check(inside[0] == 1, "two tasks inside the mutex")
            await rt.point("work", "shared")
            inside[0] -= 1
            await m.unlock()

    for i in range(3):
        rt.spawn(f"t{i}", t())


def test_mutex_gives_mutual_exclusion() -> None:
    assert failures_over_seeds(_mutex_exclusion, SEEDS) == []


def test_without_the_mutex_the_same_check_fails() -> None:
    def racy(rt: Runtime) -> None:
        inside = [0]

        async def t() -> None:
            inside[0] += 1
            rt.check(inside[0] == 1, "two tasks inside")
            await rt.point("work", "shared")
            inside[0] -= 1

        for i in range(3):
            rt.spawn(f"t{i}", t())

    fails = failures_over_seeds(racy, SEEDS)
    assert fails
    assert all(f.kind == "assertion" for f in fails)


def test_mutex_unlock_by_non_owner() -> None:
    def build(rt: Runtime) -> None:
        m = Mutex(rt, "m")

        async def owner() -> None:
            await m.lock()
            await rt.point("work", "x")
            await rt.point("work", "x")
            await m.unlock()

        async def thief() -> None:
            await rt.point("work", "x")
            await m.unlock()

        rt.spawn("owner", owner())
        rt.spawn("thief", thief())

    fails = failures_over_seeds(build, range(50))
    assert fails
    assert {f.kind for f in fails} == {"lock-misuse"}
    assert any("which does not own it (owner: owner)" in f.message for f in fails)


def test_mutex_recursive_lock() -> None:
    def build(rt: Runtime) -> None:
        m = Mutex(rt, "m")

        async def t() -> None:
            await m.lock()
            await m.lock()

        rt.spawn("t", t())

    _, f = run_world(build)
    assert f is not None
    assert f.kind == "lock-misuse"
    assert "already holds it" in f.message


def test_mutex_uninitialised_then_initialised() -> None:
    def build(init: bool):
        def b(rt: Runtime) -> None:
            m = Mutex(rt, "mreg_mutex", initialized=False)

            async def t() -> None:
                if init:
                    await m.mutex_init()
                await m.lock()
                await m.unlock()

            rt.spawn("t", t())

        return b

    _, f = run_world(build(False))
    assert f is not None
    assert f.kind == "lock-misuse"
    assert "before mutex_init" in f.message
    assert run_world(build(True))[1] is None


def test_mutex_trylock_never_blocks() -> None:
    results: list[bool] = []

    def build(rt: Runtime) -> None:
        m = Mutex(rt, "m")

        async def holder() -> None:
            await m.lock()
            await rt.point("work", "x")
            await m.unlock()

        async def trier() -> None:
            ok = await m.trylock()
            results.append(ok)
            if ok:
                await m.unlock()

        rt.spawn("holder", holder())
        rt.spawn("trier", trier())

    assert failures_over_seeds(build, range(60)) == []
    assert True in results
    assert False in results


def test_abba_deadlock_names_tasks_and_locks() -> None:
    def build(rt: Runtime) -> None:
        a = Mutex(rt, "lock_a")
        b = Mutex(rt, "lock_b")

        async def w(x: Mutex, y: Mutex) -> None:
            await x.lock()
            await y.lock()
            await y.unlock()
            await x.unlock()

        rt.spawn("t1", w(a, b))
        rt.spawn("t2", w(b, a))

    fails = failures_over_seeds(build, range(100))
    assert fails
    f = fails[0]
    assert f.kind == "deadlock"
    assert set(f.details["cycle"]) == {"t1", "t2"}
    assert set(f.details["locks"]) == {"lock_a", "lock_b"}
    assert "'t1'" in f.message
    assert "lock_b" in f.message


def test_lock_held_by_exited_task_is_reported_when_someone_waits() -> None:
    def build(rt: Runtime) -> None:
        m = Mutex(rt, "m")

        async def leaker() -> None:
            await m.lock()

        async def waiter() -> None:
            await rt.point("work", "x")
            await rt.point("work", "x")
            await m.lock()

        rt.spawn("leaker", leaker())
        rt.spawn("waiter", waiter())

    rt = Runtime(__import__("concsim").strategies.Replay([], strict=False))
    build(rt)
    f = rt.run()
    assert f is not None
    assert f.kind == "deadlock"
    assert "held by 'leaker' (exited)" in f.message


# ---------------------------------------------------------------- spinlock and atomic context


def test_sleeping_under_a_spinlock() -> None:
    def build(rt: Runtime) -> None:
        s = SpinLock(rt, "pt_mem_regions_lock")
        m = Mutex(rt, "m")

        async def t() -> None:
            await s.lock()
            await m.lock()

        rt.spawn("t", t())

    _, f = run_world(build)
    assert f is not None
    assert f.kind == "sleep-in-atomic"
    assert "pt_mem_regions_lock" in f.message


def test_spinlock_exclusion_and_no_false_alarm() -> None:
    def build(rt: Runtime) -> None:
        s = SpinLock(rt, "s")
        inside = [0]

        async def t() -> None:
            await s.lock()
            inside[0] += 1
            rt.check(inside[0] == 1, "two inside spinlock")
            await rt.point("work", "x")
            inside[0] -= 1
            await s.unlock()
            await cond_resched(rt)

        for i in range(3):
            rt.spawn(f"t{i}", t())

    assert failures_over_seeds(build, range(100)) == []


def test_cond_resched_in_non_blockable_context() -> None:
    def build(rt: Runtime) -> None:
        async def t() -> None:
            with nonblock_context(rt):
                await cond_resched(rt)

        rt.spawn("oom_reaper", t())

    _, f = run_world(build)
    assert f is not None
    assert f.kind == "sleep-in-atomic"
    assert "non-blockable" in f.message


def test_trylock_is_allowed_in_non_blockable_context() -> None:
    def build(rt: Runtime) -> None:
        m = Mutex(rt, "m")

        async def t() -> None:
            with nonblock_context(rt):
                if await m.trylock():
                    await m.unlock()

        rt.spawn("oom_reaper", t())

    assert run_world(build)[1] is None


# ---------------------------------------------------------------- rwsem


def test_rwsem_readers_share_writers_exclude() -> None:
    concurrent_readers: list[int] = []

    def build(rt: Runtime) -> None:
        sem = RWSem(rt, "mmap_lock")
        state = {"readers": 0, "writer": 0}

        async def reader() -> None:
            await sem.down_read()
            state["readers"] += 1
            rt.check(state["writer"] == 0, "reader inside with a writer")
            concurrent_readers.append(state["readers"])
            await rt.point("read", "pt", read=True)
            state["readers"] -= 1
            await sem.up_read()

        async def writer() -> None:
            await sem.down_write()
            state["writer"] += 1
            rt.check(state["readers"] == 0 and state["writer"] == 1, "writer not exclusive")
            await rt.point("write", "pt")
            state["writer"] -= 1
            await sem.up_write()

        rt.spawn("r1", reader())
        rt.spawn("r2", reader())
        rt.spawn("w", writer())

    assert failures_over_seeds(build, range(200)) == []
    assert max(concurrent_readers) == 2


def test_rwsem_recursive_read_with_waiting_writer_deadlocks() -> None:
    def build(rt: Runtime) -> None:
        sem = RWSem(rt, "mmap_lock")

        async def reader() -> None:
            await sem.down_read()
            await rt.point("work", "x")
            await rt.point("work", "x")
            await sem.down_read()
            await sem.up_read()
            await sem.up_read()

        async def writer() -> None:
            await sem.down_write()
            await sem.up_write()

        rt.spawn("reader", reader())
        rt.spawn("writer", writer())

    fails = failures_over_seeds(build, range(100))
    assert fails
    assert {f.kind for f in fails} == {"deadlock"}


def test_rwsem_unlock_without_holding() -> None:
    def build(rt: Runtime) -> None:
        sem = RWSem(rt, "mmap_lock")

        async def t() -> None:
            await sem.up_read()

        rt.spawn("t", t())

    _, f = run_world(build)
    assert f is not None
    assert f.kind == "lock-misuse"


def test_rwsem_trylock_and_downgrade() -> None:
    got: list[bool] = []

    def build(rt: Runtime) -> None:
        sem = RWSem(rt, "mmap_lock")

        async def writer() -> None:
            await sem.down_write()
            await rt.point("work", "x")
            await sem.downgrade_write()
            await rt.point("work", "x")
            await sem.up_read()

        async def trier() -> None:
            ok = await sem.down_read_trylock()
            got.append(ok)
            if ok:
                await sem.up_read()

        rt.spawn("w", writer())
        rt.spawn("t", trier())

    assert failures_over_seeds(build, range(80)) == []
    assert True in got
    assert False in got


# ---------------------------------------------------------------- wait queues and completions


def test_wait_event_wakes_when_condition_becomes_true() -> None:
    def build(rt: Runtime) -> None:
        wq = WaitQueue(rt, "subs.wq")
        seq = [1]

        async def waiter() -> None:
            await wq.wait_event(lambda: seq[0] % 2 == 0)
            rt.check(seq[0] % 2 == 0, "woke with odd seq")

        async def ender() -> None:
            await rt.point("seq_inc", "subs.seq")
            seq[0] += 1
            await wq.wake_up_all()

        rt.spawn("waiter", waiter())
        rt.spawn("ender", ender())

    assert failures_over_seeds(build, range(100)) == []


def test_lost_wakeup_is_reported() -> None:
    def build(rt: Runtime) -> None:
        wq = WaitQueue(rt, "subs.wq")
        seq = [1]

        async def waiter() -> None:
            await wq.wait_event(lambda: seq[0] % 2 == 0)

        async def ender() -> None:
            await rt.point("seq_inc", "subs.seq")
            seq[0] += 1  # forgets wake_up_all

        rt.spawn("waiter", waiter())
        rt.spawn("ender", ender())

    fails = failures_over_seeds(build, range(50))
    assert fails
    assert all(f.kind == "deadlock" and "nothing will wake it" in f.message for f in fails)


def test_completion() -> None:
    order: list[str] = []

    def build(rt: Runtime) -> None:
        c = Completion(rt, "done")

        async def waiter() -> None:
            await c.wait_for_completion()
            order.append("woke")

        async def doer() -> None:
            await rt.point("work", "x")
            order.append("complete")
            await c.complete()

        rt.spawn("waiter", waiter())
        rt.spawn("doer", doer())

    for s in range(30):
        order.clear()
        assert run_world(build, s)[1] is None
        assert order == ["complete", "woke"]


def test_wait_for_completion_never_completed_deadlocks() -> None:
    def build(rt: Runtime) -> None:
        c = Completion(rt, "never")

        async def waiter() -> None:
            await c.wait_for_completion()

        rt.spawn("waiter", waiter())

    _, f = run_world(build)
    assert f is not None
    assert f.kind == "deadlock"
