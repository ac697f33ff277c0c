"""Misused locks (engine kind ``lock-misuse``): a mutex used before ``mutex_init``, unlocked
by a task that does not own it, or taken recursively.  Links every operation on the lock,
its ``mutex_init`` if any, and the invalidation the failing task was running (a notifier
callback is where an uninitialised mutex is usually met).  Model-agnostic."""

from __future__ import annotations

from concsim.explain._context import Context, range_text


def explain(ctx: Context) -> None:
    f = ctx.failure
    lock = str(f.details.get("lock", ""))
    ctx.objects["lock"] = lock
    inits = []
    for r in ctx.before():
        if r.obj == lock and r.point:
            if r.op == "mutex_init":
                inits.append(r)
            ctx.link(r, "lock", f"{r.op} {lock}")
    if f.task is not None:
        inv = ctx.last(
            r for r in ctx.before() if r.task == f.task and r.op == "invalidate_range_start"
        )
        if inv is not None:
            ctx.link(
                inv,
                "invalidate",
                f"invalidate_range_start {range_text(inv)}: {f.task} runs the notifier callbacks",
            )
    if "before mutex_init" in f.message and not inits:
        ctx.notes.append(
            f"{lock} was never mutex_init-ed before step {f.step}: the code that uses it was "
            "reachable (here: a notifier callback) before the mutex was ready"
        )
