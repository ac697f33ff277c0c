"""The fallback explainer: the failing task's last steps and every step touching the
objects the failure names.  Model-agnostic."""

from __future__ import annotations

from concsim.explain._context import Context, Record


def explain(ctx: Context) -> None:
    f = ctx.failure
    names = {str(v) for v in f.details.values() if isinstance(v, str) and v}
    names |= {str(x) for v in f.details.values() if isinstance(v, list) for x in v}
    names.discard(str(f.details.get("where", "")))
    for k, v in f.details.items():
        if k not in ("where", "traceback") and isinstance(v, str | int) and not isinstance(v, bool):
            ctx.objects[k] = v

    def touches(r: Record) -> bool:
        return any(r.obj == n or r.obj.startswith(n + ".") for n in names)

    hits = [r for r in ctx.before() if touches(r)]
    for r in hits[-12:]:
        ctx.link(r, "object", r.text())
    if f.task is not None:
        mine = [r for r in ctx.before() if r.task == f.task]
        for r in mine[-8:]:
            ctx.link(r, "task", r.text())
