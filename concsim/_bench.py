"""``concsim bench``: the engine's speed against the bare coroutine-driving floor.

Both sides run the same synthetic workload (``tasks`` coroutines, each awaiting a scheduling
point ``steps_per_task`` times with trivial work in between) and pick the next task with a
seeded random draw at every step.  The *floor* is the least any controlled scheduler can
do: a loop that draws an index and calls ``coro.send``.  The *engine* is the real thing
(candidates, choice recording, step limit, failure handling), with tracing off as in a
stress campaign.  Figures are medians over ``repeats`` runs, and the ratio is taken within
the same process so machine noise mostly cancels.
"""

from __future__ import annotations

import random
import statistics
import time
import types
from collections.abc import Generator
from typing import Any

from concsim.engine import Runtime
from concsim.strategies import RandomWalk

_TOKEN = object()


@types.coroutine
def _bare_point() -> Generator[object, None, None]:
    yield _TOKEN


def _floor_once(tasks: int, steps_per_task: int, seed: int) -> tuple[int, float]:
    shared = [0]

    async def worker() -> None:
        for _ in range(steps_per_task):
            shared[0] += 1
            await _bare_point()

    live = [worker() for _ in range(tasks)]
    rnd = random.Random(seed).random
    steps = 0
    t0 = time.perf_counter()
    while live:
        i = int(rnd() * len(live))
        try:
            live[i].send(None)
        except StopIteration:
            del live[i]
        steps += 1
    return steps, time.perf_counter() - t0


def _engine_once(tasks: int, steps_per_task: int, seed: int) -> tuple[int, float]:
    rt = Runtime(RandomWalk(seed), max_steps=10**12, trace=False)
    shared = [0]

    async def worker() -> None:
        point = rt.point
        for _ in range(steps_per_task):
            shared[0] += 1
            await point("inc", "shared")

    for i in range(tasks):
        rt.spawn(f"t{i}", worker())
    t0 = time.perf_counter()
    failure = rt.run()
    dt = time.perf_counter() - t0
    assert failure is None, failure
    return rt.step, dt


def bench_engine(
    *, tasks: int = 4, steps: int = 200_000, repeats: int = 3, seed: int = 1
) -> dict[str, Any]:
    per_task = max(1, steps // tasks)
    floor_rates = []
    engine_rates = []
    for r in range(repeats):
        # Interleave the two so that a slow patch of the machine hits both alike.
        n, dt = _floor_once(tasks, per_task, seed + r)
        floor_rates.append(n / dt)
        n, dt = _engine_once(tasks, per_task, seed + r)
        engine_rates.append(n / dt)
    floor = statistics.median(floor_rates)
    engine = statistics.median(engine_rates)
    return {
        "benchmark": "engine",
        "tasks": tasks,
        "steps": per_task * tasks,
        "repeats": repeats,
        "engine_steps_per_s": round(engine),
        "floor_steps_per_s": round(floor),
        "ratio": round(engine / floor, 3),
    }
