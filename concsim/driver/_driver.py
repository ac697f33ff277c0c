"""The driver object: the mshv functions plus the world they run in.

A *variant* is a subclass of :class:`MshvDriverBase` (through one of the shipped variants)
that overrides some of its methods; each method mirrors one kernel function.  The driver
holds the model of everything around it: the process's mm, the hypervisor (SLAT and
hypercalls), the kernel allocator, the partition.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from types import FunctionType, MethodType
from typing import Any, ClassVar

from concsim.driver._region import MshvPartition
from concsim.driver._root_main import MshvRootMain
from concsim.engine import Runtime
from concsim.kernel._alloc import KernelAllocator
from concsim.kernel._hv import Hypervisor
from concsim.kernel._mm import MM

#: The public variant API (docs/variant-api.md): the methods that mirror kernel functions,
#: which a user variant may override.  Renaming one is an announced change (CHANGELOG.md);
#: tests/model/test_variant_api.py keeps this list, the classes and the doc in step.
KERNEL_FUNCTIONS: tuple[str, ...] = (
    # drivers/hv/mshv_regions.c
    "mshv_chunk_stride",
    "mshv_region_process_pfns",
    "mshv_region_process_hole",
    "mshv_region_process_range",
    "mshv_region_chunk_remap",
    "mshv_region_chunk_unmap",
    "mshv_region_remap_pfns",
    "mshv_region_invalidate_pfns",
    "mshv_region_unmap",
    "mshv_region_create",
    "mshv_region_movable_init",
    "mshv_region_movable_fini",
    "mshv_region_get",
    "mshv_region_put",
    "mshv_region_destroy",
    "mshv_region_invalidate",
    "hmm_default_flags",
    "mshv_region_hmm_fault_and_lock",
    "mshv_region_collect_pfns",
    "collect_filter",
    "mshv_region_collect_and_map",
    "hmm_fault_and_lock_loop",
    "mshv_region_range_fault",
    "mshv_region_handle_gfn_fault",
    "mshv_map_movable_region",
    "mshv_region_interval_invalidate",
    "mshv_map_pinned_region",
    # drivers/hv/mshv_root_main.c
    "check_add_overflow",
    "mshv_partition_create_region",
    "mshv_map_user_memory",
    "mshv_map_user_memory_errout",
    "mshv_unmap_user_memory",
    "mshv_partition_region_by_gfn_get",
    "mshv_intercept_access_allowed",
    "mshv_handle_gpa_intercept",
)

#: The driver paths whose hypercalls are also counted apart ("hypercalls.<label>" in a
#: run's stats; ``concsim compare`` shows them): the innermost one a task is in wins, so the
#: invalidation a COW break starts inside a fault counts as "invalidate".
HYPERCALL_PATHS: dict[str, str] = {
    "mshv_map_movable_region": "creation",
    "mshv_map_pinned_region": "creation",
    "mshv_region_handle_gfn_fault": "fault",
    "mshv_region_interval_invalidate": "invalidate",
    "mshv_region_unmap": "destroy",
}


class MshvDriverBase(MshvRootMain):
    """The after-patch driver (v1/v2 of "Map populated pages on movable region creation").

    Class attributes describe the variant for listings and for ``concsim mutants``.
    """

    #: the name ``--variant`` selects it by
    name: ClassVar[str] = "after-patch"
    #: one line for ``concsim variants``
    summary: ClassVar[str] = ""
    #: True for the catalog's deliberately broken variants
    mutant: ClassVar[bool] = False
    #: for mutants: the failure kinds / invariants the catalog expects
    expect_kinds: ClassVar[tuple[str, ...]] = ()
    expect_invariants: ClassVar[tuple[str, ...]] = ()
    #: for mutants: the scenario and parameters on which it must be caught
    catch_scenario: ClassVar[str] = "default"
    catch_params: ClassVar[dict[str, object]] = {}
    #: whether movable regions keep an mreg_pfns array (false for the stateless revision)
    has_pfns_array: ClassVar[bool] = True
    #: whether creating a movable region walks its whole range with hmm_range_fault, so
    #: that a VMA hole makes the map ioctl fail with -EFAULT (mainline looks up the VMA of
    #: the first page only and maps the rest NO_ACCESS without looking)
    creation_walks_range: ClassVar[bool] = True

    def __init__(
        self,
        rt: Runtime,
        mm: MM,
        hv: Hypervisor,
        kalloc: KernelAllocator,
        partition: MshvPartition,
        *,
        retry_bound: int = 64,
    ) -> None:
        self.rt = rt
        self.mm = mm
        self.hv = hv
        self.kalloc = kalloc
        self.partition = partition
        self.retry_bound = retry_bound
        self._regions_made = 0
        # The wrappers depend only on the class's methods: built once per method and bound
        # here (a world, so a driver, is built for every schedule).
        cls = type(self)
        cache = cls.__dict__.get("_path_wrappers")
        if cache is None:
            cache = {}
            cls._path_wrappers = cache  # type: ignore[attr-defined]
        for method, label in HYPERCALL_PATHS.items():
            fn = getattr(cls, method)
            got = cache.get(method)
            if got is None or got[0] is not fn:  # first driver, or the method was replaced
                plain = isinstance(inspect.getattr_static(cls, method), FunctionType)
                got = cache[method] = (fn, _attributed(label, fn) if plain else None)
            wrapper = got[1]
            if wrapper is None:  # a staticmethod or another callable: wrapped bound
                bound = getattr(self, method)
                wrapper = _attributed(label, lambda _self, *a, _f=bound, **k: _f(*a, **k))
            setattr(self, method, MethodType(wrapper, self))


def _attributed(label: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap a driver path (a method of HYPERCALL_PATHS, unbound) so the hypercalls made
    while a task is inside it are also counted under ``hypercalls.<label>``.  The class's
    own method is wrapped, so a variant's override is wrapped as well; bookkeeping only, no
    scheduling point."""

    async def attributed(self: MshvDriverBase, *args: Any, **kwargs: Any) -> Any:
        task = self.rt.current
        assert task is not None, "driver paths run inside model tasks"
        stack = self.hv.callers.setdefault(task.id, [])
        stack.append(label)
        try:
            return await fn(self, *args, **kwargs)
        finally:
            stack.pop()

    # What functools.wraps would copy that anyone reads.
    attributed.__name__ = fn.__name__
    attributed.__qualname__ = fn.__qualname__
    attributed.__doc__ = fn.__doc__
    attributed.__wrapped__ = fn  # type: ignore[attr-defined]
    return attributed
