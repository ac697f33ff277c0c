"""Failures: what the engine reports when a run goes wrong.

A failure is a value (:class:`Failure`), not an exception that escapes ``run``.  Inside a
run, model code and the primitives signal one by raising :class:`FailureSignal`, which
derives from ``BaseException`` so that a model's own ``except Exception`` cannot swallow it
(exactly as a kernel WARN/BUG cannot be "caught" by the code that triggered it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The failure kinds the engine itself produces.  Models and oracles add their own kinds
#: (``safety``, ``liveness``, ...) through :meth:`Runtime.fail`.
ENGINE_KINDS = (
    "deadlock",  # tasks blocked and none runnable, or a lock leaked by an exited task
    "step-limit",  # the run did not finish within max_steps: suspected livelock
    "exception",  # a model task raised
    "assertion",  # an assertion point stated a fact that was false
    "lock-misuse",  # unlock by a non-owner, recursive lock, uninitialised mutex
    "sleep-in-atomic",  # sleeping under a spinlock or in a non-blockable context
    "foreign-await",  # a model task awaited something that is not a concsim primitive
)


@dataclass(frozen=True)
class Failure:
    """One failure found in a run.

    ``kind`` is the family (see :data:`ENGINE_KINDS`), ``invariant`` the name of the
    specification rule it breaks where there is one (``"S1"``, ``"L4"``), ``step`` the
    engine step at which it was detected, ``task`` the task that was running then.
    ``details`` holds structured facts (gfn, pfn, hva, lock names, ...) for reports.
    """

    kind: str
    message: str
    step: int
    task: str | None = None
    invariant: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "invariant": self.invariant,
            "message": self.message,
            "step": self.step,
        }
        if self.task is not None:
            out["task"] = self.task
        if self.details:
            out["details"] = self.details
        return out

    @property
    def signature(self) -> str:
        """A short stable key grouping failures of the same cause."""
        where = self.details.get("where", "")
        return f"{self.kind}/{self.invariant or '-'}/{where}"


class FailureSignal(BaseException):
    """Raised inside a run to stop it with a failure.  Never escapes ``Runtime.run``."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure
