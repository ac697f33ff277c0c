"""Issue 14, item 6: tests of your own.  The primitives of an ad-hoc world are public
(``concsim.sync``), a running task can spawn another, and ``join`` waits for it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import concsim
from concsim.engine import Runtime
from concsim.strategies import RandomWalk
from concsim.sync import Completion, Mutex, RWSem, SpinLock, WaitQueue, join, spawn


def _counter(locked: bool) -> Callable[[Runtime], None]:
    def build(rt: Runtime) -> None:
        lock = Mutex(rt, "lock")
        box = {"n": 0}

        async def inc() -> None:
            if locked:
                await lock.lock()
            await rt.point("read", "n", read=True)
            v = box["n"]
            await rt.point("write", "n")
            box["n"] = v + 1
            if locked:
                await lock.unlock()

        async def parent() -> None:
            kids = [spawn(rt, f"inc{i}", inc()) for i in range(2)]
            for k in kids:
                await join(rt, k)
            rt.check(box["n"] == 2, f"lost update: n={box['n']}")

        rt.spawn("parent", parent())

    return build


def test_spawn_from_a_running_task_and_join_both_ways() -> None:
    ok = concsim.check(_counter(locked=True), schedules=200)
    assert ok.ok, ok.report()
    assert ok.schedules == 200
    bad = concsim.check(_counter(locked=False), schedules=200)
    assert not bad.ok
    assert bad.failing is not None
    assert bad.failing.failure is not None
    assert "lost update" in bad.failing.failure.message
    assert bad.failure is bad.failing.failure  # named as on a RunResult
    assert ok.failure is None


def test_join_waits_for_the_child() -> None:
    def build(rt: Runtime) -> None:
        order: list[str] = []

        async def child() -> None:
            for _ in range(3):
                await rt.point("work", "child")
            order.append("child")

        async def parent() -> None:
            t = rt.spawn("child", child())
            await rt.join(t)
            order.append("parent")
            rt.check(order == ["child", "parent"], f"join returned early: {order}")

        rt.spawn("parent", parent())

    for seed in range(50):
        rt = Runtime(RandomWalk(seed), trace=True)
        build(rt)
        assert rt.run() is None
        assert next(e for e in rt.trace if e[2] == "spawn")[3] == "child"


def test_two_tasks_joining_each_other_deadlock() -> None:
    def build(rt: Runtime) -> None:
        tasks = {}

        async def a() -> None:
            await rt.point("start", "a")
            await rt.join(tasks["b"])

        async def b() -> None:
            await rt.point("start", "b")
            await rt.join(tasks["a"])

        tasks["a"] = rt.spawn("a", a())
        tasks["b"] = rt.spawn("b", b())

    res = concsim.check(build, schedules=20)
    assert res.failing is not None
    assert res.failing.failure is not None
    assert res.failing.failure.kind == "deadlock"


def test_spawn_after_the_run_is_refused() -> None:
    rt = Runtime(RandomWalk(0))

    async def nop() -> None:
        return None

    rt.spawn("t", nop())
    rt.run()
    with pytest.raises(concsim.UsageError, match="after the run ended"):
        rt.spawn("u", nop())


def test_the_sync_primitives_are_the_kernel_models() -> None:
    from concsim import kernel

    assert (Mutex, SpinLock, RWSem, WaitQueue, Completion) == (
        kernel.Mutex,
        kernel.SpinLock,
        kernel.RWSem,
        kernel.WaitQueue,
        kernel.Completion,
    )
