"""Build tiny worlds directly on the engine for primitive and failure tests."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from concsim.engine import Failure, Runtime
from concsim.strategies import RandomWalk

Builder = Callable[[Runtime], None]


def run_world(
    build: Builder, seed: int = 0, *, trace: bool = True, max_steps: int = 10_000
) -> tuple[Runtime, Failure | None]:
    rt = Runtime(RandomWalk(seed), max_steps=max_steps, trace=trace)
    build(rt)
    return rt, rt.run()


def failures_over_seeds(build: Builder, seeds: range) -> list[Failure]:
    out = []
    for s in seeds:
        _, f = run_world(build, s, trace=False)
        if f is not None:
            out.append(f)
    return out


def spawn_all(rt: Runtime, **coros: Coroutine[Any, Any, Any]) -> None:
    for name, c in coros.items():
        rt.spawn(name, c)
