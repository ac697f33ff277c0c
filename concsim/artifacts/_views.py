"""One entry point for the trace views: ``render_view("perfetto", trace, failure, ...)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from concsim._errors import UsageError
from concsim.artifacts._mermaid import to_mermaid
from concsim.artifacts._perfetto import TraceViewConfig, dumps_perfetto, to_perfetto
from concsim.artifacts._text import to_text
from concsim.engine import Failure, TraceEntry

VIEWS = ("text", "perfetto", "mermaid")


def render_view(
    view: str,
    trace: Sequence[TraceEntry],
    failure: Failure | None = None,
    *,
    title: str = "concsim",
    metadata: Mapping[str, Any] | None = None,
    config: TraceViewConfig | None = None,
) -> str:
    """The trace as text in the named view (``text``, ``perfetto`` or ``mermaid``)."""
    if view == "text":
        return to_text(trace, failure, title=title, metadata=metadata)
    if view == "perfetto":
        doc = to_perfetto(trace, failure, title=title, metadata=metadata, config=config)
        return dumps_perfetto(doc)
    if view == "mermaid":
        return to_mermaid(trace, failure, title=title)
    raise UsageError(f"unknown trace view {view!r} (known: {', '.join(VIEWS)})")
