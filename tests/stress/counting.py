"""A test scenario with the mshv model's counters: faults handled and EBUSY retries."""

from __future__ import annotations

from typing import Any

from concsim.engine import Runtime
from concsim.scenarios import Scenario, register
from concsim.scenarios._registry import ParamValue


def _build(rt: Runtime, params: dict[str, ParamValue], variant: Any) -> None:
    busy = {"held": False}

    async def vcpu(name: str) -> None:
        for _ in range(2):
            rt.count("faults_handled")
            while True:
                await rt.point("try", "region")
                if not busy["held"]:
                    break
                rt.count("ebusy_retries")
            busy["held"] = True
            await rt.point("map", "region")
            busy["held"] = False

    rt.spawn("v0", vcpu("v0"))
    rt.spawn("v1", vcpu("v1"))


register(Scenario(name="counting", summary="test-only: counts faults and retries", build=_build))
