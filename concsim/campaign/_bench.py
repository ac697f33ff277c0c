"""Scaling benchmark: campaign schedules/s with 1 and 2 workers, local and Dask.

Each configuration runs the same open-ended campaign (seeds from 0) for a fixed time budget
into a temporary folder, through the real campaign loop (batching, failure writing,
manifest), ``repeats`` times in interleaved rounds, so that a burst of load from elsewhere
on the machine hits every configuration alike; the median is reported.  The rate is
schedules over the loop's wall time; the time to start the workers (processes or a
``LocalCluster``) is reported apart.  Dask is skipped with a note when ``distributed`` is
not installed.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import click

from concsim.campaign._runner import CampaignSpec, run_campaign
from concsim.campaign._spec import SeedRange, default_strategy
from concsim.campaign._worker import Job
from concsim.scenarios import get_scenario

CONFIGS: tuple[tuple[str, int], ...] = (("local", 1), ("local", 2), ("dask", 1), ("dask", 2))


def scaling_bench(
    scenario: str,
    variant: str | None = None,
    seconds: float = 5.0,
    configs: tuple[tuple[str, int], ...] = CONFIGS,
    repeats: int = 1,
) -> dict[str, Any]:
    from concsim.runs import resolve_variant

    scn = get_scenario(scenario)
    vname, _ = resolve_variant(scn, variant)
    job = Job(scn.name, vname, dict(scn.resolve_params(None)), default_strategy())
    rows: list[dict[str, Any]] = []
    for backend, workers in configs:
        row: dict[str, Any] = {"backend": backend, "workers": workers, "rates": []}
        if backend == "dask":
            try:
                import distributed  # noqa: F401
            except ImportError:
                row["skipped"] = "distributed is not installed (pip install 'concsim[dask]')"
        rows.append(row)
    for _ in range(repeats):
        for row in rows:
            if "skipped" in row:
                continue
            with tempfile.TemporaryDirectory(prefix="concsim-bench-") as tmp:
                spec = CampaignSpec(
                    job=job,
                    seeds=SeedRange(0, None),
                    out=Path(tmp) / "out",
                    budget_s=seconds,
                    workers=row["workers"],
                    backend=row["backend"],
                )
                res = run_campaign(spec)
            row["rates"].append(round(res.schedules_per_s, 1))
            row.setdefault("startup_s", []).append(round(res.startup_s, 3))
    for row in rows:
        if row["rates"]:
            row["schedules_per_s"] = statistics.median(row["rates"])
    base = {
        r["backend"]: r["schedules_per_s"]
        for r in rows
        if r["workers"] == 1 and "schedules_per_s" in r
    }
    for r in rows:
        if "schedules_per_s" in r and base.get(r["backend"]):
            r["speedup_vs_1"] = round(r["schedules_per_s"] / base[r["backend"]], 2)
    return {
        "repeats": repeats,
        "scenario": scn.name,
        "variant": vname,
        "strategy": job.strategy,
        "seconds_each": seconds,
        "runs": rows,
    }


def print_bench(r: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(r))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"campaign scaling: {r['scenario']} / {r['variant']} / {r['strategy']}, "
        f"{r['seconds_each']:g}s each, median of {r['repeats']}"
    )
    for col in ("backend", "workers", "schedules/s", "speed-up", "each run", "startup s"):
        t.add_column(col, justify="left" if col == "backend" else "right")
    for row in r["runs"]:
        if "skipped" in row:
            t.add_row(row["backend"], str(row["workers"]), "-", "-", "-", row["skipped"])
            continue
        t.add_row(
            row["backend"],
            str(row["workers"]),
            f"{row['schedules_per_s']:,.0f}",
            f"{row.get('speedup_vs_1', 1.0):.2f}x",
            " ".join(f"{x:,.0f}" for x in row["rates"]),
            " ".join(f"{x:.2f}" for x in row["startup_s"]),
        )
    Console().print(t)
