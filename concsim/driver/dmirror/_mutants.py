"""The dmirror mutant catalog: lib/test_hmm.c with one bug put in, as a patch of one method.

Each is caught on the ``dmirror`` scenario (or the parameterisation in ``catch_params``)
with the invariant in ``expect_invariants`` (see ``concsim.checks._dmirror``); a stale
entry is D1, or D2 when the first PTE change it survives is a write-protection:

* D1: the device page table maps a page the CPU no longer maps at that address (a stale
  entry, found where it is stored, where the PTE changes, or where the page is freed);
* D2: a device write lands in a page the process does not map writable there;
* D3: a snapshot reports a pfn the CPU no longer maps;
* D4: the device maps a page for atomic access that the CPU can reach;
* S6: a callback sleeps in a non-blockable invalidation (the OOM reaper's).
"""

from __future__ import annotations

from concsim.driver._patching import patched
from concsim.driver.dmirror._test_hmm import DmirrorDriver


class DmirrorMutant(DmirrorDriver):
    mutant = True


class NoReadRetry(DmirrorMutant):
    name = "dmirror-no-read-retry"
    summary = "dmirror_range_fault stores HMM's pfns without mmu_interval_read_retry"
    expect_kinds = ("safety",)
    expect_invariants = ("D1", "D2")

    dmirror_range_fault = patched(
        DmirrorDriver.dmirror_range_fault,
        ("if await mmu_interval_read_retry(r.notifier, r.notifier_seq):", "if False:"),
    )


class UpdateOutsideLock(DmirrorMutant):
    name = "dmirror-update-outside-lock"
    summary = "the callback sets the seq and erases entries before taking the mutex"
    expect_kinds = ("safety",)
    expect_invariants = ("D1", "D2")

    dmirror_interval_invalidate = patched(
        DmirrorDriver.dmirror_interval_invalidate,
        (
            "    if mmu_notifier_range_blockable(r):\n",
            "    await mmu_interval_set_seq(mni, cur_seq)\n"
            "    self.dmirror_do_update(d, r.start, r.end)\n"
            "    if mmu_notifier_range_blockable(r):\n",
        ),
        (
            "    await mmu_interval_set_seq(mni, cur_seq)\n"
            "    self.dmirror_do_update(d, r.start, r.end)\n"
            "    await d.mutex.unlock()\n",
            "    await d.mutex.unlock()\n",
        ),
    )


class NonblockIgnored(DmirrorMutant):
    name = "dmirror-nonblock-ignored"
    summary = "the callback takes the mutex even when the range is not blockable"
    expect_kinds = ("sleep-in-atomic",)
    expect_invariants = ("S6",)

    dmirror_interval_invalidate = patched(
        DmirrorDriver.dmirror_interval_invalidate,
        ("if mmu_notifier_range_blockable(r):", "if True:"),
    )


class NoSetSeq(DmirrorMutant):
    name = "dmirror-no-set-seq"
    summary = "the callback erases entries but never calls mmu_interval_set_seq"
    expect_kinds = ("safety",)
    expect_invariants = ("D1", "D2")

    dmirror_interval_invalidate = patched(
        DmirrorDriver.dmirror_interval_invalidate,
        ("    await mmu_interval_set_seq(mni, cur_seq)\n", ""),
    )


class UpdateFirstPageOnly(DmirrorMutant):
    name = "dmirror-update-first-page"
    summary = "dmirror_do_update erases only the first page of the invalidated range"
    expect_kinds = ("safety",)
    expect_invariants = ("D1", "D2")

    dmirror_do_update = patched(
        DmirrorDriver.dmirror_do_update,
        ("hi = min(end + 1, d.mm.nr_vpns)", "hi = min(start + 1, d.mm.nr_vpns)"),
    )


class WriteIgnoresTag(DmirrorMutant):
    name = "dmirror-write-ignores-tag"
    summary = "dmirror_do_write writes through read-only entries (no DPT_XA_TAG_WRITE check)"
    expect_kinds = ("safety",)
    expect_invariants = ("D2",)

    dmirror_do_write = patched(
        DmirrorDriver.dmirror_do_write,
        ("if not pfn or not d.pt_write[vpn]:", "if not pfn:"),
    )


class SnapshotNoRetry(DmirrorMutant):
    name = "dmirror-snapshot-no-retry"
    summary = "dmirror_range_snapshot reports HMM's view without mmu_interval_read_retry"
    expect_kinds = ("safety",)
    expect_invariants = ("D3",)

    dmirror_range_snapshot = patched(
        DmirrorDriver.dmirror_range_snapshot,
        ("if await mmu_interval_read_retry(notifier, r.notifier_seq):", "if False:"),
    )


class ExclusiveUnlockEarly(DmirrorMutant):
    name = "dmirror-exclusive-unlock-early"
    summary = "dmirror_exclusive unlocks the folio before mapping it for atomic access"
    expect_kinds = ("safety",)
    expect_invariants = ("D4",)
    catch_params = {"exclusives": 1, "cpu_writes": 4, "events": "migrate"}

    dmirror_exclusive = patched(
        DmirrorDriver.dmirror_exclusive,
        (
            "        ret = await self.dmirror_atomic_map(d, vpn, pfn)\n"
            "        folio_unlock(mm, pfn)\n",
            "        folio_unlock(mm, pfn)\n"
            "        ret = await self.dmirror_atomic_map(d, vpn, pfn)\n",
        ),
    )


MUTANTS: dict[str, type[DmirrorDriver]] = {
    m.name: m
    for m in (
        NoReadRetry,
        UpdateOutsideLock,
        NonblockIgnored,
        NoSetSeq,
        UpdateFirstPageOnly,
        WriteIgnoresTag,
        SnapshotNoRetry,
        ExclusiveUnlockEarly,
    )
}
