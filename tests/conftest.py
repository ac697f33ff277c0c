from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The machines that run this suite are shared and noisy (CI runs on 2 cores beside other
# work): Hypothesis's timing checks measure the machine, not the property, so they are off.
# The examples themselves (and their number) are unchanged.
settings.register_profile("concsim", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("concsim")

ROOT = Path(__file__).resolve().parent.parent

# The failure database (concsim._db) would replay one test's failures in the next test of
# the same target: tests run with it off, and the tests of the database turn it on.
os.environ["CONCSIM_DB"] = "off"


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m concsim ARGS`` in a fresh process."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run(
        [sys.executable, "-m", "concsim", *args],
        capture_output=True,
        text=True,
        env=e,
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli():
    return run_cli


pytest_plugins = ["pytester"]
