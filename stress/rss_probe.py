"""Memory of a long campaign: run ``concsim stress`` and sample the RSS of its processes.

    .venv/bin/python stress/rss_probe.py [--seeds 0:300000] [--every 1.0] [-- more args]

Samples VmRSS (from /proc) of the campaign's parent and of every process below it once per
``--every`` seconds, and prints the first, middle and last samples and the peak: flat
memory means the last samples look like the first ones.  Linux only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(x) for x in (task / "children").read_text().split()]
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description="RSS of a long concsim stress campaign")
    ap.add_argument("--seeds", default="0:300000")
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("rest", nargs="*", help="more concsim stress arguments (after --)")
    a = ap.parse_args()
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="concsim-rss-") as tmp:
        cmd = [sys.executable, "-m", "concsim", "stress", "--seeds", a.seeds]
        cmd += ["--out", str(Path(tmp) / "out"), "--json", *a.rest]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        while proc.poll() is None:
            pids = _tree(proc.pid)
            samples.append(
                {
                    "t": round(time.monotonic() - t0, 1),
                    "parent": _rss_mb(proc.pid),
                    "below": sorted((_rss_mb(p) for p in pids[1:]), reverse=True),
                }
            )
            time.sleep(a.every)
        out = proc.stdout.read() if proc.stdout else ""
    result = json.loads(out.strip().splitlines()[-1])
    pick = [samples[1], samples[len(samples) // 2], samples[-1]] if len(samples) > 2 else samples
    for s in pick:
        below = ", ".join(f"{w:.1f}" for w in s["below"] if w)
        print(f"t={s['t']}s  parent {s['parent']:.1f} MB  processes below it [{below}] MB")
    peak = max(s["parent"] for s in samples)
    peak_below = max((max(s["below"], default=0.0) for s in samples), default=0.0)
    print(
        f"peak RSS: parent {peak:.1f} MB, largest process below it {peak_below:.1f} MB "
        f"({len(samples)} samples); campaign: {result['schedules']} schedules at "
        f"{result['schedules_per_s']} schedules/s, {result['failures']} failures"
    )


if __name__ == "__main__":
    main()
