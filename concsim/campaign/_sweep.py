"""The parameter-space sweep: per seed, one random point of the mshv model's whole space.

``concsim stress --campaign sweep`` (``stress/sweep.toml``: ``sweep = "mshv"``) runs, for
each seed, one schedule of the ``default`` scenario at a point drawn from that seed alone:
every parameter (pages from 1 to thousands with odd sizes and alignments, regions, vCPUs,
accesses, populated and zero-page fractions, protections, every mix of events, pinned,
destroy, direct reclaim, hypercall and allocation failures, audits), a correct variant, and
the strategy (random walk or PCT), itself seeded with the same seed.  The draw uses numpy's
PCG64 seeded with ``(SWEEP_SALT, seed)``, so the point is a pure function of the seed on
every machine.  A failing seed's replay file holds the concrete point (scenario, variant,
parameters, strategy, schedule) plus ``extra.sweep = {"space", "seed"}``, so ``concsim
replay FILE`` reruns it, and ``concsim stress --campaign sweep --seeds N:N+1`` runs seed N's
point again.

A correct variant that fails is a false alarm unless the failure is a *known finding*: a
hazard of the kernel code itself, documented in docs/findings.md, that the model rightly
reports.  Each :class:`KnownFinding` is a named predicate over the point (its parameters
and variant) and the failure's signature (kind, invariant, where).  The campaign reports
known findings apart from new failures, and only a new failure makes it exit 1.  The
predicates are as narrow as the finding: a failure that the documented cause cannot
explain stays new.

Options given on the command line pin dimensions of the space: ``--param pages=64`` fixes
the pages of every point, ``--variant v3`` (or a mutant) the variant, ``--strategy`` the
strategy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from concsim._errors import UsageError
from concsim.driver import CORRECT_VARIANTS as _DRIVER_CORRECT
from concsim.scenarios._mshv_world import EVENTS as _MSHV_EVENTS

#: Mixed into every draw, so that the sweep's points are not the seeds of other streams.
SWEEP_SALT = 0x5EE9_0012

#: The sweeps concsim knows (``sweep = NAME`` in a campaign file).
SPACES = ("mshv",)

#: The correct variants a point draws from: the mshv driver's own list, so a new correct
#: variant is swept without touching this file.
CORRECT_VARIANTS = tuple(_DRIVER_CORRECT)

#: The strategies a point draws from.
STRATEGIES = ("random", "pct")

#: The primary-MMU events of the mshv scenario (``events=``), in its order.
EVENTS = _MSHV_EVENTS


#: Per-event probability of being in a point (0.3 for the others).
EVENT_P = {"mprotect": 0.12, "ksm": 0.2}


@dataclass(frozen=True)
class SweepPoint:
    """One point of the space: what a seed of the sweep runs."""

    space: str
    seed: int
    scenario: str
    variant: str
    strategy: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "seed": self.seed,
            "scenario": self.scenario,
            "variant": self.variant,
            "strategy": self.strategy,
            "params": dict(self.params),
        }

    def command(self) -> str:
        """The ``concsim run`` command of this point (the seed picks the schedule)."""
        ps = " ".join(f"--param {k}={_fmt(v)}" for k, v in self.params.items())
        return (
            f"concsim run --scenario {self.scenario} --variant {self.variant} "
            f"--strategy {self.strategy} --seed {self.seed} {ps}"
        )


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def _pages(rng: np.random.Generator) -> int:
    """1 to thousands, mostly small (the cost of a run grows with the pages a fault
    window and the HMM walk cover), with sizes next to the 2 MiB boundaries now and then."""
    band = rng.random()
    if band < 0.45:
        n = int(rng.integers(1, 17))
    elif band < 0.75:
        n = int(rng.integers(17, 129))
    elif band < 0.92:
        n = int(rng.integers(129, 701))
    elif band < 0.98:
        n = int(rng.integers(701, 2101))
    else:
        n = int(rng.integers(2101, 4501))
    if rng.random() < 0.1:
        k = max(1, round(n / 512))
        n = max(1, k * 512 + int(rng.integers(-1, 2)))
    return n


def draw_params(rng: np.random.Generator) -> dict[str, Any]:
    """A random point of the mshv scenario's parameters (every one of them)."""
    pages = _pages(rng)
    u = rng.random
    populated = float(rng.choice([0.0, 1.0, round(float(u()), 3)], p=[0.15, 0.25, 0.6]))
    # Each event is in a point with its own probability: the ones behind documented
    # hazards of correct variants (docs/findings.md) less often, so that most points can
    # still find something new.
    events = [e for e in EVENTS if u() < EVENT_P.get(e, 0.3)]
    hv_fail = str(rng.choice(["none", "holes", "all"], p=[0.8, 0.1, 0.1]))
    return {
        "pages": pages,
        "regions": int(rng.choice([1, 2, 3, 4], p=[0.6, 0.25, 0.1, 0.05])),
        "vcpus": int(rng.integers(0, 5)),
        "accesses": int(rng.integers(0, 7)),
        "writes": bool(u() < 0.7),
        "populated": populated,
        "zero_pages": 0 if u() < 0.7 else int(rng.integers(1, pages + 1)),
        "writable": bool(u() < 0.85),
        "vma_prot": "ro" if u() < 0.06 else "rw",
        "align": 0 if u() < 0.4 else int(rng.integers(1, 512)),
        "events": ",".join(events),
        "hv_fail": hv_fail,
        "hv_batch": 509 if u() < 0.8 else int(rng.integers(1, 41)),
        "alloc_fail": bool(u() < 0.1),
        "direct_reclaim": bool(u() < 0.08),
        "deposit_on_remap": bool(u() < 0.1),
        "pinned": bool(u() < 0.1),
        "destroy": bool(u() < 0.15),
        "overflow_region": bool(u() < 0.1),
        "audit_every": int(rng.choice([0, 1, 7, 50], p=[0.7, 0.1, 0.1, 0.1])),
    }


def draw_point(
    seed: int,
    space: str = "mshv",
    *,
    fixed: Mapping[str, Any] | None = None,
    variant: str | None = None,
    strategy: str | None = None,
) -> SweepPoint:
    """The point of seed ``seed``: a pure function of ``(space, seed)`` and the pins."""
    if space not in SPACES:
        raise UsageError(f"unknown sweep {space!r} (known: {', '.join(SPACES)})")
    rng = np.random.default_rng([SWEEP_SALT, seed])
    params = draw_params(rng)
    v = str(rng.choice(CORRECT_VARIANTS))
    s = str(rng.choice(STRATEGIES))
    if fixed:
        params.update(fixed)
    if not fixed or "zero_pages" not in fixed:
        # Zero pages are read-faulted holes: at most the pages left unpopulated.
        n = int(params["pages"])
        unpopulated = n - math.ceil(n * float(params["populated"]))
        params["zero_pages"] = min(int(params["zero_pages"]), max(0, unpopulated))
    return SweepPoint(space, seed, "default", variant or v, strategy or s, params)


# ---------------------------------------------------------------------------- known findings

Pred = Callable[[SweepPoint], bool]


@dataclass(frozen=True)
class KnownFinding:
    """A documented hazard of a correct variant: where it applies, what it looks like.

    ``applies(point)`` says the point has the finding's cause (parameters, variant);
    ``signatures`` are the failures it produces, as ``(kind, invariant, where)`` with
    ``None`` for "any".  A failure is this finding only if both hold.
    """

    name: str
    summary: str
    applies: Pred
    signatures: tuple[tuple[str | None, str | None, str | None], ...]

    def matches(self, point: SweepPoint, kind: str, invariant: str | None, where: str) -> bool:
        if not self.applies(point):
            return False
        return any(
            (k is None or k == kind) and (i is None or i == invariant) and (w is None or w == where)
            for k, i, w in self.signatures
        )


def _events(p: SweepPoint) -> set[str]:
    return {e for e in str(p.params.get("events", "")).split(",") if e}


def _variant(*names: str) -> Pred:
    return lambda p: p.variant in names


def _all(*preds: Pred) -> Pred:
    return lambda p: all(f(p) for f in preds)


def _param(name: str, pred: Callable[[Any], bool]) -> Pred:
    return lambda p: pred(p.params.get(name))


_SERIES = ("after-patch", "v3", "stateless")


def _readonly_vma(p: SweepPoint) -> bool:
    return p.params.get("vma_prot") == "ro" or "mprotect" in _events(p)


_S1_ANYWHERE = ("safety", "S1", None)
_S7_ANYWHERE = ("safety", "S7", None)

#: The hazards of docs/findings.md ("What the model says about the kernel code").  Each
#: name is the one the findings table gives it.  The first that matches names a failure,
#: so the most specific come first and the broadest (a region destroyed while events
#: run) last.
KNOWN_FINDINGS: tuple[KnownFinding, ...] = (
    KnownFinding(
        "deposit-in-nonblockable-callback",
        "the OOM reaper's non-blockable callback remaps, and a deposit on that remap "
        "allocates with GFP_KERNEL",
        _all(_param("deposit_on_remap", bool), lambda p: "oom" in _events(p)),
        (("sleep-in-atomic", "S6", None),),
    ),
    KnownFinding(
        "direct-reclaim-under-mreg-mutex",
        "a deposit under mreg_mutex may enter direct reclaim, which may invalidate the same "
        "region: mreg_mutex -> fs_reclaim -> invalidate_range_start -> mreg_mutex",
        # The fault path deposits under mreg_mutex in every revision; mainline's creation
        # maps NO_ACCESS first, so its faults only remap existing entries and need a
        # deposit only when the hypervisor asks on a remap, or when an entry is gone: a
        # failed remap's rollback unmaps the gfns the earlier calls of the same remap had
        # done (hv_fail; sweep seed 46454: the THP collapse's invalidation fails on a
        # hole, unmaps gfns 0-169, and a vCPU's fault then deposits under mreg_mutex).
        _all(
            _param("direct_reclaim", bool),
            lambda p: (
                p.variant in _SERIES
                or bool(p.params.get("deposit_on_remap"))
                or p.params.get("hv_fail", "none") != "none"
            ),
        ),
        (("lock-misuse", None, None), ("lock-order", "S4", None)),
    ),
    KnownFinding(
        "writable-over-readonly-vma",
        "the series asks HMM for write access only on a VM_WRITE VMA but maps what it gets "
        "with the region's WRITABLE flag (a read-only VMA: vma_prot=ro or an mprotect)",
        _all(_variant(*_SERIES), _readonly_vma),
        (_S7_ANYWHERE,),
    ),
    KnownFinding(
        "mainline-write-fault-on-readonly-vma",
        "mainline asks HMM for write access over the whole 512-page fault window: one "
        "read-only VMA in it (vma_prot=ro or an mprotect) fails the fault with -EPERM and "
        "the guest's access goes to the VMM",
        _all(_variant("before-patch"), _readonly_vma),
        (("liveness", "L3", None),),
    ),
    KnownFinding(
        "v1v2-creation-maps-zero-page-writable",
        "v1/v2 creation maps present read-only pages with the region's flags: the shared "
        "zero page becomes guest-writable (v3 added the COW skip)",
        _all(_variant("after-patch"), _param("zero_pages", lambda v: bool(v))),
        (_S7_ANYWHERE,),
    ),
    KnownFinding(
        "v1v2-creation-maps-ksm-page-writable",
        "v1/v2 creation maps a KSM-merged (write-protected, shared) page with the region's "
        "WRITABLE flag",
        _all(_variant("after-patch"), lambda p: "ksm" in _events(p)),
        (_S7_ANYWHERE,),
    ),
    KnownFinding(
        "failed-hole-remap-leaves-valid-runs",
        "a NO_ACCESS remap that fails on a hole in the middle of an invalidated range makes "
        "the callback return at once (B5.5), leaving the valid runs after it mapped; the "
        "core WARNs and frees the pages",
        _all(_param("hv_fail", lambda v: v == "holes"), _variant("after-patch", "v3")),
        (_S1_ANYWHERE, _S7_ANYWHERE),
    ),
    KnownFinding(
        "failed-teardown-hypercall",
        "the invalidate callback's NO_ACCESS remap fails (hv_fail=all, or a deposit the "
        "hypervisor asks for on that remap whose allocation fails), or the rollback's unmap "
        "does: the kernel WARNs and frees the pages while the SLAT still maps them",
        lambda p: (
            p.params.get("hv_fail") == "all"
            or bool(p.params.get("deposit_on_remap") and p.params.get("alloc_fail"))
        ),
        (_S1_ANYWHERE, _S7_ANYWHERE),
    ),
    KnownFinding(
        "destroy-removes-notifier-first",
        "mshv_region_destroy removes the interval notifier before it unmaps the SLAT (B10): "
        "an invalidation in between is not seen; regions are destroyed by the unmap ioctl "
        "(destroy) and by a failed creation's error path (an injected hypercall or "
        "allocation failure after creation mapped pages)",
        _all(
            lambda p: bool(
                p.params.get("destroy")
                or p.params.get("alloc_fail")
                or p.params.get("hv_fail", "none") != "none"
            ),
            lambda p: bool(_events(p)),
        ),
        (_S1_ANYWHERE, _S7_ANYWHERE),
    ),
)


def classify(point: SweepPoint, kind: str, invariant: str | None, where: str) -> str | None:
    """The name of the known finding this failure is, or None: a new failure."""
    if point.variant not in CORRECT_VARIANTS:
        return None  # a mutant or a user variant: every failure is reported
    for kf in KNOWN_FINDINGS:
        if kf.matches(point, kind, invariant, where):
            return kf.name
    return None
