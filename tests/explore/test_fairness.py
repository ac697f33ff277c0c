"""PCT's fair fallback: a correct busy-wait is never a livelock, a real livelock still is
(issue 11); and a step-limit failure shrinks with a short limit."""

from __future__ import annotations

import concsim
from concsim.engine import Runtime
from concsim.strategies import PCT


def _pct_failures(variant: str, fair_after: int | None, schedules: int) -> int:
    from concsim.scenarios import get_scenario

    scn = get_scenario("spin")
    params = scn.resolve_params({})
    fails = 0
    for seed in range(schedules):
        rt = Runtime(PCT(seed, k=10, fair_after=fair_after), max_steps=scn.max_steps)
        scn.build(rt, dict(params), variant)
        f = rt.run()
        if f is not None:
            assert f.kind == "step-limit", f
            fails += 1
    return fails


def test_a_correct_busy_wait_is_clean_under_pct() -> None:
    assert _pct_failures("busy-wait", None, 2000) == 0


def test_without_the_fair_fallback_pct_calls_the_busy_wait_a_livelock() -> None:
    """The detector is needed: with fairness off, PCT starves the setter."""
    assert _pct_failures("busy-wait", 10**9, 150) > 0


def test_a_true_livelock_is_still_caught_under_pct() -> None:
    assert _pct_failures("livelock", None, 50) == 50


def test_explore_with_pct_agrees() -> None:
    ok = concsim.explore("spin", variant="busy-wait", strategy="pct", schedules=300)
    assert ok.ok
    bad = concsim.explore("spin", variant="livelock", strategy="pct", schedules=5)
    assert bad.first_failure is not None
    assert bad.first_failure.kind == "step-limit"


def test_a_step_limit_failure_shrinks_with_a_short_limit() -> None:
    """The shrinker's attempts stop 2,000 steps past their choices, not at the scenario's
    20,000-step limit; the shrunk schedule still reaches the real limit."""
    r = concsim.explore("spin", variant="livelock", strategy="random", seed=3, schedules=5)
    f = r.first_failure
    assert f is not None
    assert f.kind == "step-limit"
    assert f.result.failure is not None
    assert f.result.failure.kind == "step-limit"
    assert f.shrunk_preemptions <= f.preemptions
    assert f.result.steps == 20_000
