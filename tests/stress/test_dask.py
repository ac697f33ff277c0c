"""The Dask backend on a small LocalCluster gives the results of the local backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import run_cli
from .helpers import RACY, failure_files, last_json, manifest, reference

pytest.importorskip("distributed")


def test_dask_local_cluster_campaign(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = run_cli(
        "stress",
        *RACY,
        "--backend",
        "dask",
        "--workers",
        "2",
        "--seeds",
        "0:1500",
        "--out",
        str(out),
        "--json",
        "--keep-per-signature",
        "100000",
    )
    assert p.returncode == 1, p.stderr
    d = last_json(p.stdout)
    assert d["backend"] == "dask"
    assert d["workers"] == 2
    digest, failing = reference(0, 1500, increments=1)
    assert d["schedules"] == 1500
    assert manifest(out)["tally"]["digest"] == digest
    files = failure_files(out)
    assert set(files) == failing
    r = run_cli("replay", str(files[min(failing)]), "--json")
    assert r.returncode == 1
    assert last_json(r.stdout)["reproduced"] is True
