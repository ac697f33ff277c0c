"""The snapshot's PMD flag is the mapping level HMM reports (mm/hmm.c: hmm_vma_handle_pmd
sets order 9, hmm_vma_handle_pte none), not the order of the folio behind the page."""

from __future__ import annotations

import numpy as np

from concsim.driver.dmirror._test_hmm import (
    HMM_DMIRROR_PROT_PMD,
    HMM_DMIRROR_PROT_WRITE,
    HMM_DMIRROR_SNAPSHOT,
)
from concsim.exploration._conformance import run_case
from concsim.exploration._hmm_selftests import Case
from concsim.exploration._selftest import PMD_PAGES, PROT_READ, PROT_WRITE, HmmBuffer, Selftest


async def _thp_then_partial_munmap(t: Selftest) -> None:
    n = PMD_PAGES
    ptr = t.mmap(2 * n, PROT_READ | PROT_WRITE)
    ptr = -(-ptr // n) * n
    t.assert_eq("madvise", await t.madvise_hugepage(ptr, n), 0)
    await t.store(ptr, np.arange(n, dtype=np.int64))
    d = await t.hmm_open(0)
    b = HmmBuffer(ptr, n, np.zeros(n, dtype=np.uint8))
    t.assert_eq("ret", await t.hmm_dmirror_cmd(d, HMM_DMIRROR_SNAPSHOT, b, n), 0)
    t.assert_eq("pmd-mapped", b.mirror, np.full(n, HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD))
    # Unmapping the second half splits the PMD: the first half is PTE-mapped now, pages of
    # the same (still order-9) folio.
    t.assert_eq("munmap", await t.munmap(ptr + n // 2, n // 2), 0)
    t.assert_eq("folio order", int(t.pages.order[t.mm.pte_pfn[ptr]]), 9)
    h = HmmBuffer(ptr, n // 2, np.zeros(n // 2, dtype=np.uint8))
    t.assert_eq("ret", await t.hmm_dmirror_cmd(d, HMM_DMIRROR_SNAPSHOT, h, n // 2), 0)
    t.assert_eq("pte-mapped", h.mirror, np.full(n // 2, HMM_DMIRROR_PROT_WRITE))


def test_a_split_thp_snapshots_without_the_pmd_flag() -> None:
    """The old model took the folio's order: after the partial munmap it still reported
    WRITE|PMD for the pages left, which the PTEs map one by one."""
    out = run_case(Case("thp_partial_munmap", "", _thp_then_partial_munmap))
    assert out.passed, out.failure
    assert "pte-mapped as expected" in out.produced
