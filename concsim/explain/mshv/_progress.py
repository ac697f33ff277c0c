"""L3, a vCPU that makes no progress: its accesses to the gfn, the maps the intercept made
(and why none grants the access), and a fault path that failed and sent the intercept to
the VMM."""

from __future__ import annotations

from concsim.driver._tracepoints import WARN_RANGE_FAULT
from concsim.explain._context import Context, errno_name, range_text
from concsim.explain.mshv._layout import NEED, covers_gfn, flag_names, grants, map_flags, region_of
from concsim.explain.mshv._layout import run_text as _run_text
from concsim.explain.mshv._stale_access import explain as explain_stale_access

#: Why hmm_range_fault returns what it returns, for the note.
_WHY = {
    "-EPERM": " (hmm_range_fault: a write fault was requested on a VMA without VM_WRITE)",
    "-EFAULT": " (hmm_range_fault: no VMA, or a VM_IO/VM_PFNMAP one, where a fault was requested)",
}


def explain(ctx: Context) -> None:
    f = ctx.failure
    gfn = f.details.get("gfn")
    if not isinstance(gfn, int):
        explain_stale_access(ctx)
        return
    t = f.task
    ctx.objects["gfn"] = gfn
    if (region := region_of(ctx, gfn)) is not None:
        ctx.objects["region"] = region
    mine = [r for r in ctx.before() if r.task == t]
    acc = [r for r in mine if r.op == "guest_access" and r.get("gfn", -1) == gfn]
    kind = str(acc[-1].get("access", "")) if acc else ""
    if acc:
        ctx.link(acc[0], "access", f"guest {kind} of gfn {gfn}: the first attempt")
        for r in acc[-2:]:
            ctx.link(r, "access", f"guest {kind} of gfn {gfn} again")
        ctx.objects["accesses"] = len(acc)
    maps = [
        r for r in mine if r.op == "slat_map" and covers_gfn(r, gfn) and (not acc or r.i > acc[0].i)
    ]
    for r in maps[-2:]:
        ctx.link(r, "map", f"the intercept maps {_run_text(r)}")
    need = NEED.get(kind, 0)
    if maps and need:
        flags = {map_flags(r) for r in maps}
        if all(not (fl & need) or not grants(fl) for fl in flags):
            names = ", ".join(sorted(flag_names(fl) for fl in flags))
            ctx.notes.append(
                f"every map of gfn {gfn} by task {t} since its first access ({len(maps)} of "
                f"them) used {names}: none grants {kind}, so the guest faults again and the "
                f"intercept is handled again, forever"
            )
    for r in mine:
        if r.op == "WARN_ONCE" and r.get("reason") == WARN_RANGE_FAULT and r.get("gfn") == gfn:
            ret = errno_name(r.get("ret"))
            ctx.link(r, "error", f"the fault path fails: range fault at gfn {gfn}: {ret}")
            walk = ctx.last(w for w in mine if w.op == "hmm_walk_pmd" and w.i < r.i)
            if walk is not None:
                ctx.link(walk, "read", f"HMM walks {range_text(walk)}")
            ctx.notes.append(
                f"collect_and_map for gfn {gfn} returned {ret}{_WHY.get(ret, '')}, so the "
                f"intercept goes to the VMM although the region and the VMA permit the {kind}"
            )
    if len(acc) > 1:
        ctx.notes.append(
            f"task {t} touched gfn {gfn} {len(acc)} times ({kind}) from step "
            f"{acc[0].step} to {acc[-1].step} without the access being installed"
        )
