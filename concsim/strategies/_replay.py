"""Replay: feed a recorded list of choices back to the engine.

In ``strict`` mode (replaying a file or a pasted schedule) the schedule must fit the model
exactly: a choice that names an option the model does not offer at that step, a schedule
that runs out before the run ends, or one with choices left over, is a
:class:`ScheduleMismatch` naming the step.  Non-strict mode (the shrinker's) reads zeros past
the end, like Hypothesis's exhausted buffer, and clamps out-of-range values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from concsim._errors import ScheduleMismatch

if TYPE_CHECKING:
    from concsim.engine import Runtime


class Replay:
    name = "replay"

    def __init__(self, choices: list[int], *, strict: bool = True) -> None:
        self.choices = list(choices)
        self.strict = strict
        self.pos = 0

    def _next(self, rt: Runtime, n: int, what: str) -> int:
        i = self.pos
        self.pos = i + 1
        if i >= len(self.choices):
            if self.strict:
                raise ScheduleMismatch(
                    rt.step,
                    f"the schedule ended after {len(self.choices)} choices but the model asks "
                    f"for another ({what} among {n})",
                )
            return 0
        c = self.choices[i]
        if c >= n:
            if self.strict:
                raise ScheduleMismatch(
                    rt.step,
                    f"choice #{i} is {c}, but only {n} options are available there ({what})",
                )
            return c % n
        return c

    def pick_task(self, rt: Runtime, n: int) -> int:
        return self._next(rt, n, "which task runs next")

    def pick_env(self, rt: Runtime, label: str, n: int) -> int:
        return self._next(rt, n, f"outcome of {label}")

    def finish(self, rt: Runtime) -> None:
        """Called after the run: in strict mode, leftover choices mean a misfit."""
        if self.strict and self.pos < len(self.choices):
            raise ScheduleMismatch(
                rt.step,
                f"the run ended but {len(self.choices) - self.pos} of the schedule's "
                f"{len(self.choices)} choices were not used",
            )


class PreferTasks:
    """Replay by task identity rather than by choice index (the shrinker's segment passes).

    The ``i``-th task choice runs task ``tasks[i]`` (an engine-assigned id) when that task
    can run there; otherwise, and past the end of ``tasks``, it keeps the current task running
    (choice 0: the first runnable task by id when the current one cannot run).  The ``i``-th
    environment choice is ``envs[i]`` (clamped), 0 past the end.  Task and environment
    choices are read from separate lists, so moving a block of one task's steps earlier or
    later does not shift the meaning of the environment's outcomes.  Never strict: every
    plan is a valid schedule, and the run's own choices are what gets recorded.
    """

    name = "replay"

    def __init__(self, tasks: list[int], envs: list[int]) -> None:
        self.tasks = tasks
        self.envs = envs
        self._ti = 0
        self._ei = 0

    def pick_task(self, rt: Runtime, n: int) -> int:
        i = self._ti
        self._ti = i + 1
        if i < len(self.tasks):
            want = self.tasks[i]
            for k, t in enumerate(rt.candidates()):
                if t.id == want:
                    return k
        return 0

    def pick_env(self, rt: Runtime, label: str, n: int) -> int:
        i = self._ei
        self._ei = i + 1
        return self.envs[i] % n if i < len(self.envs) else 0
