"""Determinism is the product: same seed, same trace, in fresh processes and under any host."""

from __future__ import annotations

import json

import anyio
import anyio.lowlevel
import pytest
import trio

import concsim

from .conftest import run_cli


def _hash_in_fresh_process(hashseed: str, *args: str) -> str:
    p = run_cli("run", "--json", *args, env={"PYTHONHASHSEED": hashseed})
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])["trace_sha256"]


@pytest.mark.parametrize(
    "args",
    [
        ("--seed", "11"),
        ("--scenario", "counter", "--variant", "racy", "--seed", "3"),
        ("--scenario", "abba", "--seed", "4"),
        ("--scenario", "small", "--variant", "stateless", "--seed", "5"),
        ("--variant", "no-read-retry", "--seed", "8", "--strategy", "pct"),
    ],
)
def test_same_seed_same_hash_under_pythonhashseed_0_1_2(args: tuple[str, ...]) -> None:
    hashes = {_hash_in_fresh_process(h, *args) for h in ("0", "1", "2")}
    assert len(hashes) == 1


def test_trio_and_asyncio_hosts_give_the_in_process_hashes() -> None:
    seeds = list(range(8))
    direct = [concsim.run("counter", variant="racy", seed=s).trace_sha256 for s in seeds]

    async def host() -> list[str | None]:
        # A noisy host: other tasks keep waking while concsim runs its schedules.
        out: list[str | None] = []
        async with anyio.create_task_group() as tg:

            async def noise() -> None:
                for _ in range(200):
                    await anyio.lowlevel.checkpoint()

            for _ in range(3):
                tg.start_soon(noise)
            res = await concsim.run_async(
                "counter", variant="racy", seeds=seeds, stop_on_failure=False
            )
            out = [r.trace_sha256 for r in res]
        return out

    assert trio.run(host) == direct
    assert anyio.run(host, backend="asyncio") == direct


async def test_run_async_returns_one_result_per_seed() -> None:
    res = await concsim.run_async("counter", variant="racy", seeds=range(100))
    assert [r.seed for r in res] == list(range(100))
    assert sum(not r.ok for r in res) > 1


async def test_run_async_under_pytest_trio() -> None:
    res = await concsim.run_async("abba", seeds=range(50), stop_on_failure=True)
    assert res[-1].failure is not None
    assert res[-1].failure.kind == "deadlock"
    assert all(r.ok for r in res[:-1])


def test_mshv_default_same_hash_in_process_and_under_trio() -> None:
    seeds = list(range(5))
    direct = [concsim.run("default", seed=s).trace_sha256 for s in seeds]
    assert len(set(direct)) == len(seeds)  # different seeds, different interleavings

    async def host() -> list[str | None]:
        res = await concsim.run_async("default", seeds=seeds, stop_on_failure=False)
        return [r.trace_sha256 for r in res]

    assert trio.run(host) == direct
    assert anyio.run(host, backend="asyncio") == direct
