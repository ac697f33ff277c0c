"""The primitives for a world of your own (a ``build(rt)`` for :func:`concsim.check`, the
pytest fixture ``concsim_explore``): the kernel models' locks and waits, one import away.

Each takes the runtime and a name (the name is what traces, deadlock reports and lockdep
show)::

    from concsim.sync import Mutex, Completion

    def build(rt):
        lock = Mutex(rt, "lock")
        done = Completion(rt, "done")
        async def worker():
            await lock.lock()
            ...
            await lock.unlock()
            await done.complete()
        async def waiter():
            await done.wait_for_completion()
        rt.spawn("worker", worker())
        rt.spawn("waiter", waiter())

* :class:`Mutex` (``lock``/``trylock``/``unlock``), :class:`SpinLock` (``lock``/``unlock``;
  sleeping while holding one is reported), :class:`RWSem` (``down_read``/``up_read``/
  ``down_write``/``up_write``), :class:`WaitQueue` (``wait_event(cond)``/``wake_up_all``),
  :class:`Completion` (``wait_for_completion``/``complete``/``complete_all``);
* :func:`spawn` and :func:`join`: ``rt.spawn(name, coro)`` works from a running task too, and
  ``await rt.join(task)`` waits until the task has returned;
* :func:`cond_resched` (a scheduling point) and :func:`might_sleep`.

Every operation on them is a scheduling point; lock-order inversions are reported as
lockdep failures and a wait nobody ends as a deadlock.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from concsim.engine import Runtime, Task
from concsim.kernel import Completion as Completion
from concsim.kernel import Mutex as Mutex
from concsim.kernel import RWSem as RWSem
from concsim.kernel import SpinLock as SpinLock
from concsim.kernel import WaitQueue as WaitQueue
from concsim.kernel import cond_resched as cond_resched
from concsim.kernel import might_sleep as might_sleep


def spawn(rt: Runtime, name: str, coro: Coroutine[Any, Any, Any]) -> Task:
    """``rt.spawn``: add a task, while the world is built or from a running task."""
    return rt.spawn(name, coro)


async def join(rt: Runtime, task: Task) -> None:
    """``await rt.join(task)``: wait until ``task`` has returned."""
    await rt.join(task)


__all__ = [
    "Completion",
    "Mutex",
    "RWSem",
    "SpinLock",
    "Task",
    "WaitQueue",
    "cond_resched",
    "join",
    "might_sleep",
    "spawn",
]
