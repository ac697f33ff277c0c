"""The invariant catalogue: every rule a failure can name, in one table.

Each entry says what the rule is (``id``, a short ``name``, what must hold), where it comes
from (the section of the protocol specification, ``shared/spec/protocol.md`` section C, for
the mshv rules) and which module of ``concsim.explain`` tells the story of a failure that
breaks it (``explainer``: a dotted module path with an ``explain(ctx)`` function, so a
newcomer goes from an invariant id straight to the file).  Model code names an invariant
with the constants below, never with a bare string.

The catalogue is open: a model that checks rules of its own (another driver, a test's
ad-hoc world) registers them with :func:`register_invariant`, with its own explainer
module if it has one (``concsim.explain._generic`` otherwise).  Registering an id twice with
a different entry is an error, so two models cannot silently disagree about a rule.

(The kernel and driver layers sit below ``checks`` and cannot import this module; the few
assertion points they raise themselves name the same ids as strings, and a test checks
that every id raised anywhere in the package is registered here.)
"""

from __future__ import annotations

from dataclasses import dataclass

from concsim._errors import UsageError

#: Where the explainers live (``concsim.explain``: model-agnostic; ``concsim.explain.mshv``:
#: the mshv model's), one module per concern.
_X = "concsim.explain"


@dataclass(frozen=True)
class Invariant:
    """One rule of the catalogue (see the module doc)."""

    id: str
    name: str
    meaning: str
    explainer: str = f"{_X}._generic"
    #: Where the rule is stated (a section of the specification), if anywhere.
    source: str = ""
    #: True for rules about any model (lost update, deadlock freedom); False for the
    #: rules of one model (the mshv driver's).
    generic: bool = False


_CATALOGUE: dict[str, Invariant] = {}


def register_invariant(inv: Invariant) -> Invariant:
    """Add ``inv`` to the catalogue (the same entry again is fine; a different one with the
    same id is an error)."""
    old = _CATALOGUE.get(inv.id)
    if old is not None and old != inv:
        raise UsageError(f"invariant {inv.id!r} is registered twice with different entries")
    _CATALOGUE[inv.id] = inv
    return inv


def invariant(inv_id: str | None) -> Invariant | None:
    """The catalogue entry of ``inv_id`` (None for None or an unregistered id)."""
    return _CATALOGUE.get(inv_id) if inv_id is not None else None


def invariants() -> dict[str, Invariant]:
    """The whole catalogue, in registration order."""
    return dict(_CATALOGUE)


# ---------------------------------------------------------------------- ids

#: mshv safety rules (specification section C).
S1 = "S1"
S2 = "S2"
S3 = "S3"
S4 = "S4"
S5 = "S5"
S6 = "S6"
S7 = "S7"
S8 = "S8"
#: Bounds: every index or range into a model array lies inside it (numpy clips silently).
S9 = "S9"
#: mshv functional rules: what the ioctls and the GPA fault return.
F1 = "F1"
F2 = "F2"
F3 = "F3"
#: mshv liveness rules.
L1 = "L1"
L3 = "L3"
L4 = "L4"
#: Two live regions own one gfn (the region table's rule, checked at creation).
GFN_OVERLAP = "gfn-overlap"
#: The dmirror driver's (lib/test_hmm.c) device page table rules (concsim.checks._dmirror).
D1 = "D1"
D2 = "D2"
D3 = "D3"
D4 = "D4"
#: Model-agnostic: a read-modify-write that overwrote another task's write.
LOST_UPDATE = "lost-update"

_MSHV = f"{_X}.mshv"

for _inv in (
    Invariant(
        S1,
        "no stale SLAT access",
        "a gfn may grant access only to the page the process maps at its hva (no page is "
        "freed or reused while the SLAT grants access to it)",
        f"{_MSHV}._stale_access",
        "C.S1",
    ),
    Invariant(
        S2,
        "mreg_pfns mirrors the SLAT",
        "a slot holds a pfn iff the SLAT maps the gfn to it, MSHV_INVALID_PFN iff it grants "
        "no access",
        f"{_MSHV}._stale_access",
        "C.S2",
    ),
    Invariant(
        S3,
        "SLAT writes under mreg_mutex",
        "mreg_mutex (initialised) is held across every SLAT write of a movable region",
        f"{_MSHV}._mreg_mutex",
        "C.S3",
    ),
    Invariant(
        S4,
        "lock order",
        "read_begin and mmap_lock are never taken under mreg_mutex",
        f"{_X}._lock_order",
        "C.S4",
    ),
    Invariant(
        S5,
        "no use after free of a region",
        "a region is freed only after its interval notifier was removed",
        f"{_MSHV}._region_lifetime",
        "C.S5",
    ),
    Invariant(
        S6,
        "no sleep in a non-blockable invalidation",
        "the non-blockable invalidate callback never sleeps (trylock only)",
        f"{_X}._sleep_in_atomic",
        "C.S6",
    ),
    Invariant(
        S7,
        "write access only to writable pages",
        "guest write access only to a page whose PTE is writable (never the zero page)",
        f"{_MSHV}._stale_access",
        "C.S7",
    ),
    Invariant(
        S8,
        "invalidation clipped to the region",
        "the invalidated range is clipped to the region",
        f"{_X}._generic",
        "C.S8",
    ),
    Invariant(
        S9,
        "bounds",
        "every index or range into a model array (mreg_pfns, the SLAT, the page table, "
        "HMM's pfns) lies inside it: numpy would clip it silently",
        f"{_X}._generic",
        "C.S9",
    ),
    Invariant(
        F1,
        "the map ioctl's result",
        "the map ioctl (MSHV_SET_GUEST_MEMORY) succeeds on a valid request and fails with "
        "the kernel's errno on an invalid one (-EINVAL, -EEXIST, -EFAULT), unless a failure "
        "was injected",
        f"{_X}._generic",
        "",
    ),
    Invariant(
        F2,
        "the unmap ioctl's result",
        "the unmap ioctl succeeds on an exactly matching region and fails with -ENOENT or "
        "-EINVAL otherwise",
        f"{_X}._generic",
        "",
    ),
    Invariant(
        F3,
        "the GPA fault's result",
        "a GPA fault on a window the VMAs cover (readable, writable where asked) succeeds "
        "unless a failure was injected; else -EFAULT or -EPERM",
        f"{_X}._generic",
        "",
    ),
    Invariant(
        L1,
        "the -EBUSY loop terminates",
        "the -EBUSY retry loop around hmm_range_fault terminates once invalidations stop "
        "(the mshv driver's B2.3 loop; dmirror's fault loop, whose C driver times out)",
        f"{_X}._ebusy_loop",
        "C.L1",
    ),
    Invariant(
        L3,
        "vCPU progress",
        "a permitted guest access is eventually installed, so the vCPU makes progress",
        f"{_MSHV}._progress",
        "C.L3",
    ),
    Invariant(
        L4,
        "mreg_mutex is released",
        "a blockable invalidate eventually gets mreg_mutex (nobody keeps it forever)",
        f"{_X}._deadlock",
        "C.L4",
    ),
    Invariant(
        GFN_OVERLAP,
        "one owner per gfn",
        "no two live regions own the same gfn",
        f"{_MSHV}._gfn_overlap",
        "B1 (region creation's overlap check)",
    ),
    Invariant(
        D1,
        "no stale device access",
        "the device never reaches a page the CPU has unmapped or replaced at that address",
        f"{_X}._generic",
        "concsim.checks._dmirror",
    ),
    Invariant(
        D2,
        "device writes land where the process writes",
        "a write through the mirror lands in the page the process maps there, writable",
        f"{_X}._generic",
        "concsim.checks._dmirror",
    ),
    Invariant(
        D3,
        "snapshots are current",
        "a snapshot reports only pfns the CPU maps there when it is reported",
        f"{_X}._generic",
        "concsim.checks._dmirror",
    ),
    Invariant(
        D4,
        "atomic device access is exclusive",
        "a page mapped for the device's atomic access is not reachable by the CPU",
        f"{_X}._generic",
        "concsim.checks._dmirror",
    ),
    Invariant(
        LOST_UPDATE,
        "no lost update",
        "every update of a shared value is based on its latest value (no task overwrites "
        "another's write with a value computed from an older read)",
        f"{_X}._lost_update",
        generic=True,
    ),
):
    register_invariant(_inv)
