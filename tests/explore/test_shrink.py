"""The shrinker: fewer preemptions and steps, the same failure, and it replays."""

from __future__ import annotations

import json
from pathlib import Path

import concsim
from concsim.engine import ENV_CHOICE, TASK_CHOICE, Failure, Runtime, Strategy
from concsim.exploration import Attempt, shrink
from concsim.strategies import PreferTasks, RandomWalk, Replay


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


# ---------------------------------------------------------------------- segment moves


def test_segments_and_their_moves() -> None:
    from concsim.exploration._shrink import segment_moves, segments

    plan = (0, 0, 1, 0, 2, 2)
    assert segments(plan) == [(0, 0, 2), (1, 2, 3), (0, 3, 4), (2, 4, 6)]
    assert segments(()) == []
    moves = list(segment_moves(plan))
    # Last segment first: task 2 has no earlier segment, so only run-through and drop.
    assert moves[:2] == [(0, 0, 1, 0, 0, 0), (0, 0, 1, 0)]
    # Then task 0's second segment: moved up to join the first, or the first moved down.
    assert moves[2:4] == [(0, 0, 0, 1, 2, 2), (1, 0, 0, 0, 2, 2)]
    assert (0, 0, 0, 0, 2, 2) in moves  # task 0 runs through task 1's segment
    assert all(len(m) <= len(plan) for m in moves)


def _racy_tasks(rt: Runtime, log: list[str], names: str = "ab") -> None:
    # Tasks of three steps each: the run fails when b's second step comes right after a's
    # first one, whatever the other tasks (c, d: noise) did.
    async def task(name: str) -> None:
        for i in range(3):
            await rt.point("step", name, i)
            log.append(f"{name}{i}")
            if log[-2:] == ["a0", "b1"]:
                raise rt.fail("assertion", "b1 right after a0", invariant="T")

    for name in names:
        rt.spawn(name, task(name))


def test_prefer_tasks_replays_by_identity_and_the_runtime_records_it() -> None:
    log: list[str] = []
    rt = Runtime(PreferTasks([1, 1, 0, 7, 0], []), trace=False)
    _racy_tasks(rt, log)
    assert rt.run() is None
    # A task's first choice starts it (up to its first point), each later one runs a step.
    # b (id 1) starts and runs b0; a starts; 7 is no task, so the current one (a) goes on;
    # past the plan's end the current task goes on too.
    assert log == ["b0", "a0", "a1", "a2", "b1", "b2"]
    assert rt.choice_tasks == [1, 1, 0, 0, 0, 0]
    assert rt.choice_envs == []
    assert list(rt.choice_kinds) == [TASK_CHOICE] * 6
    # One preemption: the switch to a while b could go on (the first choice, with nothing
    # running yet, is not one).
    assert rt.preemptions == 1


def test_the_record_types_each_choice_and_counts_preemptions_exactly() -> None:
    """A choice after a task finished may be non-zero without being a preemption: the
    schedule string cannot tell, the typed record can."""

    def build(rt: Runtime) -> None:
        async def a() -> None:
            await rt.point("x", "a")
            rt.choose("env", 3)

        async def b() -> None:
            await rt.point("y", "b")
            await rt.point("y", "b")

        rt.spawn("a", a())
        rt.spawn("b", b())

    for seed in range(40):
        rt = Runtime(RandomWalk(seed, env_p=0.5), trace=False)
        build(rt)
        assert rt.run() is None
        kinds = list(rt.choice_kinds)
        assert kinds.count(ENV_CHOICE) == 1
        assert len(rt.choice_tasks) == kinds.count(TASK_CHOICE)
        assert len(rt.choices) == len(kinds)
        assert rt.choice_envs == [rt.choices[kinds.index(ENV_CHOICE)]]
        assert rt.preemptions <= sum(
            1 for c, k in zip(rt.choices, kinds, strict=True) if c and k == TASK_CHOICE
        )
    # a schedule whose only switch comes after a finished: no preemption at all
    rt = Runtime(Replay([0, 0, 0], strict=False), trace=False)
    build(rt)
    rt.run()
    assert rt.preemptions == 0


def _attempt_with(strategy: Strategy) -> Attempt:
    rt = Runtime(strategy, trace=False)
    _racy_tasks(rt, [], "abcd")
    f = rt.run()
    return Attempt(
        f, list(rt.choices), rt.preemptions, rt.step, tuple(rt.choice_tasks), tuple(rt.choice_envs)
    )


def test_segment_pass_removes_preemptions_the_index_passes_cannot() -> None:
    """On random walks of four tasks (two of them noise), the index passes alone leave
    needless switches; with plans by task identity the shrinker gets to the two the bug
    needs (start b, run b0, preempt to a for a0, preempt back to b for b1), give or take
    one."""

    def run(choices: list[int]) -> Attempt:
        return _attempt_with(Replay(choices, strict=False))

    def run_plan(tasks: list[int], envs: list[int]) -> Attempt:
        return _attempt_with(PreferTasks(tasks, envs))

    plain_left, both_left = [], []
    for seed in range(150):
        found = _attempt_with(RandomWalk(seed))
        if found.failure is None:
            continue
        plain = shrink(run, found).best
        both = shrink(run, found, run_plan=run_plan).best
        assert both.failure is not None
        assert both.failure.invariant == "T"
        assert both.steps <= found.steps
        assert both.preemptions <= plain.preemptions
        plain_left.append(plain.preemptions)
        both_left.append(both.preemptions)
    assert len(both_left) >= 5
    assert max(both_left) <= 3
    assert min(both_left) == 2
    assert sum(plain_left) > sum(both_left)  # the segment pass is what does it


def test_one_switch_pass_leaves_a_local_minimum() -> None:
    """Issue 14: ``shrink --same signature`` got stuck.  PCT seed 3 of no-read-retry with
    migrate, reclaim, munmap and madvise fails S1 at slat_write after 245 steps (a vCPU
    fault racing a munmap); passes 1-5 left it at 239 steps with four preemptions.  The
    same signature is reached in 26 steps with one preemption (creation racing the
    migration), which pass 6, the one-switch search, finds."""
    from concsim.exploration._minimize import same_signature, shrink_on_target
    from concsim.runs import RunConfig, resolve

    params = {"events": "migrate,reclaim,munmap,madvise"}
    res = concsim.run("default", variant="no-read-retry", params=params, strategy="pct", seed=3)
    assert res.failure is not None
    assert res.failure.signature == "safety/S1/slat_write"
    target = resolve(RunConfig(scenario="default", variant="no-read-retry", params=params))
    shrunk = shrink_on_target(target, list(res.choices), same=same_signature)
    assert shrunk.original.preemptions >= 4
    assert shrunk.best.failure is not None
    assert shrunk.best.failure.signature == "safety/S1/slat_write"
    assert shrunk.best.preemptions == 1
    assert shrunk.best.steps < 40


def test_one_switch_candidates() -> None:
    from concsim.exploration._shrink import one_switch

    best = Attempt(None, [0, 2, 1, 0], 2, 4, tasks=(0, 1, 2, 1), envs=())
    assert list(one_switch(best)) == [
        [1],
        [2],
        [0, 1],
        [0, 2],
        [0, 0, 1],
        [0, 0, 2],
        [0, 0, 0, 1],
        [0, 0, 0, 2],
    ]
