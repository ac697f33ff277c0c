"""``concsim.check``: many schedules of a scenario or of an ad-hoc world."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import concsim
from concsim._check import NondeterministicModel
from concsim.engine import Runtime
from concsim.kernel import Mutex


def lost_update(locked: bool) -> Callable[[Runtime], Any]:
    def build(rt: Runtime) -> Any:
        lock = Mutex(rt, "lock")
        state = {"n": 0}

        async def inc() -> None:
            if locked:
                await lock.lock()
            await rt.point("load", "n", read=True)
            v = state["n"]
            await rt.point("store", "n", v + 1)
            state["n"] = v + 1
            if locked:
                await lock.unlock()

        rt.add_final_hook(lambda rt: rt.check(state["n"] == 2, f"lost update: n={state['n']}"))
        return [inc(), inc()]

    return build


def test_adhoc_race_is_found_and_its_schedule_replays() -> None:
    res = concsim.check(lost_update(False), schedules=100, seed=0)
    assert not res.ok
    assert res.failing is not None
    assert res.failing.failure is not None
    assert res.failing.failure.message == "lost update: n=1"
    assert res.schedules == res.index + 1
    assert res.failing.seed == res.index
    assert [e[1] for e in res.failing.trace if e[2] == "start"] == ["inc0", "inc1"]
    again = concsim.check(lost_update(False), schedule=res.failing.schedule)
    assert again.failing is not None
    assert again.failing.trace == res.failing.trace
    assert "replay with: concsim.check(" in res.report()


def test_locked_world_passes_every_schedule() -> None:
    res = concsim.check(lost_update(True), schedules=200)
    assert res.ok
    assert res.schedules == 200
    assert "no failure in 200 schedules" in res.report()


def test_scenario_target_agrees_with_run() -> None:
    res = concsim.check("counter", variant="racy", schedules=50, seed=10)
    first = next(s for s in range(10, 60) if not concsim.run("counter", variant="racy", seed=s).ok)
    assert res.failing is not None
    assert res.failing.seed == first
    found = concsim.run("counter", variant="racy", seed=first)
    # The report holds the shrunk schedule; the original is the one the seed gave.
    assert res.original_schedule in (None, found.schedule)
    if res.original_schedule is None:
        assert res.failing.trace_sha256 == found.trace_sha256
    shrunk = concsim.run("counter", variant="racy", schedule=res.failing.schedule)
    assert shrunk.failure is not None
    assert shrunk.failure.kind == found.failure.kind


@pytest.mark.parametrize(
    ("ret", "names"),
    [
        ("mapping", {"w1", "w2"}),
        ("single", {"worker"}),
        ("list", {"worker0", "worker1", "other"}),
        ("spawned", {"a"}),
    ],
)
def test_build_may_return_or_spawn_its_tasks(ret: str, names: set[str]) -> None:
    def build(rt: Runtime) -> Any:
        async def worker() -> None:
            await rt.point("touch", "x")

        async def other() -> None:
            await rt.point("touch", "x")

        # Fail at the end of every schedule, so the result carries a trace to inspect.
        rt.add_final_hook(lambda rt: rt.check(False, "done"))
        if ret == "mapping":
            return {"w1": worker(), "w2": worker()}
        if ret == "single":
            return worker()
        if ret == "list":
            return [worker(), worker(), other()]
        rt.spawn("a", worker())
        return None

    res = concsim.check(build, schedules=1)
    assert res.failing is not None
    assert {e[1] for e in res.failing.trace if e[2] == "start"} == names


def test_bad_builds_and_arguments_are_usage_errors() -> None:
    with pytest.raises(concsim.UsageError, match="spawned no task"):
        concsim.check(lambda rt: None, schedules=1)
    with pytest.raises(concsim.UsageError, match="returned a int"):
        concsim.check(lambda rt: 3, schedules=1)
    with pytest.raises(concsim.UsageError, match="variant= and params= apply"):
        concsim.check(lost_update(False), variant="racy")
    with pytest.raises(concsim.UsageError, match="at least 1"):
        concsim.check("counter", schedules=0)
    with pytest.raises(concsim.ScheduleMismatch):
        concsim.check(lost_update(False), schedule="cs1:9")


def test_nondeterministic_model_is_an_error() -> None:
    builds = [0]

    def build(rt: Runtime) -> Any:
        builds[0] += 1
        n = builds[0]

        async def t() -> None:
            await rt.point("x", "o")
            rt.check(n != 2, "second build")

        return [t()]

    with pytest.raises(NondeterministicModel, match="not deterministic"):
        concsim.check(build, schedules=5)


async def test_check_async_from_trio_gives_the_sync_result() -> None:
    res = await concsim.check_async(lost_update(False), schedules=100)
    sync = concsim.check(lost_update(False), schedules=100)
    assert res.failing is not None
    assert sync.failing is not None
    assert (res.index, res.failing.trace_sha256) == (sync.index, sync.failing.trace_sha256)
