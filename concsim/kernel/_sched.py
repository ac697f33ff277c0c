"""Scheduler-facing kernel helpers: ``might_sleep``, ``cond_resched``, non-blockable context.

In the kernel, ``might_sleep()`` complains whenever code that *may* sleep runs where
sleeping is forbidden, whether or not it would actually sleep this time: under a spinlock
(atomic context) or, for MMU-notifier callbacks, when the invalidation was started with
``mmu_notifier_invalidate_range_start_nonblock`` (the OOM reaper).  The model does the
same, so the bug is reported on every schedule that reaches the call, not only on the rare
one where the lock is contended.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from contextlib import contextmanager

from concsim.engine import Runtime, Task


def might_sleep(rt: Runtime, what: str, obj: str | None = None, suffix: str = "") -> None:
    """Fail (S6) if the running task may not sleep here.  The call is named ``what``, or
    ``what(obj)`` followed by ``suffix``: the name is built only when it fails."""
    t = rt.current
    assert t is not None
    if t.atomic or t.nonblock:
        _sleep_failure(rt, t, (what if obj is None else f"{what}({obj})") + suffix)


def _sleep_failure(rt: Runtime, t: Task, what: str) -> None:
    if t.atomic:
        held = ", ".join(getattr(x, "name", "?") for x in t.held if getattr(x, "atomic", False))
        raise rt.fail(
            "sleep-in-atomic",
            f"{what} may sleep, but task {t.name!r} holds spinlock {held or '?'}",
            invariant="S6",
            what=what,
        )
    if t.nonblock:
        raise rt.fail(
            "sleep-in-atomic",
            f"{what} may sleep, but task {t.name!r} is in a non-blockable context "
            "(mmu_notifier_range_blockable() is false)",
            invariant="S6",
            what=what,
        )


def cond_resched(rt: Runtime, where: str = "cond_resched") -> Awaitable[None]:
    """``await cond_resched(rt)``: a voluntary scheduling point that may sleep."""
    might_sleep(rt, "cond_resched")
    return rt.point("cond_resched", where)


@contextmanager
def nonblock_context(rt: Runtime) -> Iterator[None]:
    """Run the body as a non-blockable context: anything that may sleep is a failure."""
    t = rt.current
    assert t is not None
    t.nonblock += 1
    try:
        yield
    finally:
        t.nonblock -= 1
