"""Deadlocks (engine kind ``deadlock``; the mshv model's L4): who holds what and waits for
what, and a lock left held by a task that exited (with the WARN or failed call on the way
out that skipped the unlock).  Model-agnostic: it reads lock holds and waits from the trace
(``concsim.artifacts.derive_holds``) and the failure's ``cycle``/``blocked``/``locks``/``lock``
details."""

from __future__ import annotations

from concsim.explain._context import Context, range_text, warn_text

#: Records that say why a path went wrong (a kernel WARN, a failed call).
_WHY_OPS = ("WARN", "WARN_ONCE", "hypercall_failed")


def explain(ctx: Context) -> None:
    f = ctx.failure
    d = f.details
    holds = ctx.holds()
    tasks = [str(t) for t in d.get("cycle", d.get("blocked", []))]
    locks = [str(x) for x in d.get("locks", [])]
    if "lock" in d:
        locks.append(str(d["lock"]))
    ctx.objects["locks"] = ", ".join(dict.fromkeys(locks))
    if tasks:
        ctx.objects["tasks"] = ", ".join(tasks)
    for t in tasks:
        for sp in holds:
            if sp.task == t and sp.kind == "hold" and sp.args.get("still_held_at_end"):
                ctx.link_acquire(sp, f"takes {sp.obj} (still held at the end)")
        for sp in holds:
            if sp.task == t and sp.kind == "wait" and sp.args.get("unresolved"):
                holder = [
                    h.task
                    for h in holds
                    if h.kind == "hold" and h.obj == sp.obj and h.args.get("still_held_at_end")
                ]
                ctx.link(
                    ctx.point_of(t, int(sp.args.get("since_step", sp.start - 1))),
                    "wait",
                    f"waits for {sp.obj}" + (f", held by {', '.join(holder)}" if holder else ""),
                )
                held = ", ".join(
                    h.obj
                    for h in holds
                    if h.task == t and h.kind == "hold" and h.args.get("still_held_at_end")
                )
                ctx.notes.append(
                    f"task {t} holds {held or 'nothing'} and waits for {sp.obj}"
                    + (f", which {', '.join(holder)} holds" if holder else "")
                )
    # A lock left held by a task that exited: named by the end-of-run audit ("lock"), or
    # found among the locks the blocked tasks wait for (a task blocked on it can be the
    # last to run once its holder exited, so the failure is an all-blocked deadlock).
    exited = {r.task for r in ctx.upto if r.op == "exit"}
    left_held = (
        [str(d["lock"])]
        if "lock" in d
        else [
            lk
            for lk in dict.fromkeys(locks)
            if any(
                h.kind == "hold"
                and h.obj == lk
                and h.args.get("still_held_at_end")
                and h.task in exited
                for h in holds
            )
        ]
    )
    for lock in left_held:
        _explain_left_held(ctx, lock)


def _explain_left_held(ctx: Context, lock: str) -> None:
    """A lock still held at the end: who took it, and how its holder left without unlocking."""
    holds = ctx.holds()
    for sp in holds:
        if sp.kind != "hold" or sp.obj != lock or not sp.args.get("still_held_at_end"):
            continue
        ctx.link_acquire(sp, f"takes {lock}")
        wait = next(
            (
                w
                for w in holds
                if w.kind == "wait" and w.task == sp.task and w.obj == lock and w.end == sp.start
            ),
            None,
        )
        if wait is not None:
            ctx.link(
                ctx.point_of(sp.task, wait.start - 1),
                "lock",
                f"mutex_lock {lock}: blocks until step {sp.start}",
            )
        inv = ctx.last(
            r
            for r in ctx.records
            if r.task == sp.task and r.step <= sp.start and r.op == "invalidate_range_start"
        )
        if inv is not None:
            ctx.link(
                inv,
                "invalidate",
                f"invalidate_range_start {range_text(inv)}: its notifier callbacks take the lock",
            )
        ex = next(
            (r for r in ctx.upto if r.task == sp.task and r.op == "exit" and r.step >= sp.start),
            None,
        )
        why = [r for r in ctx.upto if r.task == sp.task and r.step >= sp.start and r.op in _WHY_OPS]
        for r in why:
            ctx.link(r, "why", f"{r.op} {r.obj}: {warn_text(r)}")
        if ex is not None:
            ctx.link(ex, "exit", f"task {sp.task} exits still holding {lock}")
            ctx.notes.append(
                f"task {sp.task} took {lock} at step {sp.start} and exited at step "
                f"{ex.step} without mutex_unlock: every later mutex_lock of it blocks forever"
            )
        warns = [r for r in why if r.op == "WARN"]
        if warns:
            ctx.notes.append(
                f"the path that returned at step {warns[0].step} (after the WARN "
                f"'{warn_text(warns[0])}') skipped the unlock"
            )
