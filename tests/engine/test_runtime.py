"""The scheduler loop: choices, candidates, determinism, failures of the engine itself."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from concsim import ScheduleMismatch
from concsim.engine import Runtime, decode_schedule, encode_schedule, trace_sha256
from concsim.strategies import RandomWalk, Replay

from .helpers import run_world


def _two_counters(rt: Runtime) -> None:
    async def t(name: str) -> None:
        for i in range(5):
            await rt.point("tick", name, i)

    rt.spawn("a", t("a"))
    rt.spawn("b", t("b"))


def test_same_seed_same_trace_and_choices() -> None:
    r1, _ = run_world(_two_counters, seed=5)
    r2, _ = run_world(_two_counters, seed=5)
    assert r1.choices == r2.choices
    assert r1.trace == r2.trace
    assert trace_sha256(r1.trace) == trace_sha256(r2.trace)


def test_different_seeds_give_different_interleavings() -> None:
    hashes = {trace_sha256(run_world(_two_counters, seed=s)[0].trace) for s in range(20)}
    assert len(hashes) > 5


def test_zero_choices_keep_the_current_task_running() -> None:
    rt = Runtime(Replay([], strict=False), trace=True)
    _two_counters(rt)
    assert rt.run() is None
    order = [e[1] for e in rt.trace if e[2] == "tick"]
    # All zeros: task a runs to completion before b gets its first tick.
    assert order == ["a"] * 5 + ["b"] * 5


def test_choice_one_switches_to_the_other_task() -> None:
    rt = Runtime(Replay([1, 1, 1, 1], strict=False), trace=True)
    _two_counters(rt)
    rt.run()
    starts = [e[1] for e in rt.trace[:4]]
    assert starts == ["b", "a", "b", "a"]


def test_replay_of_recorded_choices_reproduces_the_trace() -> None:
    rt1, _ = run_world(_two_counters, seed=9)
    rt2 = Runtime(Replay(rt1.choices), trace=True)
    _two_counters(rt2)
    rt2.run()
    assert rt2.trace == rt1.trace


def test_replay_choice_out_of_range_names_the_step() -> None:
    rt = Runtime(Replay([5]), trace=True)
    _two_counters(rt)
    with pytest.raises(ScheduleMismatch, match=r"at step 0: choice #0 is 5, but only 2 options"):
        rt.run()


def test_replay_running_out_is_a_mismatch_in_strict_mode() -> None:
    rt = Runtime(Replay([0, 0]), trace=True)
    _two_counters(rt)
    with pytest.raises(ScheduleMismatch, match="schedule ended after 2 choices"):
        rt.run()


def test_replay_leftover_choices_are_a_mismatch() -> None:
    rt1, _ = run_world(_two_counters, seed=1)
    strat = Replay([*rt1.choices, 0, 0])
    rt = Runtime(strat, trace=True)
    _two_counters(rt)
    rt.run()
    with pytest.raises(ScheduleMismatch, match="2 of the schedule's"):
        strat.finish(rt)


def test_single_candidate_records_no_choice() -> None:
    def one(rt: Runtime) -> None:
        async def t() -> None:
            for _ in range(10):
                await rt.point("x", "y")

        rt.spawn("only", t())

    rt, f = run_world(one)
    assert f is None
    assert rt.choices == []
    assert rt.step == 11


def test_step_limit_is_a_suspected_livelock() -> None:
    def spin(rt: Runtime) -> None:
        async def t() -> None:
            while True:
                await rt.point("spin", "flag", read=True)

        rt.spawn("spinner", t())

    _, f = run_world(spin, max_steps=50)
    assert f is not None
    assert f.kind == "step-limit"
    assert "suspected livelock" in f.message
    assert f.step == 50


def test_exception_in_a_task_is_a_failure_with_the_model_traceback() -> None:
    def boom(rt: Runtime) -> None:
        async def t() -> None:
            await rt.point("x", "y")
            raise KeyError("missing page")

        rt.spawn("bad", t())

    _, f = run_world(boom)
    assert f is not None
    assert f.kind == "exception"
    assert f.task == "bad"
    assert "KeyError" in f.message
    assert "raise KeyError" in f.details["traceback"]


def test_model_cannot_swallow_a_failure_with_except_exception() -> None:
    def swallow(rt: Runtime) -> None:
        async def t() -> None:
            with contextlib.suppress(Exception):
                rt.check(False, "the fact the code relies on")

        rt.spawn("t", t())

    _, f = run_world(swallow)
    assert f is not None
    assert f.kind == "assertion"


def test_assertion_point_silent_when_true() -> None:
    def fine(rt: Runtime) -> None:
        async def t() -> None:
            await rt.point("x", "y")
            rt.check(True, "never")

        rt.spawn("t", t())

    assert run_world(fine)[1] is None


def test_foreign_awaitable_is_a_clear_failure() -> None:
    def foreign(rt: Runtime) -> None:
        async def t() -> None:
            await asyncio.sleep(0)  # yields None to the driver: not a concsim point

        rt.spawn("t", t())

    _, f = run_world(foreign)
    assert f is not None
    assert f.kind == "foreign-await"
    assert "not a concsim scheduling point" in f.message


def test_foreign_future_is_a_clear_failure() -> None:
    def foreign(rt: Runtime) -> None:
        async def t() -> None:
            loop = asyncio.new_event_loop()
            try:
                await loop.create_future()
            finally:
                loop.close()

        rt.spawn("t", t())

    _, f = run_world(foreign)
    assert f is not None
    assert f.kind == "foreign-await"
    assert "Future" in f.message


def test_environment_choices_are_recorded_and_replayed() -> None:
    seen: list[int] = []

    def env(rt: Runtime) -> None:
        async def t() -> None:
            for _ in range(50):
                seen.append(rt.choose("hv_call", 3))
                await rt.point("x", "y")

        rt.spawn("t", t())

    rt = Runtime(RandomWalk(3, env_p=0.5))
    env(rt)
    rt.run()
    first = list(seen)
    assert any(first)
    assert 0 in first
    seen.clear()
    rt2 = Runtime(Replay(rt.choices))
    env(rt2)
    rt2.run()
    assert seen == first


def test_task_names_must_be_unique() -> None:
    rt = Runtime(RandomWalk(0))

    async def t() -> None:
        return None

    rt.spawn("x", t())
    with pytest.raises(ValueError, match="used twice"):
        rt.spawn("x", t())
    rt.run()


@pytest.mark.parametrize(
    "choices",
    [[], [0], [0, 0, 0, 0, 0], [1, 2, 3, 35], [36, 0, 0, 0, 1000, 7, 7, 7, 7], [0] * 500],
)
def test_schedule_codec_round_trips(choices: list[int]) -> None:
    s = encode_schedule(choices)
    assert s.startswith("cs1:")
    assert decode_schedule(s) == choices


def test_schedule_codec_is_compact_for_runs() -> None:
    assert encode_schedule([0] * 40 + [2, 0, 1]) == "cs1:0{40}201"


@pytest.mark.parametrize("bad", ["", "cs2:00", "cs1:0{x}", "cs1:{3}", "cs1:0(12", "cs1:A"])
def test_schedule_codec_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="schedule"):
        decode_schedule(bad)


def test_hypothesis_round_trip() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    # No timing check: on a loaded CI machine input generation is slow (speed is measured in
    # benchmarks, not in tests).
    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.integers(min_value=0, max_value=5000), max_size=200))
    def prop(xs: list[int]) -> None:
        assert decode_schedule(encode_schedule(xs)) == xs

    prop()


def test_a_running_task_spawns_and_joins() -> None:
    order: list[str] = []

    def build(rt: Runtime) -> None:
        async def child() -> None:
            await rt.point("work", "c")
            order.append("child")

        async def parent() -> None:
            t = rt.spawn("child", child())
            await rt.join(t)
            order.append("parent")
            await rt.join(t)  # joining a finished task returns at once

        rt.spawn("parent", parent())

    for seed in range(10):
        order.clear()
        res, _ = run_world(build, seed=seed)
        assert res.failure is None
        assert order == ["child", "parent"]


def test_join_of_a_task_that_never_exits_is_a_deadlock() -> None:
    def build(rt: Runtime) -> None:
        from concsim.kernel import WaitQueue

        wq = WaitQueue(rt, "never")

        async def stuck() -> None:
            await wq.wait_event(lambda: False)

        async def parent() -> None:
            await rt.join(rt.spawn("stuck", stuck()))

        rt.spawn("parent", parent())

    res, _ = run_world(build, seed=0)
    assert res.failure is not None
    assert res.failure.kind == "deadlock"
    assert "stuck" in res.failure.message


def test_spawn_after_the_run_is_refused() -> None:
    rt = Runtime(Replay([], strict=False))

    async def t() -> None:
        await rt.point("x", "y")

    rt.spawn("t", t())
    rt.run()
    coro = t()
    with pytest.raises(Exception, match="single-use"):
        rt.spawn("u", coro)
