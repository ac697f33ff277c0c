"""The shrinker: fewer preemptions and steps, the same failure, and it replays."""

from __future__ import annotations

import json
from pathlib import Path

import concsim
from concsim.engine import Failure
from concsim.exploration import Attempt, shrink


def test_shrinks_a_random_failure_and_replays(tmp_path: Path) -> None:
    # Random walk failing schedules carry needless switches; find a noisy one.
    noisy = None
    for seed in range(200):
        r = concsim.explore(
            "counter",
            variant="racy",
            params={"tasks": 3, "increments": 2},
            strategy="random",
            seed=seed,
            schedules=50,
            save_dir=str(tmp_path),
        )
        f = r.first_failure
        assert f is not None
        if f.preemptions >= 3:
            noisy = f
            break
    assert noisy is not None
    assert noisy.kind == "assertion"
    assert noisy.shrunk_preemptions <= noisy.preemptions
    assert noisy.shrunk_preemptions < noisy.preemptions  # this one really shrinks
    assert noisy.shrunk_steps <= noisy.steps
    # The shrunk schedule replays strictly and fails the same way.
    again = concsim.run(
        "counter",
        variant="racy",
        params={"tasks": 3, "increments": 2},
        schedule=noisy.shrunk_schedule,
    )
    assert again.failure is not None
    assert again.failure.kind == noisy.kind
    # The replay file holds the shrunk schedule and the original one.
    assert noisy.replay_file is not None
    saved = json.loads(Path(noisy.replay_file).read_text())
    assert saved["schedule"] == noisy.shrunk_schedule
    assert saved["original_schedule"] == noisy.schedule
    out = concsim.replay(noisy.replay_file)
    assert out.reproduced
    assert out.result.failure is not None
    assert out.result.failure.kind == "assertion"


def test_shrinker_on_a_synthetic_property() -> None:
    # "Fails" when some choice is >= 2 and at least two choices are non-zero.
    target = Failure("assertion", "x", 0, invariant="T1")

    def run(choices: list[int]) -> Attempt:
        nz = sum(1 for c in choices if c)
        bad = any(c >= 2 for c in choices) and nz >= 2
        return Attempt(target if bad else None, list(choices), nz, len(choices))

    start = [0, 3, 1, 0, 5, 2, 0, 0, 4]
    res = shrink(run, run(start))
    assert sorted(res.best.choices) == [1, 2]  # two choices, no zeros left
    assert res.best.preemptions == 2


def test_shrinker_keeps_the_invariant() -> None:
    a = Failure("assertion", "x", 0, invariant="A")
    b = Failure("assertion", "y", 0, invariant="B")

    def run(choices: list[int]) -> Attempt:
        # Short schedules fail with another invariant: they must not be taken.
        f = a if len(choices) >= 3 else b
        return Attempt(f, list(choices), sum(1 for c in choices if c), len(choices))

    res = shrink(run, run([1, 1, 1, 1]))
    assert res.best.failure is not None
    assert res.best.failure.invariant == "A"
    assert len(res.best.choices) == 3
    assert res.best.choices == [0, 0, 0]
