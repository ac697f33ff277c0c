"""The engine's example scenarios: a shared counter and two mutexes taken in opposite orders.

They exercise the engine alone (no memory-management model) and stay as its documentation:
``concsim run --scenario counter --variant racy`` shows a lost update,
``concsim run --scenario abba --variant abba`` a lock-order deadlock.
"""

from __future__ import annotations

from typing import Any

from concsim.engine import Runtime
from concsim.kernel import Mutex
from concsim.scenarios._registry import Param, ParamValue, Scenario, register


def _counter_variants() -> dict[str, Any]:
    return {"locked": "locked", "racy": "racy"}


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
                lock.unlock()
            rt.count("increments")

    for i in range(tasks):
        rt.spawn(f"inc{i}", incrementer())

    def final(rt: Runtime) -> None:
        rt.check(
            state["counter"] == tasks * increments,
            f"lost update: counter is {state['counter']}, expected {tasks * increments}",
            counter=state["counter"],
        )

    rt.add_final_hook(final)


def _abba_variants() -> dict[str, Any]:
    return {"abba": "abba", "ordered": "ordered"}


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
            second.unlock()
            first.unlock()
            rt.count("rounds")

    rt.spawn("t_ab", worker(a, b))
    if variant == "abba":
        rt.spawn("t_ba", worker(b, a))
    else:
        rt.spawn("t_ab2", worker(a, b))


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
