"""The runner side of shrinking: a failing schedule of a target, made as small as it goes.

:mod:`concsim.exploration._shrink` is the search; it only sees functions that run a
candidate.  Here those functions are built for a :class:`Target`: every candidate runs
through :func:`execute`, which records what each choice meant (so a run's preemptions are
exact and its plan by task identity is known), choice lists replay non-strictly, plans by
task identity replay with :class:`~concsim.strategies.PreferTasks`.  The best schedule found
is then replayed strictly, with a trace: that run is what a replay file holds.

Three callers: ``concsim explore`` (the first failure of an exploration), ``concsim stress``
(the smallest-seed failure of each signature, at the end of a campaign) and
``concsim shrink FILE`` (any replay file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concsim._errors import UsageError
from concsim.engine import Failure, Strategy, decode_schedule, encode_schedule
from concsim.exploration._runner import Target, execute
from concsim.exploration._shrink import Attempt, ShrinkResult, same_failure, shrink
from concsim.runs import RunResult
from concsim.strategies import PreferTasks, Replay

#: ``same(candidate_failure, target_failure)``: whether a candidate fails "the same way".
Same = Callable[[Failure | None, Failure], bool]


def same_signature(a: Failure | None, b: Failure) -> bool:
    """Stricter than :func:`same_failure`: kind, invariant and where it was detected (a
    stress campaign files failures by this signature)."""
    return a is not None and a.signature == b.signature


@dataclass
class Shrunk:
    """A failing schedule and its shrunk form."""

    original: Attempt
    best: Attempt
    runs: int
    #: the best schedule replayed strictly, with a trace
    result: RunResult

    @property
    def schedule(self) -> str:
        return encode_schedule(self.original.choices)

    @property
    def shrunk_schedule(self) -> str:
        return encode_schedule(self.best.choices)


def attempt_on(target: Target, strategy: Strategy) -> Attempt:
    """Run ``target`` once under ``strategy``; the execution records what its choices
    meant."""
    ex = execute(target, strategy, "replay", None)
    return Attempt(
        ex.failure, list(ex.result.choices), ex.preemptions, ex.result.steps, ex.tasks, ex.envs
    )


def shrink_by_replay(
    attempt: Callable[[Strategy], Attempt],
    original: Attempt,
    *,
    same: Same = same_failure,
    max_runs: int = 2000,
) -> ShrinkResult:
    """The shrinker fed by one runner: ``attempt(strategy)`` runs the target once and reports
    the :class:`Attempt`.  Choice lists replay non-strictly, plans by task identity with
    :class:`~concsim.strategies.PreferTasks`.  (``concsim.check`` runs its own targets, so it
    brings its own ``attempt``.)"""
    return shrink(
        lambda cand: attempt(Replay(cand, strict=False)),
        original,
        max_runs=max_runs,
        run_plan=lambda tasks, envs: attempt(PreferTasks(tasks, envs)),
        same=same,
    )


def shrink_on_target(
    target: Target,
    choices: list[int],
    *,
    same: Same = same_failure,
    max_runs: int = 2000,
    strategy: str = "replay",
    seed: int | None = None,
) -> Shrunk:
    """Shrink the failing schedule ``choices`` of ``target`` with at most ``max_runs`` runs.

    ``strategy`` and ``seed`` are what the final result says found the schedule.  The
    schedule must fail when replayed (strictly); a schedule that does not is a user error.
    """
    original = attempt_on(target, Replay(choices, strict=False))
    f = original.failure
    if f is None or original.choices != list(choices):
        raise UsageError(
            f"schedule {encode_schedule(choices)} does not fail on {target.label} when "
            "replayed: nothing to shrink"
        )

    if f.kind == "step-limit":
        quick = _quick_livelock_shrink(target, original, same, max_runs, strategy, seed)
        if quick is not None:
            return quick
    sr = shrink_by_replay(
        lambda strat: attempt_on(target, strat), original, same=same, max_runs=max_runs
    )
    final = execute(target, Replay(sr.best.choices, strict=True), strategy, seed)
    return Shrunk(original, sr.best, sr.runs, final.result)


def _quick_livelock_shrink(
    target: Target,
    original: Attempt,
    same: Same,
    max_runs: int,
    strategy: str,
    seed: int | None,
) -> Shrunk | None:
    """Shrink a step-limit failure with a short step limit, then check the result once at
    the real one.

    A livelock runs until the limit, so every attempt of the shrinker would cost the whole
    limit (seconds each on a large world).  Past its last choice, a run that loops forever
    keeps looping: attempts with a limit just past their choices (2,000 steps more than
    twice the original's choices; at most 200 attempts) tell a loop from a finished run as
    well.  The shrunk
    schedule is then replayed at the real limit; if it does not hit it there (it only took
    long), None: the caller shrinks at the real limit.
    """
    limit = target.max_steps or target.scenario.steps_for(target.params)
    quick = 2_000 + 2 * len(original.choices)
    if quick >= limit:
        return None
    short = target.with_settings(target.config.replace(max_steps=quick))
    first = attempt_on(short, Replay(original.choices, strict=False))
    if first.failure is None or first.failure.kind != "step-limit":
        return None
    sr = shrink_by_replay(
        lambda strat: attempt_on(short, strat), first, same=same, max_runs=min(max_runs, 200)
    )
    final = execute(target, Replay(sr.best.choices, strict=True), strategy, seed)
    if final.failure is None or final.failure.kind != "step-limit":
        return None
    best = Attempt(
        final.failure,
        list(final.result.choices),
        final.preemptions,
        final.result.steps,
        final.tasks,
        final.envs,
    )
    return Shrunk(original, best, sr.runs + 2, final.result)


@dataclass
class ShrunkFile:
    """``concsim shrink FILE``: what was shrunk and where the result went."""

    source: str
    out: str
    shrunk: Shrunk

    def to_json(self) -> dict[str, Any]:
        s = self.shrunk
        f = s.result.failure
        return {
            "source": self.source,
            "out": self.out,
            "kind": f.kind if f else None,
            "invariant": f.invariant if f else None,
            "schedule": s.schedule,
            "shrunk_schedule": s.shrunk_schedule,
            "preemptions": s.original.preemptions,
            "shrunk_preemptions": s.best.preemptions,
            "steps": s.original.steps,
            "shrunk_steps": s.best.steps,
            "shrink_runs": s.runs,
        }


def shrunk_path(source: str | Path) -> Path:
    """Where ``concsim shrink`` writes by default: ``x.json`` -> ``x.shrunk.json``."""
    p = Path(source)
    return p.with_name(p.stem + ".shrunk" + (p.suffix or ".json"))


def shrink_replay_file(
    path: str,
    *,
    out: str | None = None,
    same: Same = same_failure,
    max_runs: int = 2000,
    target: Target | None = None,
) -> ShrunkFile:
    """Shrink the schedule of the replay file ``path`` and save the result as a replay file
    (``out``, by default ``<name>.shrunk.json`` beside it) holding the shrunk schedule and,
    as ``original_schedule``, the file's own.  ``target`` saves resolving the file's
    scenario and variant again (a stress campaign has them at hand)."""
    from concsim.artifacts import load_replay, replay_from_result, save_replay
    from concsim.runs import config_of_replay, resolve

    rf = load_replay(path)
    if target is None:
        target = resolve(config_of_replay(rf, str(path)).replace(schedule=None))
    shrunk = shrink_on_target(
        target,
        decode_schedule(rf.schedule),
        same=same,
        max_runs=max_runs,
        strategy=rf.strategy,
        seed=rf.seed,
    )
    dest = Path(out) if out is not None else shrunk_path(path)
    saved = replay_from_result(shrunk.result, original=rf.schedule)
    saved.extra = {
        **rf.extra,
        **saved.extra,
        "shrunk_from": str(path),
        "shrink": {
            "preemptions": [shrunk.original.preemptions, shrunk.best.preemptions],
            "steps": [shrunk.original.steps, shrunk.best.steps],
            "runs": shrunk.runs,
        },
    }
    try:
        save_replay(dest, saved)
    except OSError as e:
        raise UsageError(f"cannot write {dest}: {e.strerror or e}") from None
    shrunk.result.replay_file = str(dest)
    return ShrunkFile(str(path), str(dest), shrunk)
