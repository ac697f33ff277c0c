"""Issue 14, item 4: Ctrl-C in explore, mutants and compare is answered as in stress: the
partial summary, exit code 130 (never click's "Aborted!" and exit code 1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import ROOT


def _interrupt(*args: str, after_s: float = 2.5) -> tuple[int, str, str]:
    p = subprocess.Popen(
        [sys.executable, "-m", "concsim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
    )
    time.sleep(after_s)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["explore", "--schedules", "1000000", "--json"], '"stopped_by": "interrupted"'),
        (["compare", "after-patch", "before-patch", "--schedules", "100000"], "interrupted after"),
        (["mutants", "--budget", "100000", "--json"], '"interrupted": true'),
    ],
)
def test_ctrl_c_prints_the_partial_summary_and_exits_130(args: list[str], needle: str) -> None:
    code, out, err = _interrupt(*args)
    assert code == 130, err
    assert "Aborted!" not in err
    assert "Traceback" not in err
    assert needle in out
    if "--json" in args:
        json.loads(out.strip().splitlines()[-1])
