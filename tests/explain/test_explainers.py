"""The explainers one by one: the catalogue that picks them, the model-agnostic ones on the
engine's example worlds, and the mshv blame rule on hand-built worlds (the step that made
the invariant false is named, not an invalidation that happened to be around)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import concsim
from concsim._errors import UsageError
from concsim.checks import _catalogue as catalogue
from concsim.checks._catalogue import (
    L1,
    L4,
    LOST_UPDATE,
    S1,
    Invariant,
    invariant,
    invariants,
    register_invariant,
)
from concsim.driver import AfterPatch
from concsim.driver._patching import patched
from concsim.driver._region import MshvMemRegion
from concsim.driver._regions import MshvRegions
from concsim.engine import Failure, Runtime, TraceEntry
from concsim.explain import KIND_EXPLAINERS, explain, explainer_for
from concsim.explain._livelock import find_loop
from concsim.kernel import Completion
from concsim.kernel._mm import PTE_PRESENT
from concsim.kernel._mm_events import madvise_dontneed, munmap
from concsim.scenarios._mshv_world import MshvWorld
from concsim.strategies import Replay

from ..checks.world import make_world, run_mshv
from ..engine.helpers import run_world
from ..model.test_false_alarms import Script, before, done

PKG = Path(concsim.__file__).parent
U = 1024  # hva page of gfn 0 in the hand-built world


@dataclass
class _Run:
    """What explain() needs of a RunResult, for a hand-built runtime."""

    failure: Failure | None
    trace: list[TraceEntry]
    scenario: str = "default"
    variant: str = "after-patch"
    params: dict[str, Any] = field(default_factory=dict)

    def replay_command(self) -> str:
        return "(hand-built world)"


def _mshv_run(rt: Runtime, failure: Failure | None, w: MshvWorld) -> _Run:
    return _Run(failure, rt.trace, params=dict(w.params))


# ---------------------------------------------------------------------- the catalogue


def test_every_invariant_raised_anywhere_is_in_the_catalogue() -> None:
    """Model code names invariants with the catalogue's ids: every ``invariant=`` given as
    a string or a constant anywhere in the package resolves to a registered entry."""
    consts = {k: v for k, v in vars(catalogue).items() if k.isupper() and isinstance(v, str)}
    named: set[str] = set()

    def add(v: ast.expr) -> None:
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            named.add(v.value)
        elif isinstance(v, ast.Name) and v.id in consts:
            named.add(consts[v.id])

    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "invariant":
                add(node.value)  # rt.fail(..., invariant=X), rt.check(..., invariant=X)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "_fail"
                and node.args
            ):
                add(node.args[0])  # the oracles' self._fail(X, message, ...)
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr == "deadlock_invariant"
                for t in node.targets
            ):
                add(node.value)
    assert {"S1", "S3", "L3", "L4", "gfn-overlap", "lost-update"} <= named
    assert named <= set(invariants()), named - set(invariants())


def test_each_catalogue_entry_names_a_loadable_explainer() -> None:
    from concsim.explain import load_explainer

    for inv in invariants().values():
        assert inv.name, inv
        assert inv.meaning, inv
        assert callable(load_explainer(inv.explainer)), inv
        path = PKG.parent / (inv.explainer.replace(".", "/") + ".py")
        assert path.is_file(), (inv.id, path)
    for module in KIND_EXPLAINERS.values():
        assert callable(load_explainer(module))


def test_the_catalogue_is_open_to_other_models_and_refuses_conflicts() -> None:
    mine = Invariant("X-test-1", "a test rule", "what it says", "concsim.explain._lost_update")
    assert register_invariant(mine) is mine
    assert register_invariant(mine) is mine  # the same entry again is fine
    assert invariant("X-test-1") == mine
    assert explainer_for("safety", "X-test-1") == "concsim.explain._lost_update"
    with pytest.raises(UsageError, match="registered twice"):
        register_invariant(Invariant("X-test-1", "another", "rule"))
    with pytest.raises(UsageError, match="registered twice"):
        register_invariant(Invariant(S1, "no stale SLAT access", "something else"))
    assert explainer_for("deadlock", None) == KIND_EXPLAINERS["deadlock"]
    assert explainer_for("deadlock", L4) == invariant(L4).explainer  # type: ignore[union-attr]
    assert explainer_for("assertion", None) == "concsim.explain._generic"


_MSHV_MODULES = ("concsim.kernel", "concsim.driver", "concsim.scenarios", "concsim.explain.mshv")


@pytest.mark.parametrize(
    "path", sorted(p.name for p in (PKG / "explain").glob("_*.py") if p.name != "__init__.py")
)
def test_the_generic_explainers_import_no_mshv_code(path: str) -> None:
    tree = ast.parse((PKG / "explain" / path).read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in mods if m.startswith(_MSHV_MODULES)], mods


# ---------------------------------------------------------------------- model-agnostic


def test_lost_update_names_the_read_the_other_write_and_the_overwrite() -> None:
    res = concsim.run("counter", variant="racy", seed=3)
    f = res.failure
    assert f is not None
    assert f.invariant == LOST_UPDATE
    ex = explain(res)
    assert ex.explainer == "concsim.explain._lost_update"
    roles = {ln.role: ln for ln in ex.chain}
    assert {"read", "write", "overwrite"} <= set(roles)
    rd, wr, ow = roles["read"], roles["write"], roles["overwrite"]
    assert rd.task == ow.task != wr.task
    assert rd.step < wr.step < ow.step <= f.step
    assert (rd.op, wr.op, ow.op) == ("load", "store", "store")
    assert any("update is lost" in n for n in ex.notes)
    assert ex.text().startswith("FAILURE assertion [lost-update]")
    assert "invariant lost-update: no lost update: " in ex.text()


def _pollers(rt: Runtime) -> None:
    """Two tasks that each poll for a flag nobody sets: a livelock, both stay runnable."""

    async def poll(me: str) -> None:
        while True:
            await rt.point("poll", "ready", read=True)
            await rt.point("relax", me)

    rt.spawn("a", poll("a"))
    rt.spawn("b", poll("b"))


def test_livelock_finds_the_loop_each_task_repeats() -> None:
    rt, f = run_world(_pollers, seed=0, max_steps=120)
    assert f is not None
    assert f.kind == "step-limit"
    assert sorted(f.details["runnable"]) == ["a", "b"]
    ex = explain(_Run(f, rt.trace, scenario="adhoc", variant="-"))
    assert ex.explainer == "concsim.explain._livelock"
    loops = [ln for ln in ex.chain if ln.role == "loop"]
    assert {ln.task for ln in loops} == {"a", "b"}
    assert {ln.op for ln in loops} == {"poll", "relax"}
    for t, other in (("a", "b"), ("b", "a")):
        assert any(f"task {t} repeats the same 2 operations" in n for n in ex.notes), ex.notes
        assert any(n.startswith(f"meanwhile {other} ran") for n in ex.notes), ex.notes


def test_a_task_spinning_alone_is_told_so() -> None:
    def world(rt: Runtime) -> None:
        async def spin() -> None:
            while True:
                await rt.point("cpu_relax", "")

        rt.spawn("spin", spin())

    rt, f = run_world(world, seed=0, max_steps=30)
    assert f is not None
    ex = explain(_Run(f, rt.trace, scenario="adhoc", variant="-"))
    assert any("repeats the same 1 operation (cpu_relax)" in n for n in ex.notes), ex.notes
    assert any("spins on its own" in n for n in ex.notes)


def test_find_loop_reports_the_shortest_period_and_where_it_starts() -> None:
    from concsim.explain._context import Record

    def recs(ops: str) -> list[Record]:
        return [Record(i, i + 1, "t", op, "x", True, False) for i, op in enumerate(ops)]

    assert find_loop(recs("zabcabcabc")) == (1, 3)
    assert find_loop(recs("aaaa")) == (0, 1)
    assert find_loop(recs("abcd")) is None


# ---------------------------------------------------------------------- mshv: who broke it


def test_s1_is_blamed_on_the_pte_change_not_on_an_earlier_invalidation() -> None:
    """The SLAT entry of gfn 4 is torn down by a proper invalidation (madvise), mapped
    again by a fault, and then a PTE change without any invalidation breaks S1 (what a
    buggy primary-MMU path does).  The explanation names that PTE change as the breaking
    write and the re-map as the SLAT side, and says no invalidation ran between them."""

    async def body(w: MshvWorld, r: MshvMemRegion) -> None:
        rt = w.rt
        await madvise_dontneed(w.mm, U + 4, 1)
        assert await w.driver.mshv_region_handle_gfn_fault(r, 4)
        other = w.mm.pages.alloc_page()
        await rt.point("remove_migration_ptes", "pt", U + 4)
        w.mm.set_ptes(np.array([U + 4], dtype=np.int64), PTE_PRESENT, other, True)

    w, rt, f = run_mshv(body)
    assert f is not None
    assert (f.invariant, f.details["where"], f.details["gfn"]) == (S1, "pte_changed", 4)
    ex = explain(_mshv_run(rt, f, w))
    assert ex.explainer == "concsim.explain.mshv._stale_access"
    [breaks] = [ln for ln in ex.chain if ln.role == "breaks"]
    assert (breaks.step, breaks.op) == (f.step, "set_pte")
    assert breaks.fields["vpn"] == U + 4
    assert "this write breaks S1" in breaks.text
    assert "remove_migration_ptes" in breaks.text
    # The SLAT side: the fault's re-map, which the oracle recorded.
    slat_step = f.details["slat_step"]
    [m] = [ln for ln in ex.chain if ln.role == "map" and ln.step == slat_step]
    assert m.op == "slat_map"
    assert m.fields["gfn"] <= 4 < m.fields["gfn"] + m.fields["count"]
    assert "correct when written" in m.text
    # madvise's invalidation ended before the re-map: it is not blamed.
    assert not [ln for ln in ex.chain if ln.role == "invalidate"]
    assert not any("had not run" in n for n in ex.notes), ex.notes
    assert any(f"broken at step {f.step}" in n for n in ex.notes)
    assert any("without an MMU-notifier invalidation" in n for n in ex.notes)


def test_a_stale_install_is_blamed_on_the_install() -> None:
    """The other way round (no-read-retry): the SLAT write itself maps a pfn the PTE no
    longer maps, so the install is the breaking write, told with the installer's read."""
    res = concsim.replay(str(PKG.parent / "docs" / "replay-no-read-retry.json")).result
    f = res.failure
    assert f is not None
    assert f.details["where"] == "slat_write"
    ex = explain(res)
    [fail] = [ln for ln in ex.chain if ln.role == "failure"]
    assert (fail.step, fail.op) == (f.step, "hv_call_map_gpa_pages")
    assert "this write breaks S1" in fail.text
    assert not [ln for ln in ex.chain if ln.role == "breaks"]
    assert {"read", "invalidate", "callback"} <= {ln.role for ln in ex.chain}
    assert any("B3.7" in n for n in ex.notes)


class RetriesEveryError(AfterPatch):
    """The -EBUSY loop written ``while (ret)`` instead of ``while (ret == -EBUSY)``: every
    error of the fault is retried, so a VMA hole in the window (-EFAULT) sends it round
    for ever with nothing changing the seq."""

    name = "retries-every-error"
    hmm_fault_and_lock_loop = patched(
        MshvRegions.hmm_fault_and_lock_loop, ("if ret != -EBUSY:", "if ret == 0:")
    )


def _ebusy_world(variant: type[AfterPatch]) -> tuple[MshvWorld, Runtime, Failure | None]:
    """Region 0 with a hole at hva page U+40 (inside gfn 0's fault window); the vCPU's
    fault of gfn 0 reads the seq, then ``zap`` (MADV_DONTNEED of U+2) invalidates the
    region before the walk is checked, so the first round is spoiled; every later round
    meets the hole (retry_bound 1)."""
    script = Script([("vmm", done), ("vcpu", before("down_read")), ("zap", done)])
    rt = Runtime(Replay([], strict=False), max_steps=50_000, trace=True)
    rt.strategy = script
    w = make_world(rt, variant, retry_bound=1)
    ready = Completion(rt, "ready")

    async def vmm() -> None:
        assert await w.driver.mshv_map_user_memory(w.partition, w.mems[0]) == 0
        await munmap(w.mm, U + 40, 1)
        await ready.complete_all()

    async def vcpu() -> None:
        await ready.wait_for_completion()
        region = w.partition.pt_mem_regions[0]
        rt.ext["ok"] = await w.driver.mshv_region_handle_gfn_fault(region, 0)

    async def zap() -> None:
        await ready.wait_for_completion()
        await madvise_dontneed(w.mm, U + 2, 1)

    rt.spawn("vmm", vmm())
    rt.spawn("vcpu", vcpu())
    rt.spawn("zap", zap())
    f = rt.run()
    script.advance(rt)
    assert script.reached == ["vmm", "vcpu", "zap"]
    return w, rt, f


def test_l1_tells_each_round_and_the_invalidation_that_spoiled_it() -> None:
    """The -EBUSY loop past its bound: every round's read_begin; for the round an
    invalidation spoiled, the other task's invalidation and callback that changed the seq
    and the check_retry that saw it; for the rounds nothing spoiled, that the seq stayed
    what the round read and the loop went round anyway (the retries L1 counts)."""
    w, rt, f = _ebusy_world(RetriesEveryError)
    assert f is not None
    assert (f.kind, f.invariant, f.task) == ("liveness", L1, "vcpu")
    # retry_bound 1 plus the 2 the zap's round moved the seq: the 4th retry is past it.
    assert f.details["retries"] == 4
    ex = explain(_mshv_run(rt, f, w))
    assert ex.explainer == "concsim.explain._ebusy_loop"
    assert ex.objects["rounds"] == 4  # the failing loop's rounds only (not creation's)
    reads = [ln for ln in ex.chain if ln.role == "read"]
    retries = [ln for ln in ex.chain if ln.role == "retry"]
    spoilers = [ln for ln in ex.chain if ln.role == "callback"]
    invalidations = [ln for ln in ex.chain if ln.role == "invalidate"]
    assert len(reads) == len(retries) == 4
    assert all(ln.task == "vcpu" for ln in reads + retries)
    for n, (rd, rt_) in enumerate(zip(reads, retries, strict=True), 1):
        assert rd.text.startswith(f"round {n}: ")
        assert rd.step < rt_.step <= f.step
    # Round 1: zap's MADV_DONTNEED, its callback's new seq, the check that saw it; the
    # only invalidation of the loop.
    [inv] = invalidations
    [cb] = spoilers
    assert (inv.task, cb.task) == ("zap", "zap")
    assert reads[0].step < inv.step < cb.step < retries[0].step < reads[1].step
    assert retries[0].op == "mmu_interval_check_retry"
    assert "seq is no longer" in retries[0].text
    # Rounds 2-4: no invalidation; the seq each read is the seq the next one reads.
    seqs = [ln.fields["seq"] for ln in reads]
    assert seqs[1] == seqs[2] == seqs[3] != seqs[0]
    for ln in retries[1:]:
        assert "no invalidation changed it" in ln.text
    assert "past the retry bound" in retries[-1].text
    assert any(
        "1 round(s) spoiled by an invalidation (zap), 3 with the seq unchanged" in n
        for n in ex.notes
    )


def test_l1_is_silent_when_the_loop_returns_what_it_does_not_retry() -> None:
    """The same world on the correct loop: the spoiled round is retried, the hole's -EFAULT
    ends the loop (the fault fails, as F3 expects for a hole), and no L1 is reported."""
    _w, rt, f = _ebusy_world(AfterPatch)
    assert f is None, f
    assert rt.ext["ok"] is False
    assert rt.stats.get("ebusy_retries") == 1
