"""What the mshv explainers know of the model: map flags, and where a gfn's hva page is."""

from __future__ import annotations

from concsim.explain._context import Context, Record
from concsim.kernel._hv import (
    HV_MAP_GPA_ADJUSTABLE,
    HV_MAP_GPA_KERNEL_EXECUTABLE,
    HV_MAP_GPA_LARGE_PAGE,
    HV_MAP_GPA_NO_ACCESS,
    HV_MAP_GPA_NOT_CACHED,
    HV_MAP_GPA_READABLE,
    HV_MAP_GPA_USER_EXECUTABLE,
    HV_MAP_GPA_WRITABLE,
)

_FLAG_NAMES = (
    (HV_MAP_GPA_READABLE, "READABLE"),
    (HV_MAP_GPA_WRITABLE, "WRITABLE"),
    (HV_MAP_GPA_KERNEL_EXECUTABLE, "KERNEL_EXECUTABLE"),
    (HV_MAP_GPA_USER_EXECUTABLE, "USER_EXECUTABLE"),
    (HV_MAP_GPA_ADJUSTABLE, "ADJUSTABLE"),
    (HV_MAP_GPA_NO_ACCESS, "NO_ACCESS"),
    (HV_MAP_GPA_NOT_CACHED, "NOT_CACHED"),
    (HV_MAP_GPA_LARGE_PAGE, "LARGE_PAGE"),
)
_ACCESS_BITS = (
    HV_MAP_GPA_READABLE
    | HV_MAP_GPA_WRITABLE
    | HV_MAP_GPA_KERNEL_EXECUTABLE
    | HV_MAP_GPA_USER_EXECUTABLE
)
#: The map flags a guest access needs.
NEED = {
    "read": HV_MAP_GPA_READABLE,
    "write": HV_MAP_GPA_WRITABLE,
    "execute": HV_MAP_GPA_KERNEL_EXECUTABLE | HV_MAP_GPA_USER_EXECUTABLE,
}


def flag_names(flags: int) -> str:
    """``0x8003`` -> ``READABLE|WRITABLE|ADJUSTABLE``."""
    names = [n for bit, n in _FLAG_NAMES if flags & bit]
    return "|".join(names) or "0"


def grants(flags: int) -> bool:
    """Do map flags let the guest reach the page at all?"""
    return bool(flags & _ACCESS_BITS) and not flags & HV_MAP_GPA_NO_ACCESS


def gfn_run(r: Record) -> tuple[int, int, int | None] | None:
    """``(gfn, count, flags)`` of a record about a run of gfns (flags None without any)."""
    gfn, count = r.int_field("gfn"), r.int_field("count")
    if gfn is None or count is None:
        return None
    return gfn, count, r.int_field("flags")


def covers_gfn(r: Record, gfn: int) -> bool:
    run = gfn_run(r)
    return run is not None and run[0] <= gfn < run[0] + run[1]


def map_flags(r: Record) -> int:
    run = gfn_run(r)
    return (run[2] or 0) if run is not None else 0


def run_text(r: Record) -> str:
    """``gfns 0..63 with READABLE|WRITABLE`` (explain's words for a gfn-run record)."""
    run = gfn_run(r)
    if run is None:
        return r.text()
    g, n, fl = run
    what = f"gfn {g}" if n == 1 else f"gfns {g}..{g + n - 1}"
    return what if fl is None else f"{what} with {flag_names(fl)}"


def pte_change(r: Record, vpn: int) -> str | None:
    """The new state if this ``set_pte`` record touches ``vpn`` (or may: a sparse range)."""
    if r.op != "set_pte":
        return None
    a, b = r.int_field("vpn"), r.int_field("last")
    if a is None or b is None:
        return None
    return str(r.get("state")) if a <= vpn <= b else None


def span(ctx: Context) -> int:
    """Pages between two regions in the mshv world's layout (pages rounded up to 2 MiB,
    plus one PMD: concsim.scenarios._mshv_world)."""
    pages = int(ctx.params["pages"])
    return -(-pages // 512) * 512 + 512


def hva_of(ctx: Context, gfn: int) -> int | None:
    """The hva page of ``gfn`` in the mshv world's layout (region r at hva page
    (r+1)*span+align and gfn r*span+align), or from the failure when it names both."""
    d = ctx.failure.details
    if isinstance(d.get("hva"), int) and isinstance(d.get("gfn"), int):
        return gfn + int(d["hva"]) - int(d["gfn"])
    p = ctx.params
    if "pages" in p and "align" in p:
        return gfn + span(ctx)
    return None


def region_of(ctx: Context, gfn: int) -> str | None:
    p = ctx.params
    if "pages" not in p or "align" not in p:
        return None
    r = (gfn - int(p["align"])) // span(ctx)
    return f"region{r}" if 0 <= r < int(p.get("regions", 1)) else None
