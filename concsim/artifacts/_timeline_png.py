"""A PNG picture of a Chrome trace-event document (the ``perfetto`` view), with matplotlib.

There is no Perfetto UI offline, so this draws what it would show, in one still image:
one row per track (a task, or a ``task [object]`` sub-track), in the tracks' sort order;
on each row the one-step slices of the task (grey, labelled with the operation when the
trace is short enough), the spans above them (``X`` events and matched ``B``/``E`` pairs:
lock holds blue, waits orange and hatched, hypercalls green, anything else grey), nested
spans stacked upwards, instants as markers labelled with their detail (``set_seq: 3``),
and the failure as a red line across every row with its kind and invariant.

Output is deterministic: the Agg backend, a fixed size and dpi, the DejaVu fonts matplotlib
ships, and no ``Software`` or date metadata in the file, so the same document gives the
same bytes with the same matplotlib.  matplotlib is an optional dependency (the ``plot``
extra); :func:`render_timeline_png` raises :class:`concsim.UsageError` without it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concsim._errors import UsageError

#: Width of the figure in inches (at least; up to MAX_WIDTH_IN when step labels need it)
#: and its resolution.
WIDTH_IN = 16.0
MAX_WIDTH_IN = 60.0
#: Size of a step box's label, in points.
STEP_PT = 5.5
DPI = 110
ROW_IN = 1.15
#: Label every step slice with its operation only up to this many steps.
LABEL_STEPS = 80

_COLORS = {"hold": "#4c78a8", "wait": "#f58518", "op": "#54a24b"}
_OTHER = "#9d9d9d"


@dataclass
class Bar:
    start: float
    end: float
    name: str
    cat: str
    depth: int = 0


@dataclass
class Row:
    tid: int
    name: str
    sort_index: int
    steps: list[Bar] = field(default_factory=list)
    spans: list[Bar] = field(default_factory=list)
    instants: list[tuple[float, str, str]] = field(default_factory=list)  # (ts, cat, label)


@dataclass
class Timeline:
    title: str
    rows: list[Row]
    end: float
    failure: tuple[float, str, str] | None  # (ts, label, message)


def timeline_layout(doc: Mapping[str, Any]) -> Timeline:
    """The rows, bars and markers the picture shows (what the renderer draws; also testable)."""
    events = doc.get("traceEvents")
    if not isinstance(events, list):
        raise UsageError("not a trace-event document: no traceEvents list")
    names: dict[int, str] = {}
    order: dict[int, int] = {}
    title = "concsim"
    for e in events:
        if e.get("ph") != "M":
            continue
        if e["name"] == "thread_name":
            names[e["tid"]] = str(e["args"]["name"])
        elif e["name"] == "thread_sort_index":
            order[e["tid"]] = int(e["args"]["sort_index"])
        elif e["name"] == "process_name":
            title = str(e["args"]["name"])
    rows: dict[int, Row] = {}

    def row(tid: int) -> Row:
        if tid not in rows:
            rows[tid] = Row(tid, names.get(tid, f"tid {tid}"), order.get(tid, tid * 100))
        return rows[tid]

    end = 0.0
    failure = None
    open_b: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        ph = e.get("ph")
        tid = int(e.get("tid", 0))
        ts = float(e.get("ts", 0))
        if ph == "X":
            name = str(e["name"])
            label = (e.get("args") or {}).get("label")
            if e.get("cat") == "op" and label:
                # A hypercall span: say what it did (its first call's fields, as text).
                name = str(label)
            bar = Bar(ts, ts + float(e.get("dur", 0)), name, str(e.get("cat", "")))
            (row(tid).steps if bar.cat == "step" else row(tid).spans).append(bar)
            end = max(end, bar.end)
        elif ph == "B":
            open_b.setdefault(tid, []).append(e)
        elif ph == "E" and open_b.get(tid):
            b = open_b[tid].pop()
            row(tid).spans.append(Bar(float(b["ts"]), ts, str(b["name"]), str(b.get("cat", ""))))
            end = max(end, ts)
        elif ph in ("i", "I"):
            cat = str(e.get("cat", ""))
            args = e.get("args") or {}
            if cat == "failure":
                inv = f" [{args['invariant']}]" if args.get("invariant") else ""
                failure = (ts, f"{e['name']}{inv} at step {int(ts)}", str(args.get("message", "")))
            else:
                label = str(args.get("detail") or e["name"])
                row(tid).instants.append((ts, cat, label))
            end = max(end, ts + 1)
    for tid in (t for t in names if t not in rows and t != 0):
        row(tid)
    for r in rows.values():
        _stack(r.spans)
    out = sorted(rows.values(), key=lambda r: (r.sort_index, r.tid))
    if failure is not None:
        end = max(end, failure[0] + 1)
    return Timeline(title, out, end, failure)


def _stack(spans: list[Bar]) -> None:
    """Give nested spans increasing depths (outer first), so they are drawn stacked."""
    spans.sort(key=lambda b: (b.start, -(b.end - b.start), b.name))
    stack: list[Bar] = []
    for b in spans:
        while stack and stack[-1].end <= b.start:
            stack.pop()
        b.depth = len(stack)
        stack.append(b)


def render_timeline_png(doc: Mapping[str, Any]) -> bytes:
    """The PNG bytes of the picture of ``doc`` (a Chrome trace-event JSON object)."""
    fig = timeline_figure(doc)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


@functools.lru_cache(maxsize=4096)
def _text_width_in(s: str, size: float) -> float:
    """The width of ``s`` drawn at ``size`` points, in inches (measured with the font
    matplotlib draws with, so the layout does not guess from a character count)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    if not s:
        return 0.0
    w, _h, _d = TextToPath().get_text_width_height_descent(
        s, FontProperties(size=size), ismath=False
    )
    return float(w) / 72.0


def _fit(s: str, room_in: float, size: float) -> str:
    """``s`` if it fits in ``room_in`` inches at ``size`` points, else its longest prefix
    that fits with an ellipsis (at least one character)."""
    if _text_width_in(s, size) <= room_in:
        return s
    lo, hi = 1, len(s) - 1  # the answer is the largest n in [lo, hi] that fits (or lo)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _text_width_in(s[:mid] + "…", size) <= room_in:
            lo = mid
        else:
            hi = mid - 1
    return s[:lo] + "…"


def _step_label(b: Bar) -> tuple[str, str]:
    op, _, obj = b.name.partition(" ")
    return _abbrev(op), obj


def _pieces(s: str) -> list[str]:
    """``s`` cut after each ``.`` and ``_`` (where a kernel name may wrap)."""
    out: list[str] = []
    cur = ""
    for ch in s:
        cur += ch
        if ch in "._":
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def _wrap(s: str, room_in: float, size: float, lines: int) -> list[str]:
    """``s`` on at most ``lines`` lines of at most ``room_in`` inches, wrapped after a
    ``.`` or ``_``; what still does not fit ends the last line with an ellipsis."""
    out: list[str] = []
    for piece in _pieces(s):
        if out and _text_width_in(out[-1] + piece, size) <= room_in:
            out[-1] += piece
        else:
            out.append(piece)
    if len(out) > lines:
        out = [*out[: lines - 1], "".join(out[lines - 1 :])]
    return [_fit(line, room_in, size) for line in out]


def _wraps_whole(s: str, room_in: float, size: float, lines: int) -> bool:
    return "…" not in "".join(_wrap(s, room_in, size, lines))


#: Lines a step box gives its operation and its object.
STEP_LINES = 2


def _label_room(s: str) -> float:
    """The narrowest width (inches) in which ``s`` wraps whole into :data:`STEP_LINES`
    lines at :data:`STEP_PT` points."""
    lo = max((_text_width_in(p, STEP_PT) for p in _pieces(s)), default=0.0)
    hi = _text_width_in(s, STEP_PT)
    if _wraps_whole(s, lo, STEP_PT, STEP_LINES):
        return lo
    while hi - lo > 0.02:  # the wrap fits whole at hi (one line), not at lo
        mid = (lo + hi) / 2
        if _wraps_whole(s, mid, STEP_PT, STEP_LINES):
            hi = mid
        else:
            lo = mid
    return hi


def timeline_figure(doc: Mapping[str, Any]) -> Any:
    """The matplotlib figure of ``doc`` (what :func:`render_timeline_png` saves).

    The figure is as wide as the step labels need, between :data:`WIDTH_IN` and
    :data:`MAX_WIDTH_IN` inches: a short trace's every step box shows its whole operation
    and object; only a trace too long for the widest figure shortens them, with an
    ellipsis.  The left margin is as wide as the longest row name.  An instant's detail
    runs up to the next labelled instant of its row and is shortened, with an ellipsis,
    only where the two would overlap (the trace file keeps every text whole).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise UsageError("the png view needs matplotlib: pip install 'concsim[plot]'") from None
    tl = timeline_layout(doc)
    n = max(1, len(tl.rows))
    height = 1.5 + ROW_IN * n
    x0 = min((b.start for r in tl.rows for b in r.steps), default=0.0)
    x0 = max(0.0, x0 - 0.5)
    x1 = tl.end + 0.5
    label_steps = (tl.end - x0) <= LABEL_STEPS
    # Inches one step needs so that every step label fits in its box (boxes are one step
    # wide less 0.08 of a step of padding, and the text wants a little air).
    need = 0.0
    if label_steps:
        for r in tl.rows:
            for b in r.steps:
                op, obj = _step_label(b)
                w = max(_label_room(op), _label_room(obj)) + 0.06
                need = max(need, w / max(0.5, (b.end - b.start) - 0.08))
    margin_l = max(0.9, max((_text_width_in(r.name, 8) for r in tl.rows), default=0.0) + 0.35)
    margin_r = 0.25
    plot_w = min(max(WIDTH_IN - margin_l - margin_r, need * (x1 - x0)), MAX_WIDTH_IN)
    fig_w = margin_l + plot_w + margin_r
    in_per_step = plot_w / (x1 - x0)
    fig = Figure(figsize=(fig_w, height), dpi=DPI)
    left, width = margin_l / fig_w, plot_w / fig_w
    ax = fig.add_axes((left, 1.0 / height, width, ROW_IN * n / height))
    ax.set_xlim(x0, x1)
    ax.set_ylim(n, 0)
    for i, r in enumerate(tl.rows):
        y = float(i)
        if i % 2:
            ax.add_patch(Rectangle((x0, y), x1 - x0, 1, color="#f4f4f4", zorder=0, lw=0))
        # Steps: the bottom band, each box labelled with its operation (and object).
        for b in r.steps:
            ax.add_patch(
                Rectangle(
                    (b.start + 0.04, y + 0.58),
                    b.end - b.start - 0.08,
                    0.38,
                    facecolor="#e3e3e3",
                    edgecolor="#8c8c8c",
                    lw=0.5,
                    zorder=2,
                )
            )
            if label_steps:
                op, obj = _step_label(b)
                room = (b.end - b.start - 0.08) * in_per_step - 0.04
                text = _wrap(op, room, STEP_PT, STEP_LINES) + _wrap(obj, room, STEP_PT, STEP_LINES)
                ax.text(
                    (b.start + b.end) / 2,
                    y + 0.77,
                    "\n".join(text),
                    ha="center",
                    va="center",
                    fontsize=STEP_PT,
                    color="#222222",
                    zorder=3,
                    linespacing=1.1,
                    clip_on=True,
                    gid="step-label",
                )
        # Spans: the top band, nested ones stacked downwards.
        depth = max((b.depth for b in r.spans), default=0) + 1
        band = 0.36 / depth
        for b in r.spans:
            top = y + 0.04 + band * b.depth
            color = _COLORS.get(b.cat, _OTHER)
            ax.add_patch(
                Rectangle(
                    (b.start, top + 0.01),
                    b.end - b.start,
                    band - 0.02,
                    facecolor=color,
                    edgecolor="black",
                    lw=0.4,
                    alpha=0.9,
                    hatch="///" if b.cat == "wait" else None,
                    zorder=2,
                )
            )
            room = (b.end - b.start - 0.2) * in_per_step
            if room >= _text_width_in("ab…", 6.5):
                ax.text(
                    b.start + 0.1,
                    top + band / 2,
                    _fit(b.name, room, 6.5),
                    ha="left",
                    va="center",
                    fontsize=6.5,
                    color="black" if b.cat == "wait" else "white",
                    zorder=3,
                    clip_on=True,
                    gid="span-label",
                )
        # Instants: markers on the line between the bands, with their detail up to the
        # next labelled instant of the row (or the end of the axis); the details of
        # instants at one step share one label.
        details: dict[float, list[str]] = {}
        for ts, cat, label in r.instants:
            marker = "v" if cat == "instant" else "x"
            ax.plot([ts + 0.5], [y + 0.5], marker=marker, color="#7f3c8d", ms=5, zorder=4)
            if cat == "instant" and label not in details.setdefault(ts, []):
                details[ts].append(label)
        stops = sorted(details)
        for ts in stops if label_steps else ():
            nxt = min((t for t in stops if t > ts), default=x1 - 0.5)
            room = (nxt - ts - 0.22) * in_per_step - 0.04
            ax.text(
                ts + 0.62,
                y + 0.5,
                _fit(" · ".join(details[ts]), room, 6),
                fontsize=6,
                color="#7f3c8d",
                va="center",
                ha="left",
                zorder=4,
                clip_on=True,
                gid="instant-label",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.8},
            )
    if tl.failure is not None:
        ts, label, msg = tl.failure
        ax.axvline(ts + 0.5, color="#d62728", lw=1.6, zorder=5)
        ax.text(
            ts + 0.5,
            -0.04,
            label,
            color="#d62728",
            fontsize=8,
            ha="right",
            va="bottom",
            fontweight="bold",
        )
        fig.text(left, 0.06 / height, _fit(msg, plot_w * 0.55, 7.5), fontsize=7.5, color="#d62728")
    ax.set_yticks([i + 0.5 for i in range(n)])
    ax.set_yticklabels([r.name for r in tl.rows], fontsize=8)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel("engine step (1 step = 1 µs in the trace file)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    # AutoLocator takes ``integer`` (MaxNLocator's); the stubs type the base Locator.
    locator: Any = ax.xaxis.get_major_locator()
    locator.set_params(integer=True)
    ax.set_title(tl.title, fontsize=10, loc="left")
    handles = legend_handles()
    fig.legend(
        handles=handles,
        loc="lower right",
        bbox_to_anchor=(left + width, 0.0),
        ncol=len(handles),
        fontsize=7,
        frameon=False,
    )
    return fig


def legend_handles() -> list[Any]:
    """One legend entry for every kind of mark the picture draws: the step boxes, the span
    colours (lock held, waiting, hypercall, any other span), the instants' two markers and
    the failure line."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    return [
        Rectangle((0, 0), 1, 1, facecolor="#e3e3e3", edgecolor="#8c8c8c", label="step"),
        Rectangle((0, 0), 1, 1, facecolor=_COLORS["hold"], label="lock held"),
        Rectangle((0, 0), 1, 1, facecolor=_COLORS["wait"], hatch="///", label="waiting"),
        Rectangle((0, 0), 1, 1, facecolor=_COLORS["op"], label="hypercall"),
        Rectangle((0, 0), 1, 1, facecolor=_OTHER, label="other span"),
        Line2D([], [], marker="v", color="#7f3c8d", ls="none", ms=5, label="event"),
        Line2D([], [], marker="x", color="#7f3c8d", ls="none", ms=5, label="other instant"),
        Line2D([], [], color="#d62728", lw=1.6, label="failure"),
    ]


#: Display abbreviations of long operation names (the picture only; the JSON keeps them).
_ABBREV = (
    ("mmu_interval_", ""),
    ("invalidate_range_", "inv_range_"),
    ("hv_call_", ""),
    ("wait_for_completion", "wait_completion"),
)


def _abbrev(op: str) -> str:
    for a, b in _ABBREV:
        op = op.replace(a, b)
    return op


def write_png(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file in the same folder, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
