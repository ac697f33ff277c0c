"""PCT: deterministic per seed, finds the lock-order deadlock, respects its depth."""

from __future__ import annotations

import concsim
from concsim.exploration import execute, make_target
from concsim.strategies import PCT


def _choices(seed: int, depth: int = 2) -> list[int]:
    t = make_target("counter", "racy", {"tasks": 3, "increments": 2})
    return execute(t, PCT(seed, depth=depth, k=20), "pct", seed).result.choices


def test_same_seed_same_schedule_and_seeds_differ() -> None:
    assert _choices(5) == _choices(5)
    assert _choices(5, depth=3) == _choices(5, depth=3)
    assert len({tuple(_choices(s)) for s in range(20)}) > 5


def test_pct_explorations_are_deterministic() -> None:
    a = concsim.explore("abba", strategy="pct", seed=3, schedules=200)
    b = concsim.explore("abba", strategy="pct", seed=3, schedules=200)
    assert a.first_failure is not None
    assert b.first_failure is not None
    assert a.first_failure.schedule_index == b.first_failure.schedule_index
    assert a.first_failure.schedule == b.first_failure.schedule


def test_pct_finds_abba_deadlock_for_every_seed() -> None:
    for seed in range(10):
        r = concsim.explore("abba", strategy="pct", seed=seed * 1000, schedules=200)
        assert r.first_failure is not None, seed
        assert r.first_failure.kind == "deadlock"


def test_depth_1_never_preempts() -> None:
    # Without change points the highest-priority task runs until it blocks or ends: no
    # preemption, so the racy counter (which needs one) never loses an update.
    t = make_target("counter", "racy")
    for seed in range(50):
        ex = execute(t, PCT(seed, depth=1, k=20), "pct", seed)
        assert ex.preemptions == 0
        assert ex.failure is None


def test_depth_2_change_point_preempts() -> None:
    t = make_target("counter", "racy")
    assert any(execute(t, PCT(s, depth=2, k=10), "pct", s).preemptions for s in range(50))
