"""The trace records of the dmirror driver model (see :mod:`concsim.kernel._tracepoints`).

The WARN reasons it gives are named here, so a reader tests a reason by its constant.
"""

from __future__ import annotations

from concsim.engine import define_event

define_event("xa_store", ("start", "end"), "[{start},{end})")
define_event("xa_store_atomic", ("vpn",), "vpn {vpn} atomic")
define_event(
    "dmirror_do_fault",
    ("start", "end"),
    "[{start},{end}) stored",
    doc="the device page table holds the walked pfns of [start, end)",
)
define_event(
    "dmirror_do_update",
    ("start", "end"),
    "[{start},{end}] erased",
    doc="the device page table's entries of [start, end] (end included) are erased",
)
define_event("memcpy_from_page", ("start", "end"), "[{start},{end})")
define_event("memcpy_to_page", ("start", "end"), "[{start},{end})")
define_event("dmirror_ioctl", ("device", "ret", "cpages"), "{device}: {ret} cpages={cpages}")

#: WARN_ON in dmirror_do_fault: a successful faulting walk left an entry invalid.
WARN_INVALID_ENTRY_AFTER_FAULT = "dmirror_do_fault_invalid_entry_after_a_fault"
#: WARN_ON in dmirror_do_fault: a write fault left a page read-only.
WARN_WRITE_FAULT_LEFT_READ_ONLY = "dmirror_do_fault_write_fault_left_a_page_read_only"
