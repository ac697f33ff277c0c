"""Seeded random walk: at every choice, a uniformly random candidate.

The generator is :class:`random.Random` seeded with an integer: the Mersenne Twister's
output for a given seed is specified and identical on every platform, so a seed names one
schedule for a given model.  Environment choices (hypercall and allocation outcomes) take
their non-ordinary outcomes with probability ``env_p`` each time, so that failures of the
environment are explored without drowning the runs in them.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concsim.engine import Runtime


class RandomWalk:
    name = "random"

    def __init__(self, seed: int, *, env_p: float = 0.1) -> None:
        self.seed = seed
        self.env_p = env_p
        self._random = random.Random(seed).random

    def pick_task(self, rt: Runtime, n: int) -> int:
        return int(self._random() * n)

    def pick_env(self, rt: Runtime, label: str, n: int) -> int:
        r = self._random
        if r() >= self.env_p:
            return 0
        return 1 + int(r() * (n - 1))
