"""The trace records of the driver model (see :mod:`concsim.kernel._tracepoints`).

``WARN`` and ``WARN_ONCE`` are the kernel's records; the reasons the driver gives them are
named here, so a reader tests a reason by its constant and never by its text.
"""

from __future__ import annotations

from concsim.engine import define_event

define_event("guest_access", ("gfn", "access"), "{access}")
define_event(
    "invalidate_pfns",
    ("start", "end"),
    "[{start},{end})",
    doc="mreg_pfns slots [start, end) of the region := MSHV_INVALID_PFN",
)
define_event("region_created", ("type",), "{type}")
define_event("ioctl", ("request", "gfn", "ret"), "{request} gfn {gfn:#x}: {ret}")

#: WARN: the invalidate callback's NO_ACCESS remap failed (B5.5); ``ret`` is its error.
WARN_INVALIDATE_REMAP_FAILED = "invalidate_remap_failed"
#: WARN: a non-blockable invalidation found mreg_mutex taken (B5.2).
WARN_NONBLOCK_TRYLOCK_FAILED = "mutex_trylock_failed_in_non_blockable_invalidate"
#: WARN_ONCE: the GPA intercept's range fault failed; ``gfn`` the faulting gfn.
WARN_RANGE_FAULT = "range_fault"
