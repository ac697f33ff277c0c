"""A scenario whose model kills its own process on some seeds (for worker-death tests).

``--import tests.stress.crashy`` registers it in every worker.  With ``mode=exit`` the
model calls ``os._exit(3)`` on the seeds whose schedule hits the crash condition, as a
model with a hard bug in native code would; ``mode=raise`` raises instead, so a test can
find those seeds in-process without dying.
"""

from __future__ import annotations

import os
import zlib
from array import array
from typing import Any

from concsim.engine import Runtime
from concsim.scenarios import Param, Scenario, register
from concsim.scenarios._registry import ParamValue

#: About one schedule in this many crashes.
ONE_IN = 150


def _build(rt: Runtime, params: dict[str, ParamValue], variant: Any) -> None:
    async def worker(name: str) -> None:
        for i in range(8):
            await rt.point("tick", name, i)
        if zlib.crc32(array("q", rt.choices).tobytes()) % ONE_IN == 0:
            if params["mode"] == "exit":
                os._exit(3)
            raise RuntimeError("crash")

    rt.spawn("a", worker("a"))
    rt.spawn("b", worker("b"))


register(
    Scenario(
        name="crashy",
        summary="test-only: the model kills its process on about one seed in 150",
        build=_build,
        params=(Param("mode", str, "exit", "exit or raise", choices=("exit", "raise")),),
    )
)
