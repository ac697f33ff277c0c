"""The trace records of the kernel model: each op's fields and how it reads as text.

The kernel declares its tracepoints in one place (``include/trace/events/``): a record
layout and a print format used only when somebody reads the trace.  This module does the
same for the model's scheduling points and events (see :mod:`concsim.engine._trace`):
model code passes the values in the order named here, and readers (``concsim explain``,
the Perfetto and mermaid views) use the field names, never the text.

Field conventions: ``gfn``/``count`` a run of guest frames, ``start``/``end`` a half-open
range of virtual pages, ``vpn`` one virtual page, ``flags`` hypercall map flags, ``seq``
a sequence number, ``ret`` a kernel return code (0 or ``-errno``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from concsim.engine import define_event


def _span(f: Mapping[str, Any]) -> str:
    vpn, last, count = f["vpn"], f["last"], f["count"]
    where = f"vpn {vpn}" if count == 1 else f"vpn {vpn}..{last} ({count})"
    pfn = f.get("pfn", -1)
    return f"{where} -> {f['state']}" + (f" pfn {pfn}" if count == 1 and pfn >= 0 else "")


def _warn(f: Mapping[str, Any]) -> str:
    ret = f.get("ret", 0)
    return str(f["reason"]).replace("_", " ") + (f": {ret}" if ret else "")


def _oom_reap(f: Mapping[str, Any]) -> str:
    rng = f"[{f['start']},{f['end']})"
    return rng + (f" skipped: {f['ret']}" if f.get("ret") else "")


# ---------------------------------------------------------------------- hypercalls, SLAT
define_event("hv_call_deposit_pages", ("pages",), "{pages} pages")
define_event("hv_call_map_gpa_pages", ("gfn", "count", "flags"), "gfn {gfn}+{count} {flags:#x}")
define_event("hv_call_unmap_gpa_pages", ("gfn", "count"), "gfn {gfn}+{count}")
define_event(
    "hypercall_failed",
    ("gfn", "count", "status"),
    "gfn {gfn}+{count} status {status}",
    doc="a map hypercall failed: the SLAT entries of the run keep their old values",
)
define_event(
    "slat_map",
    ("gfn", "count", "flags"),
    "gfn {gfn}+{count} {flags:#x}",
    doc="the SLAT entries of [gfn, gfn+count) now hold ``flags`` (NO_ACCESS: no pfn)",
)
define_event("slat_unmap", ("gfn", "count"), "gfn {gfn}+{count}")

# ---------------------------------------------------------------------- page table, mm
define_event(
    "set_pte",
    ("vpn", "last", "count", "state", "pfn"),
    _span,
    doc="``count`` PTEs from ``vpn`` to ``last`` (maybe sparse) became ``state``; ``pfn`` is "
    "the one a single present PTE maps (-1 otherwise)",
)
define_event("handle_mm_fault", ("vpn", "access"), "vpn {vpn} {access}")
define_event("wp_page_copy", ("vpn",), "vpn {vpn}")
define_event("hmm_walk_pmd", ("start", "end"), "[{start},{end})")
define_event("zap_pte_range", ("start", "end"), "[{start},{end})")
define_event("change_pte_range", ("start", "end", "prot"), "[{start},{end}) {prot}")
define_event("__split_huge_pmd", ("start", "end"), "[{start},{end})")
for _op in (
    "migrate_folio",
    "try_to_migrate_one",
    "remove_migration_ptes",
    "shrink_folio_list",
    "try_to_unmap_one",
    "write_protect_page",
):
    define_event(_op, ("vpn",), "vpn {vpn}")
define_event(
    "migration_entry_gone",
    ("vpn",),
    "vpn {vpn}: entry gone, nothing restored",
    doc="remove_migration_ptes found the PTE no longer holding its migration entry",
)
define_event("munmap", ("start", "end"), "[{start},{end})")
define_event("mprotect", ("start", "end", "prot"), "[{start},{end}) prot={prot:#x}")
define_event("copy_pte_range", ("start", "end"), "[{start},{end})")
define_event("fork", ("child",), "-> {child}")
define_event("user_access", ("vpn",), "vpn {vpn}")
define_event("make_device_exclusive", ("vpn",), "vpn {vpn}")
define_event("restore_exclusive_pte", ("vpn",), "vpn {vpn}")
define_event("SIGSEGV", ("vpn",), "vpn {vpn}")
define_event("oom_reap", ("start", "end", "ret"), _oom_reap)

# ---------------------------------------------------------------------- mmu notifiers
define_event("invalidate_range_start", ("start", "end", "event"), "[{start},{end}) {event}")
define_event("invalidate_range_end", ("start", "end"), "[{start},{end})")
define_event(
    "seq",
    ("what", "seq"),
    "{what}: {seq}",
    doc="a sequence number changed: ``what`` is insert, set_seq (the driver's callback), "
    "inv_start or inv_end (the subscriptions' round)",
)
define_event(
    "read_begin",
    ("seq", "busy"),
    "seq={seq} busy={busy}",
    doc="mmu_interval_read_begin returned ``seq``; ``busy``: an invalidation was running",
)

# ---------------------------------------------------------------------- locks, allocation
define_event("mutex_trylock_failed", ("owner",), "owner={owner}")
define_event("wake_up_all", ("waiters",), "{waiters}")
define_event("kmalloc_array", ("n", "size"), "{n}x{size} > KMALLOC_MAX_SIZE: NULL")

# ---------------------------------------------------------------------- WARN
define_event(
    "WARN",
    ("reason", "ret"),
    _warn,
    doc="a kernel WARN: ``reason`` names the condition (a fixed identifier), ``ret`` the "
    "return code that caused it (0 when none)",
)
define_event("WARN_ONCE", ("reason", "gfn", "ret"), "{reason} at gfn {gfn}: {ret}")

#: WARN reasons the kernel model emits (the driver model adds its own).
WARN_BLOCKABLE_CALLBACK_FAILED = "invalidate_callback_failed_on_a_blockable_range"
