"""Hand-built mshv worlds for the oracle tests.

``run_mshv(body)`` builds a :class:`MshvWorld` with the ``default`` scenario's parameters
(no vCPUs, no primary-MMU events unless the test asks), creates the first region with the
driver, then runs ``body(w)`` in the same task.  Every choice is 0 (ordinary hypercall and
allocation outcomes), so one call is one deterministic run.

After-patch creation of the default region (64 pages at hva page 1024, gfn 0, every even
offset populated): even gfns map their page READABLE|WRITABLE|ADJUSTABLE, odd gfns are
NO_ACCESS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from concsim.driver import AfterPatch, MshvDriverBase
from concsim.driver._region import MshvMemRegion
from concsim.engine import Failure, Runtime
from concsim.kernel._hv import HV_MAP_GPA_ADJUSTABLE, HV_MAP_GPA_READABLE, HV_MAP_GPA_WRITABLE
from concsim.scenarios import get_scenario
from concsim.scenarios._mshv_world import MshvWorld
from concsim.strategies import Replay

RW = HV_MAP_GPA_READABLE | HV_MAP_GPA_WRITABLE | HV_MAP_GPA_ADJUSTABLE
RO = HV_MAP_GPA_READABLE | HV_MAP_GPA_ADJUSTABLE

Body = Callable[[MshvWorld, MshvMemRegion], Awaitable[None]]


def make_world(rt: Runtime, variant: type[MshvDriverBase] = AfterPatch, **params: Any) -> MshvWorld:
    scn = get_scenario("default")
    p = scn.resolve_params({"vcpus": 0, "events": "", **params})
    return MshvWorld(rt, p, variant)


def run_mshv(
    body: Body | None = None,
    *,
    variant: type[MshvDriverBase] = AfterPatch,
    create: bool = True,
    **params: Any,
) -> tuple[MshvWorld, Runtime, Failure | None]:
    rt = Runtime(Replay([], strict=False), max_steps=50_000, trace=True)
    w = make_world(rt, variant, **params)

    async def main() -> None:
        region = None
        if create:
            ret = await w.driver.mshv_map_user_memory(w.partition, w.mems[0])
            assert ret == 0, ret
            region = w.partition.pt_mem_regions[0]
        if body is not None:
            await body(w, region)  # type: ignore[arg-type]

    rt.spawn("test", main())
    return w, rt, rt.run()


def pfns(*p: int) -> np.ndarray:
    return np.array(p, dtype=np.int64)


def expect(f: Failure | None, kind: str, invariant: str | None, where: str | None = None) -> None:
    assert f is not None, "expected a failure, the run was clean"
    assert (f.kind, f.invariant) == (kind, invariant), f
    if where is not None:
        assert f.details.get("where") == where, f


def clean(f: Failure | None) -> None:
    if f is not None:
        raise AssertionError(
            f"{f.kind} ({f.invariant}): {f.message}\n{f.details.get('traceback', '')}"
        )
