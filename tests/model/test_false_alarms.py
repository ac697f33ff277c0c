"""Regression tests for false alarms of the correct variants (issue 12), each a forced
interleaving that the old model reported (S1, or F3 for a PTE left writable in a read-only
VMA) and the kernel makes safe.

The interleavings are forced by a :class:`Script` strategy that runs one named task until
it is parked before a named operation (or done), then the next, so they do not depend on a
schedule string and survive new scheduling points elsewhere in the model.  Each test also
checks that the script really reached the racy window (the state it asserts on exists only
there), so a script that silently stopped matching would fail too.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from concsim.driver import VARIANTS, BeforePatch
from concsim.engine import DONE, Failure, Runtime, Task
from concsim.kernel import Completion
from concsim.kernel._mm import PTE_PRESENT, PTE_PROTNONE, VM_WRITE
from concsim.kernel._mm_events import (
    change_prot_numa,
    exit_mmap,
    madvise_dontneed,
    migrate_page,
    mprotect_readonly,
    oom_reap,
)
from concsim.kernel._mm_fault import handle_mm_fault
from concsim.scenarios._mshv_world import MshvWorld
from concsim.strategies import Replay

from ..checks.world import clean, make_world, run_mshv

U = 1024  # hva page of gfn 0 (region 0)
CORRECT = ("before-patch", "after-patch", "v3", "stateless")

Park = Callable[[Task], bool]


def before(*ops: str) -> Park:
    """Park the task when it announces one of ``ops`` (it has not performed it yet)."""
    return lambda t: t.op in ops


def done(t: Task) -> bool:
    return t.state == DONE


class Script:
    """Run ``plan[0]``'s task until its park predicate holds, then ``plan[1]``'s, ...

    When the preferred task cannot run (blocked) or the plan is used up, the current task
    keeps running (choice 0).  Environment choices are all ordinary.  ``reached`` lists the
    plan entries whose park predicate held, so a test can assert the window was reached.
    """

    name = "script"

    def __init__(self, plan: list[tuple[str, Park]]) -> None:
        self.plan = plan
        self.i = 0
        self.reached: list[str] = []

    def advance(self, rt: Runtime) -> None:
        """Move past every plan entry whose task is parked (also called after the run)."""
        byname = {t.name: t for t in rt.tasks}
        while self.i < len(self.plan):
            name, park = self.plan[self.i]
            t = byname[name]
            if not park(t):
                break
            self.reached.append(name)
            self.i += 1

    def pick_task(self, rt: Runtime, n: int) -> int:
        self.advance(rt)
        if self.i < len(self.plan):
            want = self.plan[self.i][0]
            for k, c in enumerate(rt.candidates()):
                if c.name == want:
                    return k
        return 0

    def pick_env(self, rt: Runtime, label: str, n: int) -> int:
        return 0


def run_script(
    variant: str,
    tasks: Callable[[MshvWorld, Completion], dict[str, object]],
    plan: list[tuple[str, Park]],
    **params: object,
) -> tuple[MshvWorld, Failure | None, Script]:
    """A default-scenario world (no vCPU tasks, no events); task ``vmm`` creates region 0
    and completes ``ready``; ``tasks(w, ready)`` gives the other tasks' coroutines."""
    script = Script([("vmm", done), *plan])
    rt = Runtime(Replay([], strict=False), max_steps=50_000, trace=True)
    rt.strategy = script
    w = make_world(rt, VARIANTS[variant], **params)
    ready = Completion(rt, "ready")

    async def vmm() -> None:
        ret = await w.driver.mshv_map_user_memory(w.partition, w.mems[0])
        assert ret == 0, ret
        await ready.complete_all()

    rt.spawn("vmm", vmm())
    for name, coro in tasks(w, ready).items():
        rt.spawn(name, coro)  # type: ignore[arg-type]
    f = rt.run()
    script.advance(rt)
    return w, f, script


async def _fault(w: MshvWorld, ready: Completion, gfn: int) -> None:
    """The vCPU's GPA fault on ``gfn`` (the driver's handler, as the intercept calls it)."""
    await ready.wait_for_completion()
    region = w.partition.pt_mem_regions[0]
    assert await w.driver.mshv_region_handle_gfn_fault(region, gfn)


@pytest.mark.parametrize("variant", CORRECT)
@pytest.mark.parametrize("zap", ["madvise", "oom"])
def test_remove_migration_ptes_leaves_a_pte_zapped_and_refaulted_meanwhile(
    variant: str, zap: str
) -> None:
    """Migration has replaced the PTE of hva page U with a migration entry and ended its
    invalidation; before ``remove_migration_ptes`` a zap (MADV_DONTNEED or the OOM reaper
    on that page: ``events=migrate,madvise`` and ``events=migrate,...,oom``) clears it and a
    GPA fault maps a fresh page, which the driver installs in the SLAT.  The kernel's
    rmap walk (PVMW_MIGRATION) finds no migration entry there and restores nothing; the old
    model overwrote the fresh PTE with the migration target without an invalidation (S1:
    "hva page 1024 stopped mapping pfn N while the SLAT still grants gfn 0")."""

    def tasks(w: MshvWorld, ready: Completion) -> dict[str, object]:
        async def migrate() -> None:
            await ready.wait_for_completion()
            await migrate_page(w.mm, U)

        async def zapper() -> None:
            await ready.wait_for_completion()
            if zap == "madvise":
                await madvise_dontneed(w.mm, U, 1)
            else:
                await oom_reap(w.mm, U, 1)

        return {"migrate": migrate(), "zap": zapper(), "vcpu": _fault(w, ready, 0)}

    w, f, script = run_script(
        variant,
        tasks,
        [
            ("migrate", before("remove_migration_ptes")),
            ("zap", done),
            ("vcpu", done),
        ],
    )
    clean(f)
    assert script.reached == ["vmm", "migrate", "zap", "vcpu"]
    # The page the fault mapped stays mapped and the SLAT still grants it.
    assert int(w.mm.pte_state[U]) == PTE_PRESENT
    assert w.slat.grants(0)
    assert int(w.slat.pfn[0]) == int(w.mm.pte_pfn[U])
    # Nothing leaked or freed twice: the migration dropped both the source and its copy.
    assert w.pages.refcount.min() >= 0


@pytest.mark.parametrize("variant", CORRECT)
def test_exit_mmap_unmaps_inside_an_invalidation_of_its_own(variant: str) -> None:
    """``exit_mmap`` runs the RELEASE round (the driver tears the region's SLAT down), then
    a GPA fault maps the pages again (its seq was read after the round), then the VMAs are
    unmapped.  In the kernel ``unmap_vmas`` wraps the zap in an MMU_NOTIFY_UNMAP
    invalidation of [0, ULONG_MAX), so the driver tears the new mappings down before the
    pages go; the old model zapped with no invalidation (S1 at ``events=exit``)."""

    def tasks(w: MshvWorld, ready: Completion) -> dict[str, object]:
        async def exiting() -> None:
            await ready.wait_for_completion()
            await exit_mmap(w.mm)

        return {"exit": exiting(), "vcpu": _fault(w, ready, 0)}

    w, f, script = run_script(
        variant,
        tasks,
        [("exit", before("down_read", "down_write")), ("vcpu", done)],
    )
    clean(f)
    assert script.reached == ["vmm", "exit", "vcpu"]
    assert not w.slat.grants(0)
    assert not (w.mm.pte_state == PTE_PRESENT).any()


@pytest.mark.parametrize("window", ["try_to_migrate_one", "remove_migration_ptes"])
def test_migration_keeps_the_write_protection_of_an_mprotect_that_came_in_between(
    window: str,
) -> None:
    """An mprotect(PROT_READ) of hva page U runs while a migration of U is under way:
    before ``try_to_migrate_one`` replaces the PTE, or while the migration entry is in
    place.  The kernel's ``try_to_migrate_one`` encodes the write bit of the PTE it clears,
    ``change_pte_range`` makes a writable migration entry readable, and
    ``remove_migration_pte`` restores it with ``maybe_mkwrite`` (writable only in a VM_WRITE
    VMA), so the new page is mapped read-only.  The old model restored the write bit it
    had seen before either (a writable PTE in a read-only VMA): mainline's GPA fault, which
    asks HMM for write access, then succeeded where the kernel returns -EPERM (F3, sweep
    seed 170830)."""

    def tasks(w: MshvWorld, ready: Completion) -> dict[str, object]:
        async def migrate() -> None:
            await ready.wait_for_completion()
            w.rt.ext["pfn"] = int(w.mm.pte_pfn[U])
            await migrate_page(w.mm, U)

        async def protect() -> None:
            await ready.wait_for_completion()
            await mprotect_readonly(w.mm, U, 1)

        async def vcpu() -> None:
            await ready.wait_for_completion()
            region = w.partition.pt_mem_regions[0]
            w.rt.ext["ok"] = await w.driver.mshv_region_handle_gfn_fault(region, 0)

        return {"migrate": migrate(), "mprotect": protect(), "vcpu": vcpu()}

    w, f, script = run_script(
        "before-patch",
        tasks,
        [("migrate", before(window)), ("mprotect", done), ("migrate", done), ("vcpu", done)],
    )
    clean(f)  # F3: the fault asks for write on a read-only VMA and gets -EPERM
    assert script.reached == ["vmm", "migrate", "mprotect", "migrate", "vcpu"]
    assert int(w.mm.pte_state[U]) == PTE_PRESENT
    assert int(w.mm.pte_pfn[U]) != w.rt.ext["pfn"]  # the page did move
    assert not w.mm.pte_write[U]
    assert w.rt.ext["ok"] is False
    assert not w.slat.grants(0)


def test_mprotect_makes_a_numa_hinting_pte_read_only() -> None:
    """NUMA balancing made hva page U protnone (keeping its write bit), then an
    mprotect(PROT_READ) covered it.  In the kernel ``change_pte_range`` gives every present
    PTE, protnone included, the VMA's new protection (``pte_modify``), so the NUMA hinting
    fault that follows finds an ordinary read-only PTE.  The old model left the protnone
    PTE alone and the hinting fault restored it writable in a read-only VMA."""

    async def body(w: MshvWorld, region: object) -> None:
        await change_prot_numa(w.mm, U, 1)
        assert int(w.mm.pte_state[U]) == PTE_PROTNONE
        assert w.mm.pte_write[U]
        await mprotect_readonly(w.mm, U, 1)
        vma = w.mm.vma_lookup(U)
        assert vma is not None
        assert not vma.vm_flags & VM_WRITE
        await w.mm.mmap_lock.down_read()
        assert await handle_mm_fault(w.mm, vma, U, write=False) == 0
        await w.mm.mmap_lock.up_read()

    w, _rt, f = run_mshv(body, variant=BeforePatch)
    clean(f)
    assert int(w.mm.pte_state[U]) == PTE_PRESENT
    assert not w.mm.pte_write[U]
