"""The mshv scenarios: ``default`` and ``small`` (and any parameterisation of them)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from concsim._errors import UsageError
from concsim.scenarios._mshv_world import EVENTS, MshvWorld
from concsim.scenarios._registry import Param, ParamValue, Scenario, register


def _variants() -> Mapping[str, Any]:
    from concsim.driver import VARIANTS

    return VARIANTS


def _params(**defaults: ParamValue) -> tuple[Param, ...]:
    spec = (
        Param("pages", int, 64, "pages per region", minimum=1, maximum=1 << 22),
        Param("regions", int, 1, "regions in the partition", minimum=1, maximum=16),
        Param("vcpus", int, 2, "vCPU tasks", minimum=0, maximum=16),
        Param("accesses", int, 3, "guest accesses per vCPU", minimum=0),
        Param("writes", bool, True, "odd-numbered accesses write (if the region is writable)"),
        Param(
            "populated",
            float,
            0.5,
            "fraction of pages populated before creation",
            minimum=0.0,
            maximum=1.0,
        ),
        Param(
            "zero_pages",
            int,
            0,
            "unpopulated pages read-faulted to the shared zero page",
            minimum=0,
        ),
        Param("writable", bool, True, "region mapped writable (MSHV_SET_MEM_BIT_WRITABLE)"),
        Param("vma_prot", str, "rw", "protection of the VMAs", choices=("rw", "ro")),
        Param(
            "align",
            int,
            0,
            "offset of regions from 2 MiB alignment, in pages",
            minimum=0,
            maximum=511,
        ),
        Param(
            "events",
            str,
            "migrate,reclaim,munmap,oom",
            f"primary-MMU events racing the driver (any of: {', '.join(EVENTS)})",
        ),
        Param("hv_fail", str, "none", "hypercall hard failures", choices=("none", "holes", "all")),
        Param("hv_batch", int, 509, "reps per map hypercall (HV_MAP_GPA_BATCH_SIZE)", minimum=1),
        Param("alloc_fail", bool, False, "GFP_KERNEL allocations may fail"),
        Param("direct_reclaim", bool, False, "GFP_KERNEL allocations may enter direct reclaim"),
        Param(
            "deposit_on_remap",
            bool,
            False,
            "the hypervisor may ask for a deposit even when only changing entries",
        ),
        Param(
            "pinned",
            bool,
            False,
            "regions are pinned, as on an encrypted (SNP) partition (B8; the SNP host-access "
            "hypercalls are not modelled)",
        ),
        Param("destroy", bool, False, "the VMM unmaps the regions at the end"),
        Param(
            "overflow_region",
            bool,
            False,
            "the VMM also maps a region whose gfn range wraps past 2^64",
        ),
        Param(
            "retry_bound", int, 64, "-EBUSY retries before a livelock (L1) is reported", minimum=1
        ),
        Param(
            "refault_bound", int, 16, "intercepts of one access before L3 is reported", minimum=1
        ),
        Param(
            "audit_every", int, 0, "full numpy audit every N steps (0: only at the end)", minimum=0
        ),
    )
    return tuple(
        Param(
            p.name, p.type, defaults.get(p.name, p.default), p.help, p.choices, p.minimum, p.maximum
        )
        for p in spec
    )


def _step_limit(params: dict[str, ParamValue]) -> int:
    """Steps a correct run of these parameters may take, with room to spare.

    The work grows with the pages: creation maps a half-populated region with one hypercall
    per run of equal validity (every page, when they alternate), invalidations remap and
    zap what they cover, destroy unmaps; and with the guest's accesses, each of which may
    fault in a 512-page window (a fault per page, a walk per PMD) up to ``refault_bound``
    times.  A fixed limit called a correct 1 GiB region a livelock.
    """
    pages = int(params["pages"]) * int(params["regions"])
    accesses = int(params["accesses"]) * int(params["vcpus"])
    return 4 * pages + 2 * accesses * int(params["refault_bound"]) * 600


def _build(rt: Any, params: dict[str, ParamValue], variant: Any) -> None:
    events = [e.strip() for e in str(params["events"]).split(",") if e.strip()]
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        from concsim._errors import UsageError

        raise UsageError(f"unknown event {unknown[0]!r} in events= (known: {', '.join(EVENTS)})")
    world = MshvWorld(rt, params, variant)
    world.spawn_tasks()


def _check_params(params: dict[str, ParamValue]) -> None:
    """``zero_pages`` read-faults unpopulated pages: there are only so many of them."""
    pages = int(params["pages"])
    holes = pages - math.ceil(pages * float(params["populated"]))
    if int(params["zero_pages"]) > holes:
        raise UsageError(
            f"parameter zero_pages={params['zero_pages']} is more than the {holes} unpopulated "
            f"pages a region of pages={pages} with populated={params['populated']} has"
        )


register(
    Scenario(
        name="default",
        summary="a 64-page movable region, half populated, 2 vCPUs; creation races migration, "
        "reclaim, a partial munmap and an OOM-reaper pass",
        build=_build,
        params=_params(),
        variants=_variants,
        default_variant="after-patch",
        max_steps=200_000,
        pct_k=150,
        check_params=_check_params,
        step_limit=_step_limit,
    )
)

register(
    Scenario(
        name="small",
        summary="4 pages, 1 vCPU, creation and one migration: small enough for exhaustive search",
        build=_build,
        params=_params(pages=4, vcpus=1, accesses=2, events="migrate"),
        variants=_variants,
        default_variant="after-patch",
        max_steps=50_000,
        pct_k=16,
        check_params=_check_params,
        step_limit=_step_limit,
    )
)
