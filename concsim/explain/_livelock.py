"""Livelocks (engine kind ``step-limit``; the mshv model's L1, an -EBUSY retry loop past its
bound): the loop each spinning task repeats, and what the other tasks did meanwhile (what
kept the loop from finishing).  Model-agnostic: a loop is found as the shortest period of
the task's recent scheduling points (op and object)."""

from __future__ import annotations

from concsim.explain._context import CAP, Context, Record

#: The longest loop body looked for, in scheduling points.
MAX_PERIOD = 64
#: How many rounds make a loop.
MIN_ROUNDS = 2


def find_loop(points: list[Record]) -> tuple[int, int] | None:
    """``(start, period)`` of the longest periodic tail of ``points`` (by op and object)
    with the shortest period repeated at least ``MIN_ROUNDS`` times, or None."""
    keys = [(r.op, r.obj) for r in points]
    n = len(keys)
    for p in range(1, min(MAX_PERIOD, n // MIN_ROUNDS) + 1):
        if all(keys[n - 1 - k] == keys[n - 1 - k - p] for k in range(p)):
            start = n - 2 * p
            while start > 0 and keys[start - 1] == keys[start - 1 + p]:
                start -= 1
            return start, p
    return None


def explain(ctx: Context) -> None:
    f = ctx.failure
    d = f.details
    tasks = [str(t) for t in d.get("runnable", [])] or ([f.task] if f.task else [])
    if tasks:
        ctx.objects["tasks"] = ", ".join(tasks)
    for t in tasks:
        points = [r for r in ctx.upto if r.task == t and r.point]
        loop = find_loop(points)
        if loop is None:
            for r in points[-6:]:
                ctx.link(r, "task", r.text())
            continue
        start, p = loop
        rounds = (len(points) - start) // p
        body = points[-p:]
        first = points[start]
        ctx.link(first, "loop", f"{first.op} {first.obj}: the loop's first round")
        for r in body:
            ctx.link(r, "loop", f"{r.op} {r.obj} (round {rounds})")
        ops = ", ".join(dict.fromkeys(f"{r.op} {r.obj}".strip() for r in body))
        ctx.notes.append(
            f"from step {first.step} task {t} repeats the same {p} operation"
            f"{'s' if p > 1 else ''} ({ops}) {rounds} times, to step {points[-1].step}, "
            "without getting out"
        )
        others = [r for r in ctx.upto if r.task != t and first.i <= r.i and r.point]
        for r in others[-CAP:]:
            ctx.link(r, "interference", f"{r.op} {r.obj}: runs between rounds of {t}")
        if others:
            who = ", ".join(dict.fromkeys(r.task for r in others))
            ctx.notes.append(
                f"meanwhile {who} ran {len(others)} step{'s' if len(others) > 1 else ''}: "
                "what they change is what sends the loop round again"
            )
        else:
            ctx.notes.append(f"no other task ran from step {first.step}: {t} spins on its own")
