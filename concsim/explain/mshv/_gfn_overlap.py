"""gfn-overlap, two live regions owning one gfn: the two regions' creation and listing and
the ioctls that asked for them."""

from __future__ import annotations

from concsim.explain._context import Context, errno_name


def explain(ctx: Context) -> None:
    f = ctx.failure
    region = str(f.details.get("region", ""))
    other = str(f.details.get("other", ""))
    ctx.objects["regions"] = f"{region}, {other}"
    for r in ctx.before():
        if r.op in ("region_created", "region_listed") and r.obj in (region, other):
            what = f" ({r.get('type')})" if r.op == "region_created" else ""
            ctx.link(r, "region", f"{r.op.replace('_', ' ')}: {r.obj}{what}")
        elif r.op == "ioctl":
            ret = r.get("ret")
            gfn = r.int_field("gfn")
            ctx.link(
                r,
                "ioctl",
                f"ioctl {r.obj} ({r.get('request')} gfn {gfn:#x}): "
                + (errno_name(ret) if ret else "0"),
            )
    note = f"{other} was already live when {region} passed the overlap check"
    if "wrap" in f.message:
        note += ": the new region's end gfn wrapped around 2^64, so [start, end) looked disjoint"
    ctx.notes.append(note)
