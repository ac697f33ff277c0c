"""The trace of a run: typed records, their text rendering, and the canonical hash.

A trace entry (:class:`TraceEntry`) is a *kind* plus named fields, the way a kernel
tracepoint is (``TRACE_EVENT``: a fixed record of typed fields, and a print format used
only when somebody reads the trace):

* ``step``, ``task``: at engine step ``step``, task ``task`` (``"-"`` outside any task)...
* ``op``, ``obj``: ...performed ``op`` on ``obj``; ``op`` names the kind;
* ``values``: the kind's fields, in the order its declaration names them
  (:func:`define_event`): ``hv_call_map_gpa_pages`` carries ``(gfn, count, flags)``;
* ``point``: whether the entry is a *scheduling point* (the operation a resumed task
  performs, announced with ``await rt.point(...)``), as opposed to an *event* recorded
  inside a step with ``rt.event(...)`` (an unlock, a sequence-number change) or the
  engine's ``exit``.  The engine sets it; nothing has to guess it from the step numbers;
* ``read``: the point only reads ``obj`` (``rt.point(..., read=True)``).

Readers use the fields (``e.get("gfn")``, ``e.fields``); text exists only at the edge:
:attr:`TraceEntry.detail` renders an entry with its kind's format, for the text, mermaid
and Perfetto views.  Rewording a format changes what a person reads and nothing else: the
explanation, the views' structure and the trace hash read the fields.

Building a record costs nothing when the trace is off: a point stores the values tuple it
was called with (no formatting), and an event returns at once (model code with values to
compute guards the call with ``if rt.tracing:``).

``trace_sha256`` hashes a canonical encoding of the records, not their text: one line per
entry with the step, the task, ``P`` (point), ``R`` (reading point) or ``E`` (event), the
op, the object and the values (``str()`` of each: the values are plain ints, strings and
bools), separated by tabs, UTF-8.  Nothing in it depends on the process (no ids, no
addresses, no hash order), so the same schedule gives the same hash on any machine and
under any ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from concsim._errors import UsageError

#: Renders a record's fields as text: a ``str.format`` template over the field names
#: (``"gfn {gfn}+{count} {flags:#x}"``) or a function of the fields.
Format = str | Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class EventKind:
    """The declaration of one kind of trace record: its op, its fields, its text."""

    op: str
    fields: tuple[str, ...]
    text: Format = ""
    doc: str = ""

    def render(self, values: tuple[object, ...]) -> str:
        if not values:
            return ""
        f = dict(zip(self.fields, values, strict=False))
        if callable(self.text):
            return self.text(f)
        if self.text:
            return self.text.format(**f)
        return " ".join(f"{k}={v}" for k, v in f.items())


_KINDS: dict[str, EventKind] = {}


def define_event(
    op: str, fields: Iterable[str] = (), text: Format = "", doc: str = ""
) -> EventKind:
    """Declare the record ``op`` carries: its field names (in the order model code passes
    the values) and its text.  Declaring the same op again with the same fields replaces
    its text; with other fields it is an error (one op, one record layout)."""
    names = tuple(fields)
    old = _KINDS.get(op)
    if old is not None and old.fields != names:
        raise UsageError(
            f"trace event {op!r} is declared twice with different fields "
            f"({', '.join(old.fields)} / {', '.join(names)})"
        )
    kind = EventKind(op, names, text, doc)
    _KINDS[op] = kind
    return kind


def event_kind(op: str) -> EventKind | None:
    """The declaration of ``op``, or None for an undeclared op (an ad-hoc model's own)."""
    return _KINDS.get(op)


def event_kinds() -> dict[str, EventKind]:
    """Every declared kind, by op (sorted by op)."""
    return {op: _KINDS[op] for op in sorted(_KINDS)}


def _names(op: str, n: int) -> tuple[str, ...]:
    kind = _KINDS.get(op)
    if kind is not None and len(kind.fields) >= n:
        return kind.fields[:n]
    if n == 1:
        return ("value",)
    return tuple(f"arg{i}" for i in range(n))


class TraceEntry(NamedTuple):
    """One record of the trace (see the module doc)."""

    step: int
    task: str
    op: str
    obj: str
    values: tuple[object, ...] = ()
    point: bool = False
    read: bool = False

    @property
    def fields(self) -> dict[str, object]:
        """The values by field name (an undeclared op's single value is ``value``)."""
        if not self.values:
            return {}
        return dict(zip(_names(self.op, len(self.values)), self.values, strict=True))

    def get(self, name: str, default: Any = None) -> Any:
        """The value of field ``name``, or ``default`` when the record has none."""
        values = self.values
        if values:
            kind = _KINDS.get(self.op)
            if kind is not None:
                try:
                    i = kind.fields.index(name)
                except ValueError:
                    return default
                return values[i] if i < len(values) else default
            if name == "value" and len(values) == 1:
                return values[0]
        return default

    @property
    def detail(self) -> str:
        """The fields as text, with the kind's format (for people; nothing parses it)."""
        return render_detail(self.op, self.values)


def render_detail(op: str, values: tuple[object, ...]) -> str:
    """The text of a record's fields: its kind's format, or the values for an undeclared op."""
    if not values:
        return ""
    kind = _KINDS.get(op)
    if kind is not None and len(kind.fields) == len(values):
        try:
            return kind.render(values)
        except (KeyError, ValueError, TypeError, IndexError):
            pass  # a value of another type than the format expects: shown as it is
    return " ".join(str(v) for v in values)


def canonical_lines(trace: Iterable[TraceEntry]) -> Iterable[str]:
    for step, task, op, obj, values, point, read in trace:
        mark = ("R" if read else "P") if point else "E"
        vals = "\t".join(map(str, values)) if values else ""
        yield f"{step}\t{task}\t{mark}\t{op}\t{obj}\t{vals}\n"


def trace_sha256(trace: Iterable[TraceEntry]) -> str:
    # One encode of the joined lines: the same bytes as hashing them line by line.
    return hashlib.sha256("".join(canonical_lines(trace)).encode("utf-8")).hexdigest()


def format_trace(trace: Iterable[TraceEntry], *, fail_step: int | None = None) -> str:
    """One human-readable line per entry; the failing step is marked with ``>>``."""
    out = []
    for e in trace:
        mark = ">>" if fail_step is not None and e.step == fail_step else "  "
        out.append(f"{mark}{e.step:6d}  {e.task:<14} {e.op:<28} {e.obj:<20} {e.detail}".rstrip())
    return "\n".join(out)
