"""The parameter-space sweep (``concsim stress --campaign sweep``): reproducible points that
cover the whole space, known findings kept apart from new failures, and the false-alarm
budget: a short sweep over the correct variants reports no new failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from concsim.campaign._sweep import (
    CORRECT_VARIANTS,
    EVENTS,
    KNOWN_FINDINGS,
    SweepPoint,
    classify,
    draw_point,
)
from concsim.scenarios import get_scenario

from ..conftest import run_cli
from .helpers import last_json

#: Points of the CI false-alarm budget (a few thousand; two workers keep it to seconds).
BUDGET_POINTS = 2000


def test_a_point_is_a_pure_function_of_its_seed() -> None:
    for seed in (0, 1, 17, 123_456, 2**40):
        assert draw_point(seed) == draw_point(seed)
    points = [draw_point(s) for s in range(50)]
    assert len({json.dumps(p.to_json(), sort_keys=True) for p in points}) == 50


def test_points_cover_the_whole_space_and_are_valid() -> None:
    scn = get_scenario("default")
    points = [draw_point(s) for s in range(3000)]
    for p in points[:300]:
        scn.resolve_params(p.params)  # every drawn value is a valid parameter
    # Every parameter but the detectors' own bounds is a dimension of the space.
    assert {q.name for q in scn.params} - {"retry_bound", "refault_bound"} == set(points[0].params)
    seen_events = {e for p in points for e in str(p.params["events"]).split(",") if e}
    assert seen_events == set(EVENTS)
    assert {p.variant for p in points} == set(CORRECT_VARIANTS)
    assert {p.strategy for p in points} == {"random", "pct"}
    pages = [int(p.params["pages"]) for p in points]
    assert min(pages) == 1
    assert max(pages) > 2000
    assert any(n % 512 in (1, 511) for n in pages)  # next to the 2 MiB boundaries
    assert any(n % 2 for n in pages)
    for name in (
        "writes",
        "writable",
        "alloc_fail",
        "direct_reclaim",
        "deposit_on_remap",
        "pinned",
        "destroy",
        "overflow_region",
    ):
        assert {bool(p.params[name]) for p in points} == {True, False}, name
    assert {p.params["hv_fail"] for p in points} == {"none", "holes", "all"}
    assert {p.params["vma_prot"] for p in points} == {"rw", "ro"}
    assert {p.params["regions"] for p in points} == {1, 2, 3, 4}
    assert {p.params["vcpus"] for p in points} == set(range(5))
    assert {p.params["populated"] for p in points} >= {0.0, 1.0}
    assert len({p.params["populated"] for p in points}) > 100
    assert any(p.params["zero_pages"] for p in points)
    assert len({p.params["align"] for p in points}) > 200
    assert {p.params["audit_every"] for p in points} == {0, 1, 7, 50}


def test_pinned_dimensions_override_the_draw() -> None:
    p = draw_point(5, fixed={"pages": 64, "events": "exit"}, variant="v3", strategy="pct")
    assert p.params["pages"] == 64
    assert p.params["events"] == "exit"
    assert (p.variant, p.strategy) == ("v3", "pct")
    q = draw_point(5)
    assert {k: v for k, v in p.params.items() if k not in ("pages", "events")} == {
        k: v for k, v in q.params.items() if k not in ("pages", "events")
    }


def _point(variant: str, **params: object) -> SweepPoint:
    base = dict(draw_point(0).params)
    base.update(
        events="",
        zero_pages=0,
        vma_prot="rw",
        hv_fail="none",
        direct_reclaim=False,
        deposit_on_remap=False,
        destroy=False,
    )
    base.update(params)
    return SweepPoint("mshv", 0, "default", variant, "random", base)


def test_known_findings_are_narrow_predicates_over_point_and_signature() -> None:
    names = [k.name for k in KNOWN_FINDINGS]
    assert len(names) == len(set(names))
    zero = "v1v2-creation-maps-zero-page-writable"
    assert classify(_point("after-patch", zero_pages=3), "safety", "S7", "slat_write") == zero
    # v3 added the COW skip: the same failure there is new, as is another invariant.
    assert classify(_point("v3", zero_pages=3), "safety", "S7", "slat_write") is None
    assert classify(_point("after-patch", zero_pages=3), "safety", "S1", "slat_write") is None
    ro = "writable-over-readonly-vma"
    assert classify(_point("v3", events="mprotect"), "safety", "S7", "slat_write") == ro
    mainline_ro = "mainline-write-fault-on-readonly-vma"
    assert classify(_point("before-patch", vma_prot="ro"), "liveness", "L3", "x") == mainline_ro
    # Each revision has its own symptom: mainline never maps over the read-only VMA, and
    # the series never fails the fault there.
    assert classify(_point("before-patch", vma_prot="ro"), "safety", "S7", "slat_write") is None
    assert classify(_point("v3", vma_prot="ro"), "liveness", "L3", "x") is None
    assert classify(_point("v3", events="migrate"), "safety", "S7", "slat_write") is None
    dr = "direct-reclaim-under-mreg-mutex"
    assert classify(_point("v3", direct_reclaim=True), "lock-order", "S4", "lockdep") == dr
    assert classify(_point("before-patch", direct_reclaim=True), "lock-order", "S4", "l") is None
    assert (
        classify(
            _point("before-patch", direct_reclaim=True, deposit_on_remap=True),
            "lock-order",
            "S4",
            "lockdep",
        )
        == dr
    )
    # Mainline deposits on a fault once a failed remap's rollback unmapped its entries.
    mainline_holes = _point("before-patch", direct_reclaim=True, hv_fail="holes")
    assert classify(mainline_holes, "lock-order", "S4", "lockdep") == dr
    destroy = "destroy-removes-notifier-first"
    pt = _point("stateless", destroy=True, events="reclaim")
    assert classify(pt, "safety", "S1", "pte_changed") == destroy
    assert classify(_point("stateless", destroy=True), "safety", "S1", "pte_changed") is None
    # A variant that is not a correct one (a mutant) never has known findings.
    assert classify(_point("no-read-retry", zero_pages=3), "safety", "S7", "slat_write") is None


def test_false_alarm_budget_a_short_sweep_has_no_new_failure(tmp_path: Path) -> None:
    """The CI budget for false alarms: a few thousand points of the whole space, each a
    correct variant, must report zero new failures (known findings are allowed)."""
    out = tmp_path / "out"
    p = run_cli(
        "stress",
        "--campaign",
        "sweep",
        "--seeds",
        f"0:{BUDGET_POINTS}",
        "--workers",
        "2",
        "--out",
        str(out),
        "--json",
        timeout=600,
    )
    d = last_json(p.stdout)
    news = [s for s in d["signatures"] if not s["known"]]
    assert p.returncode == 0, (news, p.stderr[-2000:])
    assert d["schedules"] == BUDGET_POINTS
    assert d["new_failures"] == 0
    assert d["known_findings"] == d["failures"] > 0
    assert not (out / "failures").exists()
    # A known finding's replay file records the point's seed and reruns the same failure.
    known = d["signatures"][0]
    f = out / known["folder"] / f"seed-{known['seeds'][0]}.json"
    data = json.loads(f.read_text())
    assert data["extra"]["sweep"] == {"space": "mshv", "seed": known["seeds"][0]}
    assert data["extra"]["known_finding"] == known["known"]
    r = run_cli("replay", str(f), "--json")
    assert r.returncode == 1, r.stderr
    assert last_json(r.stdout)["reproduced"] is True


@pytest.mark.parametrize("workers", ["1"])
def test_a_new_failure_fails_the_sweep_and_replays(tmp_path: Path, workers: str) -> None:
    """Pinning a mutant as the variant: its failures are new (exit 1), written under
    failures/, and each replay file reruns its point."""
    out = tmp_path / "out"
    p = run_cli(
        "stress",
        "--campaign",
        "sweep",
        "--variant",
        "no-read-retry",
        "--param",
        "hv_fail=none",
        "--seeds",
        "0:60",
        "--workers",
        workers,
        "--shrink-runs",
        "0",
        "--out",
        str(out),
        "--json",
    )
    assert p.returncode == 1, p.stderr
    d = last_json(p.stdout)
    assert d["new_failures"] > 0
    assert d["known_findings"] == 0
    new = d["signatures"][0]
    assert new["known"] is None
    f = out / new["folder"] / f"seed-{new['seeds'][0]}.json"
    data = json.loads(f.read_text())
    assert data["variant"] == "no-read-retry"
    assert data["params"]["hv_fail"] == "none"
    assert data["extra"]["sweep"]["seed"] == new["seeds"][0]
    r = run_cli("replay", str(f), "--json")
    assert r.returncode == 1, r.stderr
    assert last_json(r.stdout)["reproduced"] is True


def test_a_bad_pinned_parameter_is_a_one_line_error(tmp_path: Path) -> None:
    p = run_cli("stress", "--campaign", "sweep", "--param", "pages=0", "--out", str(tmp_path))
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1
    assert "pages" in p.stderr
