"""Lost updates (``lost-update``): a task read a shared value, another task wrote it, then
the first wrote a value computed from its old read, overwriting the other's write.
Model-agnostic: it reads the points on the object (``read=True`` ones are reads, the
others writes) and the written ``value`` field when there is one."""

from __future__ import annotations

from concsim.explain._context import Context, Record
from concsim.explain._generic import explain as explain_generic


def _objects(ctx: Context) -> list[str]:
    """The shared objects to look at: those the failure names, else every object that more
    than one task writes."""
    pts = [r for r in ctx.upto if r.point and r.obj]
    named = [k for k in ctx.failure.details if any(r.obj == k for r in pts)]
    if named:
        return named
    writers: dict[str, set[str]] = {}
    for r in pts:
        if not r.read:
            writers.setdefault(r.obj, set()).add(r.task)
    return sorted(o for o, ts in writers.items() if len(ts) > 1)


def lost_updates(recs: list[Record]) -> list[tuple[Record, Record, Record]]:
    """``(read, other's write, overwriting write)`` for every write based on a read that
    another task's write made stale."""
    out = []
    last_read: dict[str, Record] = {}
    writes: list[Record] = []
    for r in recs:
        if r.read:
            last_read[r.task] = r
            continue
        rd = last_read.pop(r.task, None)
        if rd is not None:
            lost = [w for w in writes if w.task != r.task and rd.i < w.i]
            if lost:
                out.append((rd, lost[-1], r))
        writes.append(r)
    return out


def _value(r: Record) -> str:
    v = r.get("value")
    return f" {v}" if v is not None else ""


def explain(ctx: Context) -> None:
    found = 0
    for obj in _objects(ctx):
        recs = [r for r in ctx.upto if r.point and r.obj == obj]
        lost = lost_updates(recs)
        if not lost:
            continue
        ctx.objects.setdefault("object", obj)
        found += len(lost)
        rd, other, w = lost[0]
        ctx.link(rd, "read", f"{rd.op} {obj}: reads the value")
        ctx.link(other, "write", f"{other.op} {obj}{_value(other)}: writes it")
        ctx.link(
            w,
            "overwrite",
            f"{w.op} {obj}{_value(w)}: writes a value computed from the read at step "
            f"{rd.step}, overwriting {other.task}'s write of step {other.step}",
        )
        ctx.notes.append(
            f"task {rd.task} read {obj} at step {rd.step}, task {other.task} wrote it at step "
            f"{other.step}, then {w.task} wrote back at step {w.step} a value computed from its "
            f"old read: {other.task}'s update is lost ({len(lost)} such overwrite"
            f"{'s' if len(lost) > 1 else ''} of {obj} in this run)"
        )
    if not found:
        explain_generic(ctx)
