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
from collections.abc import Callable, Generator
from typing import Any

from concsim.engine import Runtime
from concsim.strategies import RandomWalk

_TOKEN = object()


@types.coroutine
def _bare_point() -> Generator[object, None, None]:
    yield _TOKEN


def _floor_once(
    tasks: int, steps_per_task: int, seed: int, clock: Callable[[], float] = time.perf_counter
) -> tuple[int, float]:
    shared = [0]

    async def worker() -> None:
        for _ in range(steps_per_task):
            shared[0] += 1
            await _bare_point()

    live = [worker() for _ in range(tasks)]
    rnd = random.Random(seed).random
    steps = 0
    t0 = clock()
    while live:
        i = int(rnd() * len(live))
        try:
            live[i].send(None)
        except StopIteration:
            del live[i]
        steps += 1
    return steps, clock() - t0


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


def _region_once(variant: str, pages: int, invalidate: str) -> tuple[float, float, int]:
    """Create a fully populated region of ``pages`` pages, then invalidate all of it.

    Returns (create seconds, invalidate seconds, pages the SLAT grants after creation), in
    CPU seconds of this process (on a shared machine wall time mostly measures the
    neighbours).  The clock is read only around the two operations, never by the model.
    """
    from concsim.kernel import _mm_events as ev
    from concsim.runs import resolve_variant
    from concsim.scenarios import get_scenario
    from concsim.scenarios._mshv_world import MshvWorld
    from concsim.strategies import Replay

    scn = get_scenario("default")
    params = scn.resolve_params({"pages": pages, "populated": 1.0, "vcpus": 0, "events": ""})
    _, vcls = resolve_variant(scn, variant)
    rt = Runtime(Replay([], strict=False), max_steps=10**9, trace=False)
    world = MshvWorld(rt, params, vcls)
    times: list[float] = []
    granted = [0]

    async def vmm() -> None:
        mem = world.mems[0]
        t0 = time.process_time()
        ret = await world.driver.mshv_map_user_memory(world.partition, mem)
        times.append(time.process_time() - t0)
        assert ret == 0, ret
        granted[0] = int((world.slat.refs > 0).sum())
        t0 = time.process_time()
        if invalidate == "munmap":
            await ev.munmap(world.mm, mem.userspace_addr, mem.size)
        else:
            await ev.madvise_dontneed(world.mm, mem.userspace_addr, mem.size)
        times.append(time.process_time() - t0)

    rt.spawn("vmm", vmm())
    failure = rt.run()
    assert failure is None, failure
    return times[0], times[1], granted[0]


def bench_region(*, pages: int = 262_144, repeats: int = 3) -> dict[str, Any]:
    """1 GiB: after-patch creation (maps every populated page) and a full invalidation,
    against before-patch creation (one NO_ACCESS map) as the baseline, medians of CPU
    milliseconds."""
    rows: dict[str, list[float]] = {
        "after_create": [],
        "after_invalidate": [],
        "before_create": [],
        "before_invalidate": [],
    }
    granted = 0
    for _ in range(repeats):
        c, i, granted = _region_once("after-patch", pages, "madvise")
        rows["after_create"].append(c)
        rows["after_invalidate"].append(i)
        c, i, _ = _region_once("before-patch", pages, "madvise")
        rows["before_create"].append(c)
        rows["before_invalidate"].append(i)
    med = {k: statistics.median(v) for k, v in rows.items()}
    return {
        "benchmark": "region",
        "pages": pages,
        "repeats": repeats,
        "after_patch_create_ms": round(med["after_create"] * 1e3, 1),
        "after_patch_invalidate_ms": round(med["after_invalidate"] * 1e3, 1),
        "before_patch_create_ms": round(med["before_create"] * 1e3, 1),
        "before_patch_invalidate_ms": round(med["before_invalidate"] * 1e3, 1),
        "pages_mapped_at_creation": granted,
        "create_ratio_after_vs_before": round(med["after_create"] / med["before_create"], 2),
    }


def _model_once(
    scenario: str, params: dict[str, Any], schedules: int, seed: int
) -> tuple[int, int, float, int]:
    """Run ``schedules`` random-walk schedules of a scenario as a stress worker does (one
    process, :class:`concsim.runs.Runs` untraced, a fresh world per schedule).  Returns
    (schedules, steps, seconds, failures)."""
    from concsim.runs import RunConfig, Runs, resolve

    runs = Runs(resolve(RunConfig(scenario=scenario, params=params, seed=seed)))
    steps = 0
    failures = 0
    t0 = time.process_time()
    for _ in range(schedules):
        got = runs.next()
        assert got is not None  # a random walk never runs out of schedules
        res = got[1].result
        steps += res.steps
        failures += res.failure is not None
    return schedules, steps, time.process_time() - t0, failures


def bench_model(
    scenario: str = "default",
    params: dict[str, Any] | None = None,
    *,
    schedules: int = 300,
    repeats: int = 3,
    floor_steps: int = 200_000,
    seed: int = 0,
) -> dict[str, Any]:
    """The model's speed: schedules/s of a scenario's default variant (untraced, as in a
    stress campaign), its steps per schedule and steps/s, against the engine floor
    (:func:`bench_engine`'s bare loop) measured in the same run, interleaved round by
    round; medians over ``repeats`` rounds.  Both sides are timed in CPU seconds of this
    process (``time.process_time``): on a shared machine wall time mostly measures the
    neighbours, and a short floor run and a long model run would not meet them alike."""
    params = dict(params or {})
    sched_rates: list[float] = []
    step_rates: list[float] = []
    floor_rates: list[float] = []
    per_schedule = 0.0
    failures = 0
    for r in range(repeats):
        n, dt = _floor_once(4, floor_steps // 4, seed + r, time.process_time)
        floor_rates.append(n / dt)
        k, steps, dt, failures = _model_once(scenario, params, schedules, seed)
        sched_rates.append(k / dt)
        step_rates.append(steps / dt)
        per_schedule = steps / k
    floor = statistics.median(floor_rates)
    model_steps = statistics.median(step_rates)
    return {
        "benchmark": "model",
        "scenario": scenario,
        "params": params,
        "schedules": schedules,
        "repeats": repeats,
        "failures": failures,
        "schedules_per_s": round(statistics.median(sched_rates), 1),
        "steps_per_schedule": round(per_schedule, 1),
        "model_steps_per_s": round(model_steps),
        "floor_steps_per_s": round(floor),
        "ratio": round(model_steps / floor, 4),
    }


def model_line(r: dict[str, Any]) -> str:
    """One line of :func:`bench_model`'s figures."""
    extra = " ".join(f"{k}={v}" for k, v in r["params"].items())
    return (
        f"{r['scenario']}{' ' + extra if extra else ''}: {r['schedules_per_s']:,} schedules/s, "
        f"{r['steps_per_schedule']} steps/schedule, {r['model_steps_per_s']:,} model steps/s; "
        f"floor {r['floor_steps_per_s']:,} steps/s; ratio {r['ratio']:.3f} "
        f"({r['schedules']} schedules, median of {r['repeats']})"
    )
