"""Lock-order reports (engine kind ``lock-order``; the mshv model's S4): the order taken
now and the earlier, opposite one lockdep recorded (its ``cycle`` and ``witness_task`` /
``witness_step`` details).  Model-agnostic."""

from __future__ import annotations

from concsim.explain._context import Context


def _is_class(obj: str, cls: str) -> bool:
    return obj == cls or obj.endswith("." + cls)


def explain(ctx: Context) -> None:
    f = ctx.failure
    cycle = [str(x) for x in f.details.get("cycle", [])]
    ctx.objects["lock classes"] = " -> ".join(cycle)
    if len(cycle) >= 2 and f.task is not None:
        held, new = cycle[0], cycle[-1] if len(cycle) > 2 else cycle[1]
        for sp in ctx.holds():
            if (
                sp.task == f.task
                and sp.kind == "hold"
                and _is_class(sp.obj, held)
                and sp.start <= f.step < sp.end
            ):
                ctx.link_acquire(sp, f"takes {sp.obj} (class {held})")
        ctx.notes.append(f"order 1 (now): task {f.task} takes {new} while holding {held}")
    wt, ws = f.details.get("witness_task"), f.details.get("witness_step")
    if isinstance(wt, str) and isinstance(ws, int):
        for r in ctx.upto:
            if r.task == wt and r.step == ws:
                ctx.link(r, "witness", f"{r.op} {r.obj}: the earlier, opposite order")
        if len(cycle) >= 2:
            ctx.notes.append(
                f"order 2 (earlier): task {wt} took {' -> '.join(cycle[1:])} at step {ws}; both "
                "orders together can deadlock (lockdep reports it even on this schedule)"
            )
