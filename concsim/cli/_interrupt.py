"""Ctrl-C in the front ends, as ``concsim stress`` has always answered it.

The first Ctrl-C asks the command to stop after the schedule it is running (so the schedule
and its failure, if any, are kept), print the partial summary and exit with 130; a second
Ctrl-C raises :class:`~concsim._errors.Interrupted` at once (the command still prints what it
has).  ``Interrupted`` is a ``KeyboardInterrupt`` the engine lets through, so a user's Ctrl-C
is never mistaken for a ``KeyboardInterrupt`` raised by the model's own code.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from concsim._errors import Interrupted

#: The exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


@contextmanager
def interruptible() -> Iterator[Callable[[], bool]]:
    """Yield ``stopped()``: whether Ctrl-C was pressed since the block began."""
    presses = [0]

    def on_sigint(signum: int, frame: Any) -> None:
        presses[0] += 1
        if presses[0] > 1:
            raise Interrupted

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield lambda: presses[0] > 0
    finally:
        signal.signal(signal.SIGINT, old)
