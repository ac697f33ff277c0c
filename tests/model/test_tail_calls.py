"""The driver methods written as tail calls (a plain method returning the coroutine it
hands over to) can be overridden by an ``async def`` that awaits ``super()``, and give the
same schedule as the shipped ones (docs/variant-api.md)."""

from __future__ import annotations

from collections.abc import Awaitable

import numpy as np
import pytest

from concsim.driver import AfterPatch
from concsim.driver._region import MSHV_INVALID_PFN, MshvMemRegion
from concsim.engine import FailureSignal, Runtime
from concsim.runs import RunConfig, resolve
from concsim.scenarios._mshv_world import MshvWorld
from concsim.strategies import RandomWalk


class AsyncOverrides(AfterPatch):
    name = "async-tail-call-overrides"

    async def mshv_region_chunk_remap(
        self, region: MshvMemRegion, flags: int, off: int, count: int, huge: bool
    ) -> int:
        self.rt.count("override_chunk_remap")
        return await super().mshv_region_chunk_remap(region, flags, off, count, huge)

    async def mshv_region_remap_pfns(
        self, region: MshvMemRegion, flags: int, off: int, count: int
    ) -> int:
        self.rt.count("override_remap_pfns")
        return await super().mshv_region_remap_pfns(region, flags, off, count)

    async def mshv_map_movable_region(self, region: MshvMemRegion) -> int:
        self.rt.count("override_map_movable")
        return await super().mshv_map_movable_region(region)


def _run(variant: type[AfterPatch], seed: int) -> tuple[list[int], dict[str, int]]:
    w = resolve(RunConfig(scenario="default", seed=seed))
    rt = Runtime(RandomWalk(seed), max_steps=100_000, trace=False)
    MshvWorld(rt, dict(w.params), variant).spawn_tasks()
    assert rt.run() is None
    return list(rt.choices), dict(rt.stats)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_async_overrides_of_tail_calls_run_the_same_schedule(seed: int) -> None:
    base_choices, base_stats = _run(AfterPatch, seed)
    choices, stats = _run(AsyncOverrides, seed)
    assert choices == base_choices
    assert stats.pop("override_map_movable") == 1
    assert stats.pop("override_remap_pfns") >= 1
    # One chunk, one map hypercall here (a deposit is retried inside the hypercall).
    assert stats.pop("override_chunk_remap") == base_stats["hypercalls"]
    assert stats == base_stats


def test_a_tail_call_is_awaitable_and_checks_at_the_call() -> None:
    """The S9 range check of a tail call runs when it is called, before anything is
    awaited, as it did inside the coroutine."""
    w = resolve(RunConfig(scenario="default", seed=0))
    rt = Runtime(RandomWalk(0), trace=False)
    world = MshvWorld(rt, dict(w.params), AfterPatch)
    region = world.driver._new_region(0, 4, 1024, 0)
    region.mreg_pfns = np.full(4, MSHV_INVALID_PFN, dtype=np.uint64)
    call = world.driver.mshv_region_chunk_remap(region, 0, 0, 1, False)
    assert isinstance(call, Awaitable)
    call.close()  # type: ignore[attr-defined]
    with pytest.raises(FailureSignal):
        world.driver.mshv_region_chunk_remap(region, 0, 3, 2, False)
