"""Footprints are complete: a step that changes a model array reports a write to it.

Partial-order reduction is only as sound as the footprints: a step that changes shared
state without reporting it looks independent of the steps that read that state, and
reduced DFS then prunes orderings that matter (issue 11).  This audit runs random
schedules of the mshv worlds with every primary-MMU event and, at every step boundary,
compares the page allocator, the SLAT and the page table with their state at the step's
start: each array that changed must be in the step's footprint as a write.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from concsim.engine import Runtime, Task
from concsim.strategies import RandomWalk, StepObserver

from .test_dfs import make_target

#: Which object of the footprint owns which arrays of the world.
_OWNERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pages": ("pages", ("refcount", "order", "generation", "pincount")),
    "page_data": ("pages", ("data",)),
    "slat": ("slat", ("flags", "pfn", "refs")),
    "pt": ("mm", ("pte_state", "pte_pfn", "pte_write")),
}


class WriteAudit(StepObserver):
    """A step observer that checks, at each step's end, that every owner whose arrays
    changed during the step was reported written."""

    def __init__(self, world: Any) -> None:
        super().__init__()
        self.world = world
        self.missing: list[tuple[str, str]] = []
        self._before = self._snapshot()

    def _snapshot(self) -> dict[str, bytes]:
        out = {}
        for obj, (attr, arrays) in _OWNERS.items():
            holder = getattr(self.world, attr)
            out[obj] = b"".join(np.ascontiguousarray(getattr(holder, a)).tobytes() for a in arrays)
        return out

    def _check(self) -> None:
        now = self._snapshot()
        acc = self._acc or {}
        for obj, data in now.items():
            if data != self._before[obj]:
                got = acc.get(obj)
                if got is None or got[2]:  # not reported, or reported as a read only
                    self.missing.append((obj, self._op))
        self._before = now

    def begin_step(self, task: Task, choice: int) -> None:
        if self._acc is not None:
            self._check()
        else:
            self._before = self._snapshot()  # the world was built before the first step
        super().begin_step(task, choice)

    def finish_steps(self) -> Any:
        if self._acc is not None:
            self._check()
        return super().finish_steps()


@pytest.mark.parametrize(
    ("scenario", "variant", "params"),
    [
        ("small", "after-patch", {"events": "migrate,reclaim,munmap,oom,madvise,numa"}),
        ("small", "before-patch", {"events": "mprotect,ksm,thp,exit,straddle", "destroy": 1}),
        ("default", "v3", {"events": "migrate,reclaim,munmap,madvise,mprotect,numa,ksm,thp"}),
        ("default", "stateless", {"pinned": 1, "destroy": 1}),
    ],
)
def test_every_changed_array_is_in_the_step_footprint(
    scenario: str, variant: str, params: dict[str, object]
) -> None:
    from concsim.scenarios._mshv_world import MshvWorld

    t = make_target(scenario, variant, params)
    missing: set[tuple[str, str]] = set()
    for seed in range(12):
        rt = Runtime(RandomWalk(seed), max_steps=50_000, trace=False)
        world = MshvWorld(rt, dict(t.params), t.variant_obj)
        world.spawn_tasks()
        audit = WriteAudit(world)
        audit.attach(rt)
        rt.run()
        audit.finish_steps()
        missing.update(audit.missing)
    assert not missing, sorted(missing)
