"""``concsim explain``: why a run failed, as a short chain of steps in words.

:func:`explain` takes a replayed (traced) :class:`concsim.RunResult` and returns an
:class:`Explanation`: the failure, the invariant it breaks, and the steps that matter,
selected by following the objects the failure names (gfn, pfn, hva page, region, locks)
backwards from the failing step through the trace.  Nothing is re-run and no model state
is inspected: every statement is read off the typed trace records (op, object and named
fields: gfn, count, flags, seq, ...) that the kernel model emits (declared in
concsim.kernel._tracepoints and concsim.driver._tracepoints), never off their text, so the
explanation of a replay file is as deterministic as its trace and does not change when an
event's text is reworded.

What is looked for, by kind of failure:

* a gfn/pfn/hva failure (S1, S2, S7, the review's assertion point): (a) the
  ``mmu_interval_read_begin`` (the sequence number read) and the HMM walk that read the
  PTE; (b) every invalidation covering the hva page that was still running in that
  window: its ``invalidate_range_start``, whether the driver's callback ran (``set_seq``),
  its NO_ACCESS remap and whether the hypercall failed (WARN); (c) the SLAT writes of the
  gfn, the installer's ``mreg_mutex`` and whether it went back to read_begin before
  mapping (the read_retry of B3.7); (d) the PTE changes of the hva page; (e) the guest's
  accesses;
* a deadlock: who holds what, and waits for what; a lock left held by an exited task;
* a lock-order report: the two orders; sleep-in-atomic: the non-blockable (or atomic)
  context and the sleeping call; an uninitialised mutex; S5 (a region freed with its
  notifier registered); two regions owning one gfn; L3 (a vCPU that re-faults forever or
  whose permitted access goes to the VMM);
* anything else: the last steps of the failing task and every step that touches the
  failure's objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from concsim.artifacts._perfetto import Span, derive_holds
from concsim.driver._region import MSHV_REGION_TYPE_MEM_PINNED
from concsim.driver._tracepoints import WARN_INVALIDATE_REMAP_FAILED, WARN_RANGE_FAULT
from concsim.engine import Failure, TraceEntry
from concsim.kernel._hv import (
    HV_MAP_GPA_ADJUSTABLE,
    HV_MAP_GPA_KERNEL_EXECUTABLE,
    HV_MAP_GPA_LARGE_PAGE,
    HV_MAP_GPA_NO_ACCESS,
    HV_MAP_GPA_NOT_CACHED,
    HV_MAP_GPA_READABLE,
    HV_MAP_GPA_USER_EXECUTABLE,
    HV_MAP_GPA_WRITABLE,
)
from concsim.kernel._pagealloc import ZERO_PFN

#: One line per invariant (spec section C), for the explanation's second line.
INVARIANTS: dict[str, str] = {
    "S1": "no stale SLAT access: a gfn may grant access only to the page the process maps at "
    "its hva (no page is freed or reused while the SLAT grants access to it)",
    "S2": "mreg_pfns mirrors the SLAT: a slot holds a pfn iff the SLAT maps the gfn to it, "
    "MSHV_INVALID_PFN iff it grants no access",
    "S3": "mreg_mutex (initialised) is held across every SLAT write of a movable region",
    "S4": "lock order: read_begin and mmap_lock are never taken under mreg_mutex",
    "S5": "a region is freed only after its interval notifier was removed",
    "S6": "the non-blockable invalidate callback never sleeps (trylock only)",
    "S7": "guest write access only to a page whose PTE is writable (never the zero page)",
    "S8": "the invalidated range is clipped to the region",
    "L1": "the -EBUSY retry loop terminates once invalidations stop",
    "L3": "a permitted guest access is eventually installed, so the vCPU makes progress",
    "L4": "a blockable invalidate eventually gets mreg_mutex (nobody keeps it forever)",
    "gfn-overlap": "no two live regions own the same gfn",
}

_ERRNO = {1: "EPERM", 5: "EIO", 11: "EAGAIN", 12: "ENOMEM", 14: "EFAULT", 16: "EBUSY", 22: "EINVAL"}
_FLAG_NAMES = (
    (HV_MAP_GPA_READABLE, "READABLE"),
    (HV_MAP_GPA_WRITABLE, "WRITABLE"),
    (HV_MAP_GPA_KERNEL_EXECUTABLE, "KERNEL_EXECUTABLE"),
    (HV_MAP_GPA_USER_EXECUTABLE, "USER_EXECUTABLE"),
    (HV_MAP_GPA_ADJUSTABLE, "ADJUSTABLE"),
    (HV_MAP_GPA_NO_ACCESS, "NO_ACCESS"),
    (HV_MAP_GPA_NOT_CACHED, "NOT_CACHED"),
    (HV_MAP_GPA_LARGE_PAGE, "LARGE_PAGE"),
)
_ACCESS_BITS = (
    HV_MAP_GPA_READABLE
    | HV_MAP_GPA_WRITABLE
    | HV_MAP_GPA_KERNEL_EXECUTABLE
    | (HV_MAP_GPA_USER_EXECUTABLE)
)
_NEED = {
    "read": HV_MAP_GPA_READABLE,
    "write": HV_MAP_GPA_WRITABLE,
    "execute": HV_MAP_GPA_KERNEL_EXECUTABLE | HV_MAP_GPA_USER_EXECUTABLE,
}

#: How many links of one family to keep (the most recent ones).
_CAP = 4


class _Result(Protocol):
    """What :func:`explain` needs of a :class:`concsim.RunResult`."""

    scenario: str
    variant: str
    params: dict[str, Any]
    failure: Failure | None
    trace: list[TraceEntry]

    def replay_command(self) -> str: ...


@dataclass(frozen=True)
class Link:
    """One step of the chain: the trace entry and what it means for the failure."""

    step: int
    task: str
    op: str
    obj: str
    fields: dict[str, Any]
    role: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "task": self.task,
            "op": self.op,
            "obj": self.obj,
            "fields": self.fields,
            "role": self.role,
            "text": self.text,
        }


@dataclass
class Explanation:
    """Why a run failed: the failure, the invariant, the chain of steps, the conclusions."""

    kind: str
    invariant: str | None
    message: str
    step: int
    task: str | None
    scenario: str
    variant: str
    objects: dict[str, Any]
    chain: list[Link]
    notes: list[str]
    replay_command: str
    reproduced: bool | None = None

    @property
    def steps(self) -> list[int]:
        """The step numbers of the chain, in order (with repeats removed)."""
        return sorted({ln.step for ln in self.chain})

    def text(self) -> str:
        inv = f" [{self.invariant}]" if self.invariant else ""
        who = f" in task {self.task}" if self.task else ""
        out = [
            f"FAILURE {self.kind}{inv} at step {self.step}{who} ({self.scenario}/{self.variant})",
            f"  {self.message}",
        ]
        if self.invariant:
            meaning = INVARIANTS.get(self.invariant)
            out.append(f"invariant {self.invariant}" + (f": {meaning}" if meaning else ""))
        if self.objects:
            out.append(
                "objects: "
                + ", ".join(
                    str(v) if str(v).startswith(k) else f"{k} {v}" for k, v in self.objects.items()
                )
            )
        out.append("")
        out.append("how it happened:")
        tw = max((len(ln.task) for ln in self.chain), default=4)
        for ln in self.chain:
            mark = ">>" if ln.step == self.step else "  "
            out.append(f"{mark}{ln.step:6d}  {ln.task:<{tw}}  {ln.text}")
        out.append(f">>{self.step:6d}  {(self.task or '-'):<{tw}}  => FAILURE {self.kind}{inv}")
        if self.notes:
            out.append("")
            out.append("why:")
            out.extend(f"  - {n}" for n in self.notes)
        if self.reproduced is False:
            out.append("")
            out.append("warning: the replay did NOT reproduce the recorded failure")
        out.append("")
        out.append(f"replay: {self.replay_command}")
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "invariant": self.invariant,
            "invariant_text": INVARIANTS.get(self.invariant or ""),
            "message": self.message,
            "step": self.step,
            "task": self.task,
            "scenario": self.scenario,
            "variant": self.variant,
            "objects": self.objects,
            "steps": self.steps,
            "chain": [ln.to_json() for ln in self.chain],
            "notes": self.notes,
            "reproduced": self.reproduced,
            "replay_command": self.replay_command,
        }


# ---------------------------------------------------------------------- helpers


def flag_names(flags: int) -> str:
    """``0x8003`` -> ``READABLE|WRITABLE|ADJUSTABLE``."""
    names = [n for bit, n in _FLAG_NAMES if flags & bit]
    return "|".join(names) or "0"


def _warn_text(e: _E) -> str:
    """A WARN record in words: its reason and return code (from the fields)."""
    reason = e.get("reason")
    if reason is None:
        return e.text()
    ret = e.get("ret", 0)
    return str(reason).replace("_", " ") + (f": {_errno(ret)}" if ret else "")


def _grants(flags: int) -> bool:
    return bool(flags & _ACCESS_BITS) and not flags & HV_MAP_GPA_NO_ACCESS


def _errno(ret: object) -> str:
    if not isinstance(ret, int):
        return str(ret)
    n = -ret
    return f"-{_ERRNO[n]}" if n in _ERRNO else str(ret)


@dataclass(frozen=True)
class _E:
    """A trace record with its index (``point``: a scheduling point, as the trace says)."""

    i: int
    step: int
    task: str
    op: str
    obj: str
    point: bool
    fields: dict[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def text(self) -> str:
        """The record in explain's own words: op, object and ``name=value`` fields (never
        the trace's text format, so rewording that format cannot change an explanation)."""
        vals = " ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"{self.op} {self.obj} {vals}".strip()


def _entries(trace: Sequence[TraceEntry]) -> list[_E]:
    return [_E(i, e.step, e.task, e.op, e.obj, e.point, e.fields) for i, e in enumerate(trace)]


def _gfn_run(e: _E) -> tuple[int, int, int | None] | None:
    """``(gfn, count, flags)`` of a record about a run of gfns (flags None if it has none)."""
    gfn, count = e.get("gfn"), e.get("count")
    if not isinstance(gfn, int) or not isinstance(count, int):
        return None
    flags = e.get("flags")
    return gfn, count, flags if isinstance(flags, int) else None


def _covers_gfn(e: _E, gfn: int) -> bool:
    run = _gfn_run(e)
    return run is not None and run[0] <= gfn < run[0] + run[1]


def _flags(e: _E) -> int:
    run = _gfn_run(e)
    return run[2] or 0 if run is not None else 0


def _range(e: _E) -> tuple[int, int] | None:
    start, end = e.get("start"), e.get("end")
    return (start, end) if isinstance(start, int) and isinstance(end, int) else None


def _rng(e: _E) -> str:
    r = _range(e)
    return f"[{r[0]},{r[1]})" if r else ""


def _covers_vpn(e: _E, vpn: int) -> bool:
    r = _range(e)
    return r is not None and r[0] <= vpn < r[1]


def _pte_change(e: _E, vpn: int) -> str | None:
    """The new state if this set_pte event touches ``vpn`` (or may: a sparse range)."""
    if e.op != "set_pte":
        return None
    a, b = e.get("vpn"), e.get("last")
    if not isinstance(a, int) or not isinstance(b, int):
        return None
    return str(e.get("state")) if a <= vpn <= b else None


def _run_text(e: _E) -> str:
    run = _gfn_run(e)
    if run is None:
        return e.text()
    g, n, fl = run
    what = f"gfn {g}" if n == 1 else f"gfns {g}..{g + n - 1}"
    return what if fl is None else f"{what} with {flag_names(fl)}"


class _Ctx:
    """The trace of one failing run, indexed for the backward search."""

    def __init__(self, res: _Result) -> None:
        assert res.failure is not None
        self.res = res
        self.f: Failure = res.failure
        self.params = res.params
        self.all = _entries(res.trace)
        fs = self.f.step
        self.es = [e for e in self.all if e.step <= fs]
        self.fail_entries = [e for e in self.es if e.step == fs]
        self.fail_idx = self.fail_entries[0].i if self.fail_entries else len(self.es)
        self.links: dict[int, tuple[str, str]] = {}
        self.notes: list[str] = []
        self.objects: dict[str, Any] = {}
        self._holds: tuple[list[Span], int] | None = None

    # ------------------------------------------------------------------ chain

    def link(self, e: _E | None, role: str, text: str) -> None:
        if e is not None and e.i not in self.links:
            self.links[e.i] = (role, text)

    def link_failure(self) -> None:
        """The failing task's operation at the failing step (when nothing else linked it)."""
        ents = [e for e in self.fail_entries if self.f.task in (None, e.task)]
        if ents and not any(e.i in self.links for e in ents):
            e = ents[0]
            self.link(e, "failure", e.text())

    def chain(self) -> list[Link]:
        out = []
        for i in sorted(self.links):
            e = self.es[i] if i < len(self.es) else self.all[i]
            role, text = self.links[i]
            out.append(Link(e.step, e.task, e.op, e.obj, dict(e.fields), role, text))
        return out

    # ------------------------------------------------------------------ queries

    def before(self, idx: int | None = None) -> list[_E]:
        end = self.fail_idx + len(self.fail_entries) if idx is None else idx
        return self.es[:end]

    def last(self, ents: Iterable[_E]) -> _E | None:
        found = None
        for e in ents:
            found = e
        return found

    def holds(self) -> list[Span]:
        if self._holds is None:
            self._holds = derive_holds(self.res.trace, self.f)
        return self._holds[0]

    def hold_at(self, task: str, obj: str, step: int) -> Span | None:
        """The hold of ``obj`` by ``task`` that covers ``step``."""
        for sp in self.holds():
            if (
                sp.kind == "hold"
                and sp.task == task
                and sp.obj == obj
                and (sp.start <= step < sp.end)
            ):
                return sp
        return None

    def point_of(self, task: str, step: int) -> _E | None:
        return next((e for e in self.es if e.step == step and e.task == task and e.point), None)

    def hva_of(self, gfn: int) -> int | None:
        """The hva page of ``gfn`` in the mshv world's layout (concsim.scenarios._mshv_world:
        region r at hva page (r+1)*span+align and gfn r*span+align, span = pages rounded up
        to 2 MiB plus one PMD), or from the failure when it names both."""
        d = self.f.details
        if isinstance(d.get("hva"), int) and isinstance(d.get("gfn"), int):
            return gfn + int(d["hva"]) - int(d["gfn"])
        p = self.params
        if "pages" in p and "align" in p:
            return gfn + self.span()
        return None

    def span(self) -> int:
        pages = int(self.params["pages"])
        return -(-pages // 512) * 512 + 512

    def region_of(self, gfn: int) -> str | None:
        p = self.params
        if "pages" not in p or "align" not in p:
            return None
        r = (gfn - int(p["align"])) // self.span()
        return f"region{r}" if 0 <= r < int(p.get("regions", 1)) else None


# ---------------------------------------------------------------------- public entry point


def explain(res: _Result, *, reproduced: bool | None = None) -> Explanation:
    """Explain the failure of ``res`` (a traced RunResult, e.g. ``concsim.replay(f).result``)."""
    if res.failure is None:
        raise ValueError("the run did not fail: there is nothing to explain")
    if not res.trace:
        raise ValueError("the run has no trace: rerun it with trace=True")
    ctx = _Ctx(res)
    f = ctx.f
    d = f.details
    if f.kind == "deadlock":
        _explain_deadlock(ctx)
    elif f.kind == "lock-order":
        _explain_lock_order(ctx)
    elif f.kind == "sleep-in-atomic":
        _explain_sleep(ctx)
    elif f.kind == "lock-misuse" and "lock" in d:
        _explain_lock_misuse(ctx)
    elif f.invariant == "S5":
        _explain_s5(ctx)
    elif f.invariant == "gfn-overlap":
        _explain_overlap(ctx)
    elif f.invariant == "L3" and isinstance(d.get("gfn"), int):
        _explain_l3(ctx)
    elif isinstance(d.get("gfn"), int) or isinstance(d.get("pfn"), int):
        _explain_memory(ctx)
    else:
        _explain_generic(ctx)
    ctx.link_failure()
    return Explanation(
        kind=f.kind,
        invariant=f.invariant,
        message=f.message,
        step=f.step,
        task=f.task,
        scenario=res.scenario,
        variant=res.variant,
        objects=ctx.objects,
        chain=ctx.chain(),
        notes=ctx.notes,
        replay_command=res.replay_command(),
        reproduced=reproduced,
    )


# ---------------------------------------------------------------------- gfn / pfn / hva


def _explain_memory(ctx: _Ctx) -> None:
    f = ctx.f
    d = f.details
    gfn = d.get("gfn") if isinstance(d.get("gfn"), int) else None
    pfn = d.get("pfn") if isinstance(d.get("pfn"), int) else None
    hva = d.get("hva") if isinstance(d.get("hva"), int) else None
    if hva is None and gfn is not None:
        hva = ctx.hva_of(gfn)
    region = d.get("region") if isinstance(d.get("region"), str) else None
    if region is None and gfn is not None:
        region = ctx.region_of(gfn)
    for k, v in (("gfn", gfn), ("pfn", pfn), ("hva page", hva), ("region", region)):
        if v is not None:
            ctx.objects[k] = v
    if pfn == ZERO_PFN:
        ctx.notes.append(f"pfn {pfn} is the shared zero page: it may never be mapped writable")
    if gfn is None:
        _explain_generic(ctx)
        return
    where = d.get("where")
    mni = f"{region}.mreg_mni" if region else None
    mutex = f"{region}.mreg_mutex" if region else None
    before = ctx.before()

    # (c) the SLAT writes of the gfn.
    slat_ents = [
        e
        for e in before
        if e.op in ("slat_map", "slat_unmap", "hypercall_failed") and _covers_gfn(e, gfn)
    ]
    grants = [e for e in slat_ents if e.op == "slat_map" and _grants(_flags(e))]
    fail_map = next(
        (e for e in ctx.fail_entries if e.op == "hv_call_map_gpa_pages" and _covers_gfn(e, gfn)),
        None,
    )
    # The installer: the task whose map the failure is about.
    if where in ("slat_write", "mshv_region_collect_and_map") or fail_map is not None:
        installer = f.task
        map_e = fail_map or (ctx.fail_entries[0] if ctx.fail_entries else None)
    elif grants:
        installer = grants[-1].task
        map_e = grants[-1]
    else:
        installer, map_e = None, None
    stale = [e for e in grants if map_e is None or e.i < map_e.i]
    for e in stale[-2:]:
        ctx.link(
            e,
            "map",
            f"SLAT maps {_run_text(e)}: gfn {gfn} grants access"
            + (f" (to pfn {pfn})" if pfn is not None and e is stale[-1] else ""),
        )
    for e in slat_ents:
        if e.op == "slat_unmap":
            ctx.link(e, "map", f"SLAT unmaps {_run_text(e)}")
        elif e.op == "hypercall_failed":
            ctx.link(
                e,
                "remap",
                f"the hypercall for {_run_text(e)} failed: gfn {gfn}'s entry keeps its old value",
            )
        elif e.op == "slat_map" and not _grants(_flags(e)) and stale and e.i > stale[-1].i:
            ctx.link(e, "remap", f"SLAT remaps {_run_text(e)}: gfn {gfn} no longer grants access")
    if map_e is not None and map_e.op == "hv_call_map_gpa_pages":
        run = _gfn_run(map_e)
        fl = run[2] if run else None
        ctx.link(
            map_e,
            "failure",
            f"hv_call_map_gpa_pages: maps {_run_text(map_e)}"
            + (f" - gfn {gfn} to pfn {pfn}" if pfn is not None else ""),
        )
        if fl is not None and fl & HV_MAP_GPA_WRITABLE and f.invariant == "S7":
            ctx.notes.append(f"the map flags {fl:#x} ({flag_names(fl)}) grant write access")

    # (a) the installer's read: read_begin (the seq read) and the HMM walk of the hva page.
    seq_read: int | None = None
    rb: _E | None = None
    walk: _E | None = None
    lock_span: Span | None = None
    if installer is not None and map_e is not None:
        mine = [e for e in ctx.es[: map_e.i + 1] if e.task == installer]
        rb = ctx.last(e for e in mine if e.op == "read_begin" and (mni is None or e.obj == mni))
        if rb is not None:
            if isinstance(rb.get("seq"), int):
                seq_read = int(rb.get("seq"))
                busy = bool(rb.get("busy"))
                ctx.link(
                    rb,
                    "read",
                    f"mmu_interval_read_begin on {rb.obj}: reads seq "
                    f"{seq_read}"
                    + (" (an invalidation is running: waits for its end)" if busy else ""),
                )
            if hva is not None:
                walk = ctx.last(
                    e for e in mine if e.i > rb.i and e.op == "hmm_walk_pmd" and _covers_vpn(e, hva)
                )
                if walk is not None:
                    ctx.link(
                        walk,
                        "read",
                        f"HMM walks {_rng(walk)}: reads the PTE of hva page "
                        f"{hva} (what it will map for gfn {gfn}) under seq {seq_read}",
                    )
        if mutex is not None:
            lock_span = ctx.hold_at(installer, mutex, map_e.step)
            if lock_span is not None:
                acq = ctx.point_of(installer, lock_span.start)
                first = lock_span.args.get("acquired_at_step", lock_span.start)
                ctx.link(acq, "lock", f"takes {mutex} (to install under it)")
                wait = next(
                    (
                        sp
                        for sp in ctx.holds()
                        if sp.kind == "wait"
                        and sp.task == installer
                        and sp.obj == mutex
                        and sp.end == first
                    ),
                    None,
                )
                if wait is not None:
                    who = sorted(
                        {
                            h.task
                            for h in ctx.holds()
                            if h.kind == "hold"
                            and h.obj == mutex
                            and h.task != installer
                            and h.start <= wait.start < h.end
                        }
                    )
                    ctx.link(
                        ctx.point_of(installer, wait.start - 1),
                        "lock",
                        f"mutex_lock {mutex}: blocks (held by {', '.join(who) or 'another task'})",
                    )

    # (b) the invalidations covering the hva page that ran in the window, (d) PTE changes.
    if hva is not None:
        window = min([x.i for x in (stale[-1] if stale else None, rb) if x is not None], default=0)
        _invalidations(ctx, hva, gfn, pfn, mni, mutex, window, seq_read)
        ptes = [(e, st) for e in before if (st := _pte_change(e, hva)) is not None]
        for e, st in ptes[-3:]:
            text = f"PTE of hva page {hva} -> {st}"
            if st in ("none", "swap", "migration"):
                text += ": the process stops mapping the page (its pfn is put, maybe freed)"
            elif st == "present":
                text += ": the hva page maps a page again (after a migration: a new pfn)"
            ctx.link(e, "pte", text)
        gone = [(e, st) for e, st in ptes if walk is not None and e.i < walk.i]
        collect = where == "mshv_region_collect_and_map"
        if walk is not None and gone and gone[-1][1] != "present" and collect:
            e, st = gone[-1]
            ctx.notes.append(
                f"the walk at step {walk.step} found hva page {hva} {st} (since step {e.step}), "
                f"so HMM returned no valid pfn for gfn {gfn} and collect_and_map skipped its "
                "slot, trusting it to be MSHV_INVALID_PFN"
            )

    # B3.7: did the installer go back to read_begin after taking the mutex?
    if seq_read is not None and mni is not None and map_e is not None and rb is not None:
        bumps = [
            e
            for e in ctx.es[rb.i : map_e.i]
            if e.op == "seq" and e.obj == f"{mni}.invalidate_seq" and e.get("what") == "set_seq"
        ]
        if bumps:
            new = bumps[-1].get("seq")
            lock_txt = f" it took {mutex} at step {lock_span.start} and" if lock_span else ""
            if new is not None and new != seq_read:
                ctx.notes.append(
                    f"{region}'s seq changed from {seq_read} (read at step {rb.step}) to {new} "
                    f"at step {bumps[-1].step}, so mmu_interval_read_retry under the mutex "
                    f"returns true; yet{lock_txt} task {installer} went on to map without going "
                    "back to read_begin: the result of the walk was used stale (no read_retry "
                    "after mutex_lock, B3.7)"
                )
        elif where in ("slat_write", "mshv_region_collect_and_map", "guest_access"):
            ctx.notes.append(
                f"no invalidate callback bumped {region}'s seq between the read at step "
                f"{rb.step} and the map at step {map_e.step}, so the read_retry (B3.7) had "
                "nothing to catch"
            )
    # An installer that never mapped the gfn (S2: a slot filled but not mapped).
    if (
        installer is not None
        and lock_span is not None
        and f.invariant == "S2"
        and (where == "mshv_region_collect_and_map" and f.kind != "assertion")
    ):
        maps = [
            e
            for e in ctx.es
            if e.task == installer and lock_span.start <= e.step <= f.step and e.op == "slat_map"
        ]
        for e in maps[-_CAP:]:
            ctx.link(e, "map", f"SLAT maps {_run_text(e)}")
        if not any(_covers_gfn(e, gfn) for e in maps):
            runs = ", ".join(f"{r[0]}+{r[1]}" for e in maps if (r := _gfn_run(e)))
            ctx.notes.append(
                f"between taking the mutex at step {lock_span.start} and dropping it, task "
                f"{installer}'s hypercalls covered gfn {runs or 'nothing'}: none covered gfn "
                f"{gfn}, whose slot was filled from the walk but never mapped"
            )

    # (e) the guest's accesses to the gfn.
    acc = [e for e in before if e.op == "guest_access" and e.obj == f"gfn{gfn}"]
    for e in acc[-2:]:
        ctx.link(e, "access", f"guest {e.get('access', 'access')} of gfn {gfn}")
    if where == "guest_access":
        _explain_guest_access(ctx, gfn, region, grants, before)


def _explain_guest_access(
    ctx: _Ctx, gfn: int, region: str | None, grants: list[_E], before: list[_E]
) -> None:
    """The guest got through: say what the SLAT entry it used was left over from."""
    created = next(
        (e for e in before if e.op == "region_created" and region and e.obj == region), None
    )
    freed = next(
        (e for e in reversed(before) if e.op == "vfree" and region and e.obj == region), None
    )
    pinned = created is not None and created.get("type") == MSHV_REGION_TYPE_MEM_PINNED
    if grants and (freed is not None or pinned):
        g = grants[-1]
        ctx.link(g, "map", f"SLAT maps {_run_text(g)}: gfn {gfn} grants access")
    if freed is not None:
        ctx.link(freed, "region", f"{region} is freed (vfree)")
        ctx.notes.append(
            f"{region} was freed at step {freed.step} while the SLAT still granted gfn {gfn}: "
            "nothing unmapped it first (mshv_region_unmap unmaps only the slots that still "
            "hold a pfn)"
        )
    elif pinned:
        ctx.notes.append(
            f"{region} is pinned: through gfn {gfn} the guest may reach only the page pinned "
            "for it, and that page is no longer pinned there"
        )
    else:
        ctx.notes.append(
            f"the guest reached through gfn {gfn} a page the process does not map there any more"
        )


def _invalidations(
    ctx: _Ctx,
    hva: int,
    gfn: int,
    pfn: int | None,
    mni: str | None,
    mutex: str | None,
    window: int,
    seq_read: int | None,
) -> None:
    """Every invalidation covering ``hva`` still running at index ``window`` or later."""
    found = []
    for s in ctx.before():
        if s.op != "invalidate_range_start" or not _covers_vpn(s, hva):
            continue
        rng = _range(s)
        end = next(
            (
                e
                for e in ctx.es[s.i + 1 :]
                if e.task == s.task
                and ((e.op == "invalidate_range_end" and _range(e) == rng) or e.op == "oom_reap")
            ),
            None,
        )
        if end is not None and end.i < window:
            continue
        found.append((s, end))
    for s, end in found[-_CAP:]:
        ctx.link(
            s,
            "invalidate",
            f"invalidate_range_start {_rng(s)} {s.get('event', '')}: covers hva page {hva}",
        )
        stop = end.i if end is not None else ctx.fail_idx + len(ctx.fail_entries)
        ran = False
        for e in ctx.es[s.i + 1 : stop + 1]:
            if e.task != s.task:
                continue
            if (
                e.op == "seq"
                and mni is not None
                and e.obj == f"{mni}.invalidate_seq"
                and e.get("what") == "set_seq"
            ):
                ran = True
                v = e.get("seq", "?")
                extra = ""
                if seq_read is not None and isinstance(v, int) and v != seq_read:
                    extra = f" (a reader holding seq {seq_read} must now retry)"
                ctx.link(
                    e,
                    "callback",
                    f"the {mni.split('.')[0]} callback runs under {mutex}: set_seq {v}{extra}",
                )
            elif e.op in ("mutex_lock", "mutex_trylock") and e.obj == mutex:
                ctx.link(e, "callback", f"the callback takes {mutex}")
            elif e.op == "mutex_trylock_failed" and e.obj == mutex:
                ctx.link(e, "callback", f"mutex_trylock {mutex} fails (owner {e.get('owner')})")
            elif e.op == "slat_map" and _covers_gfn(e, gfn):
                run = _gfn_run(e)
                what = f"gfn {run[0]}+{run[1]}" if run else e.text()
                ctx.link(e, "remap", f"the callback remaps {what} NO_ACCESS (tears gfn {gfn} down)")
            elif e.op == "hypercall_failed":
                ctx.link(e, "remap", f"the callback's remap hypercall for {_run_text(e)} fails")
            elif e.op == "WARN":
                ctx.link(e, "remap", f"WARN on {e.obj}: {_warn_text(e)}")
                if e.get("reason") == WARN_INVALIDATE_REMAP_FAILED:
                    keeps = f"gfn {gfn}'s slot keeps" + (
                        f" pfn {pfn}" if pfn is not None else " its stale pfn"
                    )
                    ctx.notes.append(
                        f"the invalidate callback's NO_ACCESS remap failed at step {e.step}: it "
                        f"returned false before invalidate_pfns, so {keeps} (B5.5) while the "
                        "mm unmaps and frees the page anyway"
                    )
            elif e.op == "invalidate_pfns":
                ctx.link(e, "callback", f"slots {_rng(e)} of {e.obj} := MSHV_INVALID_PFN")
            elif e.op == "oom_reap":
                ret = e.get("ret", 0)
                ctx.link(
                    e,
                    "invalidate",
                    f"OOM reaper: {_rng(e)}" + (f" skipped: {_errno(ret)}" if ret else ""),
                )
        if end is not None and end.op == "invalidate_range_end":
            ctx.link(end, "invalidate", f"invalidate_range_end {_rng(end)}")
        if not ran and mni is not None:
            ctx.notes.append(
                f"the invalidation started at step {s.step} by {s.task} had not run "
                f"{mni.split('.')[0]}'s callback (no set_seq) by "
                + (f"its end at step {end.step}" if end is not None else "the failing step")
            )
    if not found:
        ctx.notes.append(f"no invalidation covering hva page {hva} ran in this window")


# ---------------------------------------------------------------------- locks


def _acquire_link(ctx: _Ctx, sp: Span, text: str) -> None:
    ctx.link(ctx.point_of(sp.task, int(sp.args.get("acquired_at_step", sp.start))), "lock", text)


def _explain_deadlock(ctx: _Ctx) -> None:
    f = ctx.f
    d = f.details
    holds = ctx.holds()
    tasks = [str(t) for t in d.get("cycle", d.get("blocked", []))]
    locks = [str(x) for x in d.get("locks", [])]
    if "lock" in d:
        locks.append(str(d["lock"]))
    ctx.objects["locks"] = ", ".join(dict.fromkeys(locks))
    if tasks:
        ctx.objects["tasks"] = ", ".join(tasks)
    for t in tasks:
        for sp in holds:
            if sp.task == t and sp.kind == "hold" and sp.args.get("still_held_at_end"):
                _acquire_link(ctx, sp, f"takes {sp.obj} (still held at the end)")
        for sp in holds:
            if sp.task == t and sp.kind == "wait" and sp.args.get("unresolved"):
                holder = [
                    h.task
                    for h in holds
                    if h.kind == "hold" and h.obj == sp.obj and h.args.get("still_held_at_end")
                ]
                ctx.link(
                    ctx.point_of(t, int(sp.args.get("since_step", sp.start - 1))),
                    "wait",
                    f"waits for {sp.obj}" + (f", held by {', '.join(holder)}" if holder else ""),
                )
                ctx.notes.append(
                    f"task {t} holds "
                    + (
                        ", ".join(
                            h.obj
                            for h in holds
                            if h.task == t and h.kind == "hold" and h.args.get("still_held_at_end")
                        )
                        or "nothing"
                    )
                    + f" and waits for {sp.obj}"
                    + (f", which {', '.join(holder)} holds" if holder else "")
                )
    if "lock" in d:
        lock = str(d["lock"])
        for sp in holds:
            if sp.kind != "hold" or sp.obj != lock or not sp.args.get("still_held_at_end"):
                continue
            _acquire_link(ctx, sp, f"takes {lock}")
            wait = next(
                (
                    w
                    for w in holds
                    if w.kind == "wait"
                    and w.task == sp.task
                    and w.obj == lock
                    and w.end == sp.start
                ),
                None,
            )
            if wait is not None:
                ctx.link(
                    ctx.point_of(sp.task, wait.start - 1),
                    "lock",
                    f"mutex_lock {lock}: blocks until step {sp.start}",
                )
            inv = ctx.last(
                e
                for e in ctx.es
                if e.task == sp.task and e.step <= sp.start and e.op == "invalidate_range_start"
            )
            if inv is not None:
                ctx.link(
                    inv,
                    "invalidate",
                    f"invalidate_range_start {_rng(inv)}: its callback takes the region's mutex",
                )
            ex = next(
                (e for e in ctx.es if e.task == sp.task and e.op == "exit" and e.step >= sp.start),
                None,
            )
            for e in ctx.es:
                if (
                    e.task == sp.task
                    and e.step >= sp.start
                    and e.op in ("WARN", "hypercall_failed")
                ):
                    ctx.link(e, "why", f"{e.op} {e.obj}: {_warn_text(e)}")
            if ex is not None:
                ctx.link(ex, "exit", f"task {sp.task} exits still holding {lock}")
                ctx.notes.append(
                    f"task {sp.task} took {lock} at step {sp.start} and exited at step "
                    f"{ex.step} without mutex_unlock: every later mutex_lock of it blocks forever"
                )
            warns = [
                e
                for e in ctx.es
                if e.task == sp.task
                and e.step >= sp.start
                and e.op == "WARN"
                and e.get("reason") == WARN_INVALIDATE_REMAP_FAILED
            ]
            if warns:
                ctx.notes.append(
                    f"the path that returned at step {warns[0].step} (after the "
                    f"failed remap: '{_warn_text(warns[0])}') skipped the unlock"
                )


def _explain_lock_order(ctx: _Ctx) -> None:
    f = ctx.f
    cycle = [str(x) for x in f.details.get("cycle", [])]
    ctx.objects["lock classes"] = " -> ".join(cycle)
    if len(cycle) >= 2 and f.task is not None:
        held, new = cycle[0], cycle[-1] if len(cycle) > 2 else cycle[1]
        for sp in ctx.holds():
            if (
                sp.task == f.task
                and sp.kind == "hold"
                and _is_class(sp.obj, held)
                and (sp.start <= f.step < sp.end)
            ):
                _acquire_link(ctx, sp, f"takes {sp.obj} (class {held})")
        ctx.notes.append(f"order 1 (now): task {f.task} takes {new} while holding {held}")
    wt, ws = f.details.get("witness_task"), f.details.get("witness_step")
    if isinstance(wt, str) and isinstance(ws, int):
        for e in ctx.es:
            if e.task == wt and e.step == ws:
                ctx.link(e, "witness", f"{e.op} {e.obj}: the earlier, opposite order")
        if len(cycle) >= 2:
            ctx.notes.append(
                f"order 2 (earlier): task {wt} took {' -> '.join(cycle[1:])} at step {ws}; both "
                "orders together can deadlock (lockdep reports it even on this schedule)"
            )


def _is_class(obj: str, cls: str) -> bool:
    return obj == cls or obj.endswith("." + cls)


def _explain_sleep(ctx: _Ctx) -> None:
    f = ctx.f
    t = f.task
    what = str(f.details.get("what", ""))
    if what:
        ctx.objects["sleeping call"] = what
    mine = [e for e in ctx.before() if e.task == t]
    if "non-blockable" in f.message:
        inv = ctx.last(e for e in mine if e.op == "invalidate_range_start")
        tl = ctx.last(e for e in mine if e.op == "down_read_trylock")
        if tl is not None and (inv is None or tl.i < inv.i):
            ctx.link(tl, "context", f"mmap_read_trylock {tl.obj} (the OOM reaper's way in)")
        if inv is not None:
            ctx.link(
                inv,
                "context",
                f"invalidate_range_start {_rng(inv)}, non-blockable "
                "(mmu_notifier_invalidate_range_start_nonblock): the callbacks run with "
                "blockable=False",
            )
        ctx.notes.append(
            f"task {t} is inside a non-blockable invalidation; the callback must use "
            f"mutex_trylock and fail (B5.2), but it calls {what or 'something that may sleep'}"
        )
    else:
        for sp in ctx.holds():
            acq = ctx.point_of(t, sp.start) if sp.task == t and sp.kind == "hold" else None
            if acq is not None and acq.op.startswith("spin_") and sp.start <= f.step < sp.end:
                ctx.link(acq, "context", f"takes spinlock {sp.obj} (atomic context)")
        ctx.notes.append(f"task {t} holds a spinlock and calls {what or 'a sleeping function'}")
    locks = sorted({sp.obj for sp in ctx.holds() if what.endswith(f"({sp.obj})")})
    for lock in locks:
        for sp in ctx.holds():
            if (
                sp.kind == "hold"
                and sp.obj == lock
                and sp.task != t
                and (sp.start <= f.step < sp.end)
            ):
                _acquire_link(ctx, sp, f"takes {lock} (held while {t} arrives)")
                ctx.notes.append(
                    f"{lock} is held by task {sp.task} since step {sp.start}: "
                    "here the call would really sleep"
                )


def _explain_lock_misuse(ctx: _Ctx) -> None:
    f = ctx.f
    lock = str(f.details["lock"])
    ctx.objects["lock"] = lock
    region = lock.split(".")[0] if "." in lock else None
    inits = []
    for e in ctx.before():
        if e.obj == lock and e.point:
            if e.op == "mutex_init":
                inits.append(e)
            ctx.link(e, "lock", f"{e.op} {lock}")
        elif (
            region
            and e.op == "seq"
            and e.obj == f"{region}.mreg_mni.invalidate_seq"
            and e.get("what") == "insert"
        ):
            ctx.link(
                e,
                "insert",
                f"{region}'s interval notifier inserted (seq {e.get('seq')}): from "
                "here invalidate callbacks can run on the region",
            )
        elif region and e.op == "region_created" and e.obj == region:
            ctx.link(e, "region", f"{region} created ({e.get('type')})")
    if f.task is not None:
        inv = ctx.last(
            e for e in ctx.before() if e.task == f.task and e.op == "invalidate_range_start"
        )
        if inv is not None:
            ctx.link(
                inv,
                "invalidate",
                f"invalidate_range_start {_rng(inv)}: {f.task} runs the notifier callbacks",
            )
    if "before mutex_init" in f.message and not inits:
        ctx.notes.append(
            f"{lock} was never mutex_init-ed before step {f.step}: the notifier "
            "was registered before the mutex was ready, and an invalidation's "
            "callback got there first"
        )


# ---------------------------------------------------------------------- regions, liveness


def _explain_s5(ctx: _Ctx) -> None:
    f = ctx.f
    region = str(f.details.get("region", ""))
    ctx.objects["region"] = region
    mni = f"{region}.mreg_mni"
    created = None
    for e in ctx.before():
        if e.op == "region_created" and e.obj == region:
            created = e
            ctx.link(e, "region", f"{region} created ({e.get('type')})")
        elif e.op == "seq" and e.obj == f"{mni}.invalidate_seq" and e.get("what") == "insert":
            ctx.link(e, "insert", f"{region}'s interval notifier inserted (seq {e.get('seq')})")
        elif e.op == "notifier_removed" and e.obj == mni:
            ctx.link(e, "remove", f"{region}'s interval notifier removed")
        elif e.op == "vfree" and e.obj == region:
            ctx.link(e, "free", f"{region} freed (vfree)")
    if f.task is not None and created is not None:
        errs = [
            e
            for e in ctx.before()
            if e.task == f.task
            and e.i > created.i
            and (
                (e.op == "choose" and e.get("outcome") != 0)
                or e.op in ("hypercall_failed", "WARN", "WARN_ONCE")
            )
        ]
        for e in errs[-3:]:
            ctx.link(
                e,
                "error",
                _choice_text(e) if e.op == "choose" else f"{e.op} {e.obj}: {_warn_text(e)}",
            )
        if errs:
            last = errs[-1]
            what = _choice_text(last) if last.op == "choose" else last.op
            ctx.notes.append(
                f"creation failed at step {last.step} ({what}) and took its error path"
            )
    removed = any(e.op == "notifier_removed" and e.obj == mni for e in ctx.before())
    if f.details.get("where") == "vfree" and not removed:
        ctx.notes.append(
            f"{region} is freed at step {f.step} on an error path, but its notifier {mni} was "
            "never removed (no mmu_interval_notifier_remove): the next invalidation calls back "
            "into freed memory"
        )


def _choice_text(e: _E) -> str:
    """An environment choice in words: ``choose alloc_fail(x) 1/2`` -> the allocation fails."""
    label = e.obj
    out = f"{e.get('outcome')}/{e.get('choices')}"
    if label.startswith("alloc_fail("):
        return f"the allocation {label[11:-1]} fails ({out})"
    if label == "direct_reclaim":
        return f"the allocation enters direct reclaim ({out})"
    if label.startswith("hv_call"):
        return f"hypercall {label} does not succeed (outcome {out}: insufficient memory or error)"
    return f"environment choice {label}: {out}"


def _explain_overlap(ctx: _Ctx) -> None:
    f = ctx.f
    region = str(f.details.get("region", ""))
    other = str(f.details.get("other", ""))
    ctx.objects["regions"] = f"{region}, {other}"
    for e in ctx.before():
        if e.op in ("region_created", "region_listed") and e.obj in (region, other):
            what = f" ({e.get('type')})" if e.op == "region_created" else ""
            ctx.link(e, "region", f"{e.op.replace('_', ' ')}: {e.obj}{what}")
        elif e.op == "ioctl":
            ret = e.get("ret")
            ctx.link(
                e,
                "ioctl",
                f"ioctl {e.obj} ({e.get('request')} gfn {e.get('gfn'):#x}): "
                + (_errno(ret) if ret else "0"),
            )
    note = f"{other} was already live when {region} passed the overlap check"
    if "wrap" in f.message:
        note += ": the new region's end gfn wrapped around 2^64, so [start, end) looked disjoint"
    ctx.notes.append(note)


def _explain_l3(ctx: _Ctx) -> None:
    f = ctx.f
    gfn = int(f.details["gfn"])
    t = f.task
    ctx.objects["gfn"] = gfn
    if (region := ctx.region_of(gfn)) is not None:
        ctx.objects["region"] = region
    mine = [e for e in ctx.before() if e.task == t]
    acc = [e for e in mine if e.op == "guest_access" and e.obj == f"gfn{gfn}"]
    kind = str(acc[-1].get("access", "")) if acc else ""
    if acc:
        ctx.link(acc[0], "access", f"guest {kind} of gfn {gfn}: the first attempt")
        for e in acc[-2:]:
            ctx.link(e, "access", f"guest {kind} of gfn {gfn} again")
        ctx.objects["accesses"] = len(acc)
    maps = [
        e
        for e in mine
        if e.op == "slat_map" and _covers_gfn(e, gfn) and (not acc or e.i > acc[0].i)
    ]
    for e in maps[-2:]:
        ctx.link(e, "map", f"the intercept maps {_run_text(e)}")
    need = _NEED.get(kind, 0)
    if maps and need:
        flags = {_flags(e) for e in maps}
        if all(not (fl & need) or not _grants(fl) for fl in flags):
            names = ", ".join(sorted(flag_names(fl) for fl in flags))
            ctx.notes.append(
                f"every map of gfn {gfn} by task {t} since its first access ({len(maps)} of "
                f"them) used {names}: none grants {kind}, so the guest faults again and the "
                f"intercept is handled again, forever"
            )
    for e in mine:
        if e.op == "WARN_ONCE" and e.get("reason") == WARN_RANGE_FAULT and e.get("gfn") == gfn:
            ret = e.get("ret")
            ctx.link(e, "error", f"the fault path fails: range fault at gfn {gfn}: {_errno(ret)}")
            walk = ctx.last(w for w in mine if w.op == "hmm_walk_pmd" and w.i < e.i)
            if walk is not None:
                ctx.link(walk, "read", f"HMM walks {_rng(walk)}")
            why = {
                "-EPERM": " (hmm_range_fault: a write fault was requested on a VMA "
                "without VM_WRITE)",
                "-EFAULT": " (hmm_range_fault: no VMA, or a "
                "VM_IO/VM_PFNMAP one, where a fault was requested)",
            }.get(_errno(ret), "")
            ctx.notes.append(
                f"collect_and_map for gfn {gfn} returned {_errno(ret)}{why}, so the intercept "
                f"goes to the VMM although the region and the VMA permit the {kind}"
            )
    if len(acc) > 1:
        ctx.notes.append(
            f"task {t} touched gfn {gfn} {len(acc)} times ({kind}) from step "
            f"{acc[0].step} to {acc[-1].step} without the access being installed"
        )


def _explain_generic(ctx: _Ctx) -> None:
    f = ctx.f
    names = {str(v) for v in f.details.values() if isinstance(v, str) and v}
    names |= {str(x) for v in f.details.values() if isinstance(v, list) for x in v}
    names.discard(str(f.details.get("where", "")))
    for k, v in f.details.items():
        if k not in ("where", "traceback") and isinstance(v, str | int) and not isinstance(v, bool):
            ctx.objects[k] = v

    def touches(e: _E) -> bool:
        return any(e.obj == n or e.obj.startswith(n + ".") for n in names)

    hits = [e for e in ctx.before() if touches(e)]
    for e in hits[-12:]:
        ctx.link(e, "object", e.text())
    if f.task is not None:
        mine = [e for e in ctx.before() if e.task == f.task]
        for e in mine[-8:]:
            ctx.link(e, "task", e.text())


__all__ = ["INVARIANTS", "Explanation", "Link", "explain", "flag_names"]
