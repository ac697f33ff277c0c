"""The mermaid view of a trace: a ``sequenceDiagram`` of the interleaving.

Participants are the tasks (in order of first appearance) and then the shared objects they
touch.  Each trace entry is an arrow from its task to its object, labelled with the step and
the operation (and its fields as text): a solid arrow for the operation a resumed task
performs at a scheduling point (the trace marks those), a dashed one for a state change
within a step (``mutex_unlock``).  Entries
without an object (``start``, ``exit``) are notes over the task.

Long runs are compressed twice: consecutive entries with the same task, operation and
object become one arrow ``steps a-b: op ×n``; and when more than ``max_messages`` remain,
the middle is replaced by one note saying how many were left out (the end, where failures
are, is kept).  The failing step is boxed and followed by a note naming the failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from concsim.engine import Failure, TraceEntry

_ESCAPES = {"#": "#35;", ";": "#59;", "<": "#60;", ">": "#62;", "\n": " ", "\r": " "}


def _esc(text: str, limit: int = 120) -> str:
    """Make text safe after ``:`` in a mermaid statement (no ``;``, ``#``, ``<``, newline)."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "".join(_ESCAPES.get(c, c) for c in text)


@dataclass
class _Msg:
    task: str
    op: str
    obj: str
    detail: str
    first: int
    last: int
    count: int
    is_point: bool


def to_mermaid(
    trace: Sequence[TraceEntry],
    failure: Failure | None = None,
    *,
    title: str | None = None,
    max_messages: int = 200,
    head: int = 40,
) -> str:
    if max_messages < head + 1:
        raise ValueError("max_messages must leave room after the head")
    tasks: list[str] = []
    objects: list[str] = []
    for e in trace:
        task, obj = e.task, e.obj
        if task not in tasks:
            tasks.append(task)
        if obj and obj not in objects:
            objects.append(obj)
    if failure is not None and failure.task and failure.task not in tasks:
        tasks.append(failure.task)
    pid = {t: f"T{i}" for i, t in enumerate(tasks)}
    oid = {o: f"O{i}" for i, o in enumerate(objects)}
    fail_step = failure.step if failure is not None else None

    msgs: list[_Msg] = []
    for e in trace:
        step, task, op, obj, is_point = e.step, e.task, e.op, e.obj, e.point
        detail = e.detail
        prev = msgs[-1] if msgs else None
        at_failure = fail_step is not None and step == fail_step
        if (
            prev is not None
            and (prev.task, prev.op, prev.obj, prev.is_point) == (task, op, obj, is_point)
            and not at_failure
            and prev.last != fail_step
        ):
            prev.last = step
            prev.count += 1
            if detail != prev.detail:
                prev.detail = ""
            continue
        msgs.append(_Msg(task, op, obj, detail, step, step, 1, is_point))

    out = ["sequenceDiagram"]
    if title:
        out.append(f"    %% {_esc(title)}")
    out.extend(f"    participant {pid[t]} as {_esc(t if t != '-' else 'runtime')}" for t in tasks)
    out.extend(f"    participant {oid[o]} as {_esc(o)}" for o in objects)

    elided = 0
    if len(msgs) > max_messages:
        tail = max_messages - head
        elided = len(msgs) - max_messages
        shown = [*msgs[:head], None, *msgs[-tail:]]
    else:
        shown = list(msgs)
    in_box = False
    for m in shown:
        if m is None:
            span = f"{pid[tasks[0]]},{pid[tasks[-1]]}" if len(tasks) > 1 else pid[tasks[0]]
            out.append(f"    Note over {span}: … {elided} messages elided …")
            continue
        failing = fail_step is not None and m.first == fail_step
        if failing and not in_box:
            out.append("    rect rgb(255, 220, 220)")
            in_box = True
        elif not failing and in_box:
            out.append("    end")
            in_box = False
        steps = f"{m.first}" if m.first == m.last else f"steps {m.first}-{m.last}"
        label = f"{steps}: {m.op}" + (f" ×{m.count}" if m.count > 1 else "")
        if m.detail:
            label += f" {m.detail}"
        indent = "        " if in_box else "    "
        if m.obj:
            arrow = "->>" if m.is_point else "-->>"
            out.append(f"{indent}{pid[m.task]}{arrow}{oid[m.obj]}: {_esc(label)}")
        else:
            out.append(f"{indent}Note over {pid[m.task]}: {_esc(label)}")
    if in_box:
        out.append("    end")
    if failure is not None:
        if failure.task and failure.task in pid:
            over = pid[failure.task]
        elif len(tasks) > 1:
            over = f"{pid[tasks[0]]},{pid[tasks[-1]]}"
        elif tasks:
            over = pid[tasks[0]]
        else:
            over = ""
        text = f"FAILURE {failure.kind} at step {failure.step}: {failure.message}"
        if over:
            out.append(f"    Note over {over}: {_esc(text, 300)}")
    return "\n".join(out) + "\n"
