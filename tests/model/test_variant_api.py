"""The variant API is public (docs/variant-api.md): renaming a listed method breaks here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import concsim.driver as driver
from concsim.driver import KERNEL_FUNCTIONS, MshvDriverBase
from concsim.driver._regions import MshvRegions
from concsim.driver._root_main import MshvRootMain

DOC = Path(__file__).resolve().parents[2] / "docs" / "variant-api.md"

#: Pinned copy: changing the API means changing this list, the doc and CHANGELOG.md.
PINNED = (
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
    "check_add_overflow",
    "mshv_partition_create_region",
    "mshv_map_user_memory",
    "mshv_map_user_memory_errout",
    "mshv_unmap_user_memory",
    "mshv_partition_region_by_gfn_get",
    "mshv_intercept_access_allowed",
    "mshv_handle_gpa_intercept",
)


def test_kernel_functions_are_pinned() -> None:
    assert tuple(KERNEL_FUNCTIONS) == PINNED


def test_every_listed_method_exists_on_the_base_class() -> None:
    for name in KERNEL_FUNCTIONS:
        assert callable(getattr(MshvDriverBase, name, None)), name


def test_the_list_covers_every_public_driver_method() -> None:
    public = {
        k
        for c in (MshvRegions, MshvRootMain)
        for k, v in vars(c).items()
        if not k.startswith("_") and callable(v)
    }
    assert public == set(KERNEL_FUNCTIONS)


def test_the_doc_table_lists_exactly_the_kernel_functions() -> None:
    rows = re.findall(
        r"^\| `(\w+)` \| .* \| mshv_(?:regions|root_main)\.c \|", DOC.read_text(), flags=re.M
    )
    assert rows == list(KERNEL_FUNCTIONS)


def test_the_classes_and_helpers_a_variant_uses_are_exported() -> None:
    for name in (
        "AfterPatch",
        "BeforePatch",
        "V3",
        "Stateless",
        "MshvDriverBase",
        "patched",
        "load_variant",
        "KERNEL_FUNCTIONS",
    ):
        assert hasattr(driver, name), name
    sig = inspect.signature(MshvDriverBase.__init__)
    assert list(sig.parameters)[1:6] == ["rt", "mm", "hv", "kalloc", "partition"]
