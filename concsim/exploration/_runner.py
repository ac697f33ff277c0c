"""Run one schedule of a target, observing every step (for reduction and coverage).

The run core lives in :mod:`concsim.runs`; a *target* is a resolved :class:`RunConfig`
(:class:`concsim.runs.World`), and :func:`execute` records the trace, attaches a
:class:`~concsim.strategies.StepObserver`, and counts the task choices and the exact
preemptions (a choice ``k > 0`` where the current task was still runnable).
"""

from __future__ import annotations

from collections.abc import Mapping

from concsim.runs import Execution, RunConfig, World, execute, resolve

#: What an exploration explores: a resolved run configuration.
Target = World

__all__ = ["Execution", "Target", "execute", "make_target"]


def make_target(
    scenario: str,
    variant: str | None = None,
    params: Mapping[str, object] | None = None,
    max_steps: int | None = None,
) -> Target:
    """Resolve a scenario, variant and parameters (see :func:`concsim.runs.resolve`)."""
    return resolve(
        RunConfig(scenario=scenario, variant=variant, params=params or {}, max_steps=max_steps)
    )
