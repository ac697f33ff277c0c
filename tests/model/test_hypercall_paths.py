"""The per-path hypercall counters (``hypercalls.<label>``) wrap each driver class's own
methods once, and follow a method replaced on the class afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from concsim.driver import AfterPatch
from concsim.driver._region import MshvMemRegion
from concsim.engine import Runtime
from concsim.runs import RunConfig, resolve
from concsim.scenarios._mshv_world import MshvWorld
from concsim.strategies import RandomWalk


class _Probe(AfterPatch):
    name = "path-wrapper-probe"


def _run(variant: type[AfterPatch]) -> tuple[MshvWorld, dict[str, Any]]:
    w = resolve(RunConfig(scenario="default", seed=0))
    rt = Runtime(RandomWalk(0), max_steps=100_000, trace=False)
    world = MshvWorld(rt, dict(w.params), variant)
    world.spawn_tasks()
    assert rt.run() is None
    return world, rt.stats


def test_a_method_replaced_on_the_class_is_wrapped_for_the_next_driver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, stats = _run(_Probe)
    assert stats["hypercalls.creation"] >= 1
    assert first.driver.mshv_map_movable_region.__wrapped__ is _Probe.mshv_map_movable_region

    async def counted(self: _Probe, region: MshvMemRegion) -> int:
        self.rt.count("probe_creations")
        return await AfterPatch.mshv_map_movable_region(self, region)

    monkeypatch.setattr(_Probe, "mshv_map_movable_region", counted, raising=False)
    second, stats2 = _run(_Probe)
    assert second.driver.mshv_map_movable_region.__wrapped__ is counted
    assert stats2["probe_creations"] == 1
    # The new method's hypercalls are still counted under its path.
    assert stats2["hypercalls.creation"] == stats["hypercalls.creation"]


def test_a_non_function_path_is_wrapped_bound() -> None:
    class Static(AfterPatch):
        name = "path-wrapper-static"

        @staticmethod
        async def mshv_region_unmap(region: MshvMemRegion) -> int:  # type: ignore[override]
            return 0

    w = resolve(RunConfig(scenario="default", seed=0))
    rt = Runtime(RandomWalk(0), trace=False)
    world = MshvWorld(rt, dict(w.params), Static)
    got: list[int] = []

    async def task() -> None:
        got.append(await world.driver.mshv_region_unmap(MshvMemRegion.__new__(MshvMemRegion)))

    rt.spawn("t", task())
    assert rt.run() is None
    assert got == [0]
