"""The engine's example scenarios: a shared counter and two mutexes taken in opposite orders.

They exercise the engine alone (no memory-management model) and stay as its documentation:
``concsim run --scenario counter --variant racy`` shows a lost update,
``concsim run --scenario abba --variant abba`` a lock-order deadlock,
``concsim explore --scenario independent --strategy dfs`` what partial-order reduction saves
(tasks that mostly touch objects of their own), ``concsim explore --scenario spin --strategy
pct`` PCT's fair fallback (a correct busy-wait is not a livelock; a real one still is).
"""

from __future__ import annotations

from typing import Any

from concsim.checks._catalogue import LOST_UPDATE
from concsim.engine import Runtime
from concsim.kernel import Mutex
from concsim.scenarios._registry import Param, ParamValue, Scenario, register


class ExampleVariant(str):
    """An example scenario's variant: its name (compared as a string) and a summary."""

    summary: str

    def __new__(cls, name: str, summary: str = "") -> ExampleVariant:
        v = super().__new__(cls, name)
        v.summary = summary
        return v


def _variants(**summaries: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, summary in summaries.items():
        name = key.replace("_", "-")
        out[name] = ExampleVariant(name, summary)
    return out


def _counter_variants() -> dict[str, Any]:
    return _variants(
        locked="each increment under counter_lock",
        racy="load and store without the lock: updates get lost",
    )


def _build_counter(rt: Runtime, params: dict[str, ParamValue], variant: Any) -> None:
    tasks = int(params["tasks"])
    increments = int(params["increments"])
    state = {"counter": 0}
    lock = Mutex(rt, "counter_lock")

    async def incrementer() -> None:
        for _ in range(increments):
            if variant == "locked":
                await lock.lock()
            await rt.point("load", "counter", read=True)
            v = state["counter"]
            await rt.point("store", "counter", v + 1)
            state["counter"] = v + 1
            if variant == "locked":
                await lock.unlock()
            rt.count("increments")

    for i in range(tasks):
        rt.spawn(f"inc{i}", incrementer())

    def final(rt: Runtime) -> None:
        rt.check(
            state["counter"] == tasks * increments,
            f"lost update: counter is {state['counter']}, expected {tasks * increments}",
            invariant=LOST_UPDATE,
            counter=state["counter"],
        )

    rt.add_final_hook(final)


def _abba_variants() -> dict[str, Any]:
    return _variants(
        abba="the two tasks take lock_a and lock_b in opposite orders: deadlock",
        ordered="both take lock_a first: no deadlock",
    )


def _build_abba(rt: Runtime, params: dict[str, ParamValue], variant: Any) -> None:
    a = Mutex(rt, "lock_a")
    b = Mutex(rt, "lock_b")
    rounds = int(params["rounds"])

    async def worker(first: Mutex, second: Mutex) -> None:
        for _ in range(rounds):
            await first.lock()
            await rt.point("work", "shared")
            await second.lock()
            await rt.point("work", "shared")
            await second.unlock()
            await first.unlock()
            rt.count("rounds")

    rt.spawn("t_ab", worker(a, b))
    if variant == "abba":
        rt.spawn("t_ba", worker(b, a))
    else:
        rt.spawn("t_ab2", worker(a, b))


def _independent_variants() -> dict[str, Any]:
    return _variants(
        disjoint="every task touches only its own objects",
        racy_tail="independent work, then a racy update of one shared object",
    )


def _build_independent(rt: Runtime, params: dict[str, ParamValue], variant: Any) -> None:
    """Each task updates its own object ``steps`` times; in 'racy-tail' it then adds one to
    a shared total without a lock (a lost update when two tails interleave)."""
    tasks = int(params["tasks"])
    steps = int(params["steps"])
    own = [0] * tasks
    total = {"v": 0}

    async def worker(i: int) -> None:
        for _ in range(steps):
            await rt.point("store", f"obj{i}")
            own[i] += 1
        if variant == "racy-tail":
            await rt.point("load", "total", read=True)
            v = total["v"]
            await rt.point("store", "total")
            total["v"] = v + 1

    for i in range(tasks):
        rt.spawn(f"w{i}", worker(i))

    def final(rt: Runtime) -> None:
        rt.check(all(v == steps for v in own), f"own objects {own}, expected {steps} each")
        if variant == "racy-tail":
            rt.check(
                total["v"] == tasks,
                f"lost update: total is {total['v']}, expected {tasks}",
                total=total["v"],
            )

    rt.add_final_hook(final)


def _spin_variants() -> dict[str, Any]:
    return _variants(
        busy_wait="a task spins until another sets a flag: correct, it always finishes",
        livelock="a task spins on a flag nobody sets, after the others have finished",
    )


def _build_spin(rt: Runtime, params: dict[str, ParamValue], variant: Any) -> None:
    """``waiter`` polls ``flag`` until it is set (no sleeping: a busy-wait); ``setter``
    works ``work`` steps, then sets it ('busy-wait') or does not ('livelock'); ``worker``
    does ``work`` steps of its own.  Under PCT a high-priority waiter starves the setter
    until the fair fallback lets it run; the livelock reaches the step limit anyway."""
    work = int(params["work"])
    state = {"flag": False}

    async def waiter() -> None:
        while True:
            await rt.point("poll", "flag", read=True)
            if state["flag"]:
                return

    async def setter() -> None:
        for _ in range(work):
            await rt.point("work", "setter_data")
        if variant == "busy-wait":
            await rt.point("set", "flag")
            state["flag"] = True

    async def worker() -> None:
        for _ in range(work):
            await rt.point("work", "worker_data")

    rt.spawn("waiter", waiter())
    rt.spawn("setter", setter())
    rt.spawn("worker", worker())


register(
    Scenario(
        name="counter",
        summary="tasks increment a shared counter; 'racy' without the mutex loses updates",
        build=_build_counter,
        params=(
            Param("tasks", int, 2, "incrementing tasks", minimum=1, maximum=64),
            Param("increments", int, 2, "increments per task", minimum=1),
        ),
        variants=_counter_variants,
        default_variant="locked",
    )
)

register(
    Scenario(
        name="abba",
        summary="two tasks take two mutexes; 'abba' in opposite orders (deadlock), 'ordered' not",
        build=_build_abba,
        params=(Param("rounds", int, 1, "lock rounds per task", minimum=1),),
        variants=_abba_variants,
        default_variant="abba",
    )
)

register(
    Scenario(
        name="independent",
        summary="tasks update objects of their own; 'racy-tail' then races on a shared total",
        build=_build_independent,
        params=(
            Param("tasks", int, 3, "tasks", minimum=1, maximum=16),
            Param("steps", int, 2, "updates of its own object per task", minimum=0),
        ),
        variants=_independent_variants,
        default_variant="disjoint",
    )
)

register(
    Scenario(
        name="spin",
        summary="a busy-wait: 'busy-wait' finishes (PCT's fair fallback), 'livelock' never does",
        build=_build_spin,
        params=(Param("work", int, 3, "steps of the setter and the worker", minimum=0),),
        variants=_spin_variants,
        default_variant="busy-wait",
        max_steps=20_000,
        pct_k=10,
    )
)
