"""S3, mreg_mutex across SLAT writes: a SLAT write without the mutex is told as a memory
failure (``_stale_access``); a mutex used before ``mutex_init`` as a lock misuse, with the
region's life around it (its notifier inserted before the mutex was ready)."""

from __future__ import annotations

from concsim.explain._context import Context
from concsim.explain._lock_misuse import explain as explain_lock_misuse
from concsim.explain.mshv._stale_access import explain as explain_stale_access


def explain(ctx: Context) -> None:
    f = ctx.failure
    if f.kind != "lock-misuse" or "lock" not in f.details:
        explain_stale_access(ctx)
        return
    explain_lock_misuse(ctx)
    lock = str(f.details["lock"])
    region = lock.split(".")[0] if "." in lock else None
    if region is None:
        return
    inserted = None
    inited = False
    for r in ctx.before():
        if r.op == "mutex_init" and r.obj == lock and r.point:
            inited = True
        elif (
            r.op == "seq"
            and r.obj == f"{region}.mreg_mni.invalidate_seq"
            and r.get("what") == "insert"
        ):
            inserted = inserted or r
            ctx.link(
                r,
                "insert",
                f"{region}'s interval notifier inserted (seq {r.get('seq')}): from "
                "here invalidate callbacks can run on the region",
            )
        elif r.op == "region_created" and r.obj == region:
            ctx.link(r, "region", f"{region} created ({r.get('type')})")
    if inserted is not None and not inited:
        ctx.notes.append(
            f"{region}'s notifier was registered at step {inserted.step}, before {lock} was "
            "initialised, and an invalidation's callback got there first"
        )
