"""S5, a region freed with its interval notifier still registered: the region's life in the
trace (created, notifier inserted, removed or not, freed) and the error its creation hit."""

from __future__ import annotations

from concsim.explain._context import Context, Record, warn_text

#: Records that say a path failed (an injected failure is a ``choose`` with outcome != 0).
_ERROR_OPS = ("hypercall_failed", "WARN", "WARN_ONCE")


def choice_text(r: Record) -> str:
    """An environment choice in words: ``choose alloc_fail(x) 1/2`` -> the allocation fails."""
    label = r.obj
    out = f"{r.get('outcome')}/{r.get('choices')}"
    if label.startswith("alloc_fail("):
        return f"the allocation {label[11:-1]} fails ({out})"
    if label == "direct_reclaim":
        return f"the allocation enters direct reclaim ({out})"
    if label.startswith("hv_call"):
        return f"hypercall {label} does not succeed (outcome {out}: insufficient memory or error)"
    return f"environment choice {label}: {out}"


def explain(ctx: Context) -> None:
    f = ctx.failure
    region = str(f.details.get("region", ""))
    ctx.objects["region"] = region
    mni = f"{region}.mreg_mni"
    created = None
    for r in ctx.before():
        if r.op == "region_created" and r.obj == region:
            created = r
            ctx.link(r, "region", f"{region} created ({r.get('type')})")
        elif r.op == "seq" and r.obj == f"{mni}.invalidate_seq" and r.get("what") == "insert":
            ctx.link(r, "insert", f"{region}'s interval notifier inserted (seq {r.get('seq')})")
        elif r.op == "notifier_removed" and r.obj == mni:
            ctx.link(r, "remove", f"{region}'s interval notifier removed")
        elif r.op == "vfree" and r.obj == region:
            ctx.link(r, "free", f"{region} freed (vfree)")
    if f.task is not None and created is not None:
        errs = [
            r
            for r in ctx.before()
            if r.task == f.task
            and r.i > created.i
            and ((r.op == "choose" and r.get("outcome") != 0) or r.op in _ERROR_OPS)
        ]
        for r in errs[-3:]:
            text = choice_text(r) if r.op == "choose" else f"{r.op} {r.obj}: {warn_text(r)}"
            ctx.link(r, "error", text)
        if errs:
            last = errs[-1]
            what = choice_text(last) if last.op == "choose" else last.op
            ctx.notes.append(
                f"creation failed at step {last.step} ({what}) and took its error path"
            )
    removed = any(r.op == "notifier_removed" and r.obj == mni for r in ctx.before())
    if f.details.get("where") == "vfree" and not removed:
        ctx.notes.append(
            f"{region} is freed at step {f.step} on an error path, but its notifier {mni} was "
            "never removed (no mmu_interval_notifier_remove): the next invalidation calls back "
            "into freed memory"
        )
