"""The trace of a run and its canonical hash.

A trace entry is ``(step, task, op, obj, detail)``: at engine step ``step``, task ``task``
performed ``op`` on ``obj`` (``detail`` says how, already formatted).  Entries come from
scheduling points (the operation a resumed task performs) and from non-yielding events
(``rt.event``: a state change inside a step).

``trace_sha256`` hashes a canonical encoding: one line per entry, fields separated by a tab,
UTF-8.  Nothing in it depends on the process (no ids, no addresses, no hash order), so the
same schedule gives the same hash on any machine and under any ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

TraceEntry = tuple[int, str, str, str, str]


def canonical_lines(trace: Iterable[TraceEntry]) -> Iterable[str]:
    for step, task, op, obj, detail in trace:
        yield f"{step}\t{task}\t{op}\t{obj}\t{detail}\n"


def trace_sha256(trace: Iterable[TraceEntry]) -> str:
    # One encode of the joined lines: the same bytes as hashing them line by line.
    return hashlib.sha256("".join(canonical_lines(trace)).encode("utf-8")).hexdigest()


def format_trace(trace: Iterable[TraceEntry], *, fail_step: int | None = None) -> str:
    """One human-readable line per entry; the failing step is marked with ``>>``."""
    out = []
    for step, task, op, obj, detail in trace:
        mark = ">>" if fail_step is not None and step == fail_step else "  "
        out.append(f"{mark}{step:6d}  {task:<14} {op:<28} {obj:<20} {detail}".rstrip())
    return "\n".join(out)
