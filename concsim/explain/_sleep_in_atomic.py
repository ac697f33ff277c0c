"""Sleeping where sleeping is forbidden (engine kind ``sleep-in-atomic``; the mshv model's
S6): the atomic or non-blockable context the task was in, the call that may sleep, and who
holds the lock it would sleep on.  Model-agnostic (the non-blockable context is the mm's
``mmu_notifier_invalidate_range_start_nonblock``)."""

from __future__ import annotations

from concsim.explain._context import Context, range_text


def explain(ctx: Context) -> None:
    f = ctx.failure
    t = f.task
    what = str(f.details.get("what", ""))
    if what:
        ctx.objects["sleeping call"] = what
    mine = [r for r in ctx.before() if r.task == t]
    if "non-blockable" in f.message:
        inv = ctx.last(r for r in mine if r.op == "invalidate_range_start")
        tl = ctx.last(r for r in mine if r.op == "down_read_trylock")
        if tl is not None and (inv is None or tl.i < inv.i):
            ctx.link(tl, "context", f"mmap_read_trylock {tl.obj} (the OOM reaper's way in)")
        if inv is not None:
            ctx.link(
                inv,
                "context",
                f"invalidate_range_start {range_text(inv)}, non-blockable "
                "(mmu_notifier_invalidate_range_start_nonblock): the callbacks run with "
                "blockable=False",
            )
        ctx.notes.append(
            f"task {t} is inside a non-blockable invalidation; a callback must use "
            f"trylock and fail, but it calls {what or 'something that may sleep'}"
        )
    else:
        for sp in ctx.holds():
            acq = ctx.point_of(t, sp.start) if sp.task == t and sp.kind == "hold" else None
            if acq is not None and acq.op.startswith("spin_") and sp.start <= f.step < sp.end:
                ctx.link(acq, "context", f"takes spinlock {sp.obj} (atomic context)")
        ctx.notes.append(f"task {t} holds a spinlock and calls {what or 'a sleeping function'}")
    # The lock the call would sleep on (``mutex_lock(name)``): held by another task?
    locks = sorted({sp.obj for sp in ctx.holds() if what.endswith(f"({sp.obj})")})
    for lock in locks:
        for sp in ctx.holds():
            if (
                sp.kind == "hold"
                and sp.obj == lock
                and sp.task != t
                and sp.start <= f.step < sp.end
            ):
                ctx.link_acquire(sp, f"takes {lock} (held while {t} arrives)")
                ctx.notes.append(
                    f"{lock} is held by task {sp.task} since step {sp.start}: "
                    "here the call would really sleep"
                )
