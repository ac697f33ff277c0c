"""explore_async: the same result as explore, from a trio host that keeps running."""

from __future__ import annotations

import trio

import concsim


async def test_explore_async_matches_sync() -> None:
    ticks = 0

    async def noise() -> None:
        nonlocal ticks
        for _ in range(100):
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(noise)
        ra = await concsim.explore_async(
            "counter", variant="racy", strategy="dfs", stop_on_failure=False
        )
    rs = concsim.explore("counter", variant="racy", strategy="dfs", stop_on_failure=False)
    assert ticks == 100
    assert (ra.executions, ra.failures, ra.complete) == (rs.executions, rs.failures, True)
    assert ra.coverage.to_json() == rs.coverage.to_json()
