"""The PNG picture of the perfetto view: layout, determinism, the CLI, the README's image."""

from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path

import pytest

import concsim
from concsim.artifacts import to_perfetto
from concsim.artifacts._timeline_png import (
    DPI,
    MAX_WIDTH_IN,
    WIDTH_IN,
    render_timeline_png,
    timeline_figure,
    timeline_layout,
)

from ..conftest import ROOT, run_cli

pytest.importorskip("matplotlib")

DOCS = ROOT / "docs"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def _chunks(data: bytes) -> list[bytes]:
    out, i = [], 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        out.append(data[i + 4 : i + 8])
        i += 12 + n
    return out


def _abba_doc() -> dict:
    res = concsim.run("abba", seed=0)
    return to_perfetto(res.trace, res.failure, title="abba")


def test_layout_has_one_row_per_track_with_the_spans_and_the_failure() -> None:
    doc = _abba_doc()
    tl = timeline_layout(doc)
    ev = doc["traceEvents"]
    tname = {e["tid"]: e["args"]["name"] for e in ev if e["name"] == "thread_name"}
    order = {e["tid"]: e["args"]["sort_index"] for e in ev if e["name"] == "thread_sort_index"}
    drawn = {e["tid"] for e in ev if e["ph"] in ("X", "i") and e.get("cat") != "failure"}
    assert [r.name for r in tl.rows] == [tname[t] for t in sorted(drawn, key=order.__getitem__)]
    assert [r.name for r in tl.rows] == ["t_ba", "t_ab"]
    x_spans = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["cat"] != "step"]
    assert sum(len(r.spans) for r in tl.rows) == len(x_spans)
    assert {(r.name, b.name, b.cat) for r in tl.rows for b in r.spans} >= {
        ("t_ab", "lock_a held", "hold"),
        ("t_ab", "waiting for lock_b", "wait"),
    }
    assert tl.failure is not None
    assert tl.failure[0] == 8
    assert tl.failure[1].startswith("FAILURE deadlock")


def test_begin_end_pairs_and_nesting_depths() -> None:
    doc = {
        "traceEvents": [
            {"name": "thread_name", "ph": "M", "ts": 0, "pid": 1, "tid": 1, "args": {"name": "t"}},
            {"name": "outer", "cat": "hold", "ph": "B", "ts": 1, "pid": 1, "tid": 1},
            {"name": "inner", "cat": "op", "ph": "X", "ts": 2, "dur": 2, "pid": 1, "tid": 1},
            {"name": "outer", "ph": "E", "ts": 6, "pid": 1, "tid": 1},
            {
                "name": "seq x",
                "cat": "instant",
                "ph": "i",
                "ts": 3,
                "pid": 1,
                "tid": 1,
                "args": {"detail": "set_seq: 5"},
            },
        ]
    }
    tl = timeline_layout(doc)
    (row,) = tl.rows
    depth = {b.name: b.depth for b in row.spans}
    assert depth == {"outer": 0, "inner": 1}
    assert row.instants == [(3.0, "instant", "set_seq: 5")]
    assert tl.failure is None
    assert tl.end == 6


def test_render_is_deterministic_sized_and_without_software_metadata() -> None:
    doc = _abba_doc()
    a = render_timeline_png(doc)
    b = render_timeline_png(json.loads(json.dumps(doc)))
    assert a == b
    w, _h = _png_size(a)
    assert int(WIDTH_IN * DPI) <= w <= int(MAX_WIDTH_IN * DPI) + DPI
    assert b"tEXt" not in _chunks(a) or b"Software" not in a


def test_replay_trace_png_cli(tmp_path: Path) -> None:
    res = concsim.run("abba", seed=0)
    path = concsim.save_failure(res, str(tmp_path))
    out = tmp_path / "t.png"
    p = run_cli("replay", path, "--trace", "png", "-o", str(out))
    assert p.returncode == 1, p.stderr
    assert out.read_bytes() == render_timeline_png(
        to_perfetto(res.trace, res.failure, title="concsim abba/abba")
    )
    p = run_cli("replay", path, "--trace", "png")
    assert p.returncode == 2
    assert "give it an -o FILE.png" in p.stderr


def test_the_readme_trace_files_match_their_replay() -> None:
    """docs/trace-no-read-retry.json is the perfetto view of docs/replay-no-read-retry.json
    (regenerate both with the commands in the README), and the PNG beside it is an image of
    the same size the renderer makes."""
    out = concsim.replay(str(DOCS / "replay-no-read-retry.json"))
    assert out.reproduced
    res = out.result
    committed = json.loads((DOCS / "trace-no-read-retry.json").read_text())
    meta = committed["otherData"]
    fresh = to_perfetto(
        res.trace,
        res.failure,
        title=f"concsim {res.scenario}/{res.variant}",
        metadata={k: meta[k] for k in ("replay_file", "schedule", "seed")},
    )
    assert committed == json.loads(json.dumps(fresh))
    png = (DOCS / "trace-no-read-retry.png").read_bytes()
    assert _png_size(png) == _png_size(render_timeline_png(committed))


def test_the_legend_names_every_kind_of_mark() -> None:
    """Issue 14: the legend left out the instants' markers and the failure line."""
    from concsim.artifacts._timeline_png import legend_handles

    handles = legend_handles()
    labels = [h.get_label() for h in handles]
    assert labels == [
        "step",
        "lock held",
        "waiting",
        "hypercall",
        "other span",
        "event",
        "other instant",
        "failure",
    ]
    markers = {h.get_marker() for h in handles if hasattr(h, "get_marker")}
    assert {"v", "x"} <= markers  # the two instant markers the picture draws


def _drawn(doc: dict) -> tuple:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = timeline_figure(doc)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return fig, canvas.get_renderer()


def _labels(fig, gid: str) -> list:
    (ax,) = fig.axes
    return [t for t in ax.texts if t.get_gid() == gid]


def test_labels_are_whole_and_inside_their_boxes_on_the_readme_trace() -> None:
    """Issue 14: step labels were cut (``mm.mmap_``, ``notifier_i...``) by a fixed-width
    figure, and two instants of one step drew their details over each other.  On the
    README's trace every step label is whole (wrapped, never shortened) and lies inside
    its box; no two instant details of a row overlap; the row names lie inside the
    figure."""
    doc = json.loads((DOCS / "trace-no-read-retry.json").read_text())
    fig, renderer = _drawn(doc)
    (ax,) = fig.axes
    steps = _labels(fig, "step-label")
    assert len(steps) == sum(len(r.steps) for r in timeline_layout(doc).rows)
    for t in steps:
        assert "…" not in t.get_text(), t.get_text()
        x = t.get_position()[0]
        left = ax.transData.transform((x - 0.46, 0))[0]
        right = ax.transData.transform((x + 0.46, 0))[0]
        bb = t.get_window_extent(renderer)
        assert left <= bb.x0, t.get_text()
        assert bb.x1 <= right, t.get_text()
    # The object names the old picture cut are shown whole, wrapped at '.' or '_'.
    texts = [t.get_text().replace("\n", "") for t in steps]
    assert any("notifier_insert" in s for s in texts)
    assert any("mm.mmap_lock" in s for s in texts)
    assert any("region0.mreg_mni.invalidate_seq" in s for s in texts)
    instants = _labels(fig, "instant-label")
    by_row: dict[float, list] = {}
    for t in instants:
        by_row.setdefault(t.get_position()[1], []).append(t.get_window_extent(renderer))
    for boxes in by_row.values():
        boxes.sort(key=lambda b: b.x0)
        for a, b in itertools.pairwise(boxes):
            assert a.x1 <= b.x0
    assert any("set_seq: 3" in t.get_text() for t in instants)
    for t in ax.get_yticklabels():
        assert t.get_window_extent(renderer).x0 >= 0, t.get_text()


def test_a_trace_too_long_for_the_widest_figure_shortens_with_an_ellipsis() -> None:
    """Past MAX_WIDTH_IN, step labels are shortened, visibly (an ellipsis), and still
    stay inside their boxes."""
    long = "a_very_long_operation_name_that_will_not_fit_anywhere"
    events = [
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "t"}},
        *(
            {
                "ph": "X",
                "name": f"{long}{i} obj",
                "cat": "step",
                "ts": i,
                "dur": 1,
                "pid": 1,
                "tid": 1,
            }
            for i in range(70)
        ),
    ]
    doc = {"traceEvents": events}
    fig, renderer = _drawn(doc)
    assert fig.get_figwidth() <= MAX_WIDTH_IN + 2
    (ax,) = fig.axes
    steps = _labels(fig, "step-label")
    assert steps
    assert all("…" in t.get_text() for t in steps)
    for t in steps:
        x = t.get_position()[0]
        right = ax.transData.transform((x + 0.46, 0))[0]
        assert t.get_window_extent(renderer).x1 <= right
