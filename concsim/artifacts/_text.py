"""The text view of a trace: one line per entry, the failing step marked with ``>>``.

Columns: step, task, operation, object, detail (the record's fields as text).  The first
entry of a step is the operation the resumed task performed (the one it announced at its
scheduling point); entries that follow in the same step are state changes within that step
(``mutex_unlock``, ``exit``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from concsim.engine import Failure, TraceEntry, format_trace


def to_text(
    trace: Sequence[TraceEntry],
    failure: Failure | None = None,
    *,
    title: str = "concsim trace",
    metadata: Mapping[str, object] | None = None,
) -> str:
    lines = [f"# {title}"]
    lines.extend(f"# {k}: {v}" for k, v in (metadata or {}).items())
    lines.append(f"# {'step':>6}  {'task':<14} {'operation':<28} {'object':<20} detail")
    body = format_trace(trace, fail_step=failure.step if failure else None)
    if body:
        lines.append(body)
    if failure is None:
        lines.append("# result: ok, no failure")
    else:
        who = f" in task {failure.task}" if failure.task else ""
        inv = f" [{failure.invariant}]" if failure.invariant else ""
        lines.append(
            f"# FAILURE {failure.kind}{inv} at step {failure.step}{who}: {failure.message}"
        )
    return "\n".join(lines) + "\n"
