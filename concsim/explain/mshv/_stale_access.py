"""S1, S2, S7 (and S3's unlocked SLAT write): a gfn whose SLAT entry and the process's PTE
disagree.

The invariant ties two sides together: the SLAT entry of a gfn (written by hypercalls) and
the PTE of its hva page (written by the primary MMU).  The first question is which write
made it false, and that decides the story:

* **the SLAT write** (the oracle's ``where`` is ``slat_write``, or collect_and_map's own
  check): the installer mapped something the PTE did not (or no longer) map.  The story is
  the installer's read (``mmu_interval_read_begin``, the HMM walk of the hva page), the
  invalidations that ran since (did the driver's callback run, what seq it set), the mutex
  it installed under, and whether it went back to read_begin after taking it (B3.7);
* **the PTE write** (``pte_changed``; a guest access or the final audit that found the two
  sides apart; a page freed while granted): the SLAT entry was right when it was written
  (the oracle recorded its step, ``slat_step``), and later the primary MMU changed the PTE
  of the hva page.  The step that broke the invariant is that PTE change, not the install;
  the story is the install, the PTE change, and the invalidations covering the page that
  ran between them (none: the PTE changed without an MMU-notifier invalidation, so no
  callback could tear the gfn down).

Then the PTE changes of the hva page and the guest's accesses to the gfn.
"""

from __future__ import annotations

from concsim.checks._catalogue import S2, S7
from concsim.driver._region import MSHV_REGION_TYPE_MEM_PINNED
from concsim.driver._tracepoints import WARN_INVALIDATE_REMAP_FAILED
from concsim.explain._context import (
    CAP,
    Context,
    Record,
    covers_vpn,
    range_text,
    vpn_range,
    warn_text,
)
from concsim.explain._generic import explain as explain_generic
from concsim.explain.mshv._layout import (
    covers_gfn,
    flag_names,
    gfn_run,
    grants,
    hva_of,
    map_flags,
    pte_change,
    region_of,
    run_text,
)
from concsim.kernel._hv import HV_MAP_GPA_WRITABLE
from concsim.kernel._pagealloc import ZERO_PFN

#: Where the oracle caught the SLAT side itself being written wrong.
_INSTALL_WHERE = ("slat_write", "mshv_region_collect_and_map")


class _Facts:
    """The objects of the failure: gfn, pfn, hva page, region, and their names."""

    def __init__(self, ctx: Context) -> None:
        d = ctx.failure.details
        self.gfn = d.get("gfn") if isinstance(d.get("gfn"), int) else None
        self.pfn = d.get("pfn") if isinstance(d.get("pfn"), int) else None
        hva = d.get("hva") if isinstance(d.get("hva"), int) else None
        if hva is None and self.gfn is not None:
            hva = hva_of(ctx, self.gfn)
        self.hva: int | None = hva
        region = d.get("region") if isinstance(d.get("region"), str) else None
        if region is None and self.gfn is not None:
            region = region_of(ctx, self.gfn)
        self.region: str | None = region
        self.mni = f"{region}.mreg_mni" if region else None
        self.mutex = f"{region}.mreg_mutex" if region else None
        self.where = d.get("where")
        self.inv = ctx.failure.invariant or "the invariant"


def explain(ctx: Context) -> None:
    fx = _Facts(ctx)
    for k, v in (("gfn", fx.gfn), ("pfn", fx.pfn), ("hva page", fx.hva), ("region", fx.region)):
        if v is not None:
            ctx.objects[k] = v
    if fx.pfn == ZERO_PFN:
        ctx.notes.append(f"pfn {fx.pfn} is the shared zero page: it may never be mapped writable")
    if fx.gfn is None:
        explain_generic(ctx)
        return
    gfn = fx.gfn
    f = ctx.failure
    before = ctx.before()

    # The SLAT writes of the gfn.
    slat_recs = [
        r
        for r in before
        if r.op in ("slat_map", "slat_unmap", "hypercall_failed") and covers_gfn(r, gfn)
    ]
    granting = [r for r in slat_recs if r.op == "slat_map" and grants(map_flags(r))]
    fail_map = next(
        (r for r in ctx.at_failure if r.op == "hv_call_map_gpa_pages" and covers_gfn(r, gfn)),
        None,
    )
    install_broke = fx.where in _INSTALL_WHERE or fail_map is not None
    if install_broke:
        # The SLAT write at the failing step is what made the invariant false.
        installer = f.task
        map_r = fail_map or (ctx.at_failure[0] if ctx.at_failure else None)
    else:
        # The SLAT entry the failure is about, as the oracle recorded it, else the last one.
        map_r = _recorded_install(ctx, granting) or (granting[-1] if granting else None)
        installer = map_r.task if map_r is not None else None
    stale = [r for r in granting if map_r is None or r.i < map_r.i]

    breaker = None if install_broke else _breaking_write(ctx, fx, map_r)
    if breaker is not None:
        _link_breaker(ctx, fx, breaker, map_r)
    if map_r is not None and map_r.op == "slat_map":
        ctx.link(
            map_r,
            "map",
            f"SLAT maps {run_text(map_r)}: gfn {gfn} grants access"
            + (f" (to pfn {fx.pfn})" if fx.pfn is not None else "")
            + (", correct when written" if breaker is not None else ""),
        )
    for r in stale[-2:]:
        ctx.link(
            r,
            "map",
            f"SLAT maps {run_text(r)}: gfn {gfn} grants access"
            + (f" (to pfn {fx.pfn})" if fx.pfn is not None and r is stale[-1] else ""),
        )
    for r in slat_recs:
        if r.op == "slat_unmap":
            ctx.link(r, "map", f"SLAT unmaps {run_text(r)}")
        elif r.op == "hypercall_failed":
            ctx.link(
                r,
                "remap",
                f"the hypercall for {run_text(r)} failed: gfn {gfn}'s entry keeps its old value",
            )
        elif r.op == "slat_map" and not grants(map_flags(r)) and stale and r.i > stale[-1].i:
            ctx.link(r, "remap", f"SLAT remaps {run_text(r)}: gfn {gfn} no longer grants access")
    if map_r is not None and map_r.op == "hv_call_map_gpa_pages":
        fl = map_flags(map_r)
        ctx.link(
            map_r,
            "failure",
            f"hv_call_map_gpa_pages: maps {run_text(map_r)}"
            + (f" - gfn {gfn} to pfn {fx.pfn}" if fx.pfn is not None else "")
            + f": this write breaks {fx.inv}",
        )
        if fl & HV_MAP_GPA_WRITABLE and f.invariant == S7:
            ctx.notes.append(f"the map flags {fl:#x} ({flag_names(fl)}) grant write access")

    # The installer's read, when the install is what broke the invariant.
    rb: Record | None = None
    walk: Record | None = None
    seq_read: int | None = None
    lock_start: int | None = None
    if install_broke and installer is not None and map_r is not None:
        rb, walk, seq_read = _installer_read(ctx, fx, installer, map_r)
        lock_start = _installer_lock(ctx, fx, installer, map_r)

    # The invalidations covering the hva page in the window, and the PTE changes.
    if fx.hva is not None:
        if install_broke:
            marks = [x.i for x in (stale[-1] if stale else None, rb) if x is not None]
            window = min(marks, default=0)
        else:
            window = map_r.i if map_r is not None else 0
        found = _invalidations(ctx, fx, window, seq_read)
        if not found:
            if breaker is not None and map_r is not None:
                ctx.notes.append(
                    f"no invalidation covering hva page {fx.hva} ran between the SLAT write at "
                    f"step {map_r.step} and the PTE change at step {breaker.step}: the primary "
                    f"MMU ({breaker.task}) changed the PTE without an MMU-notifier invalidation "
                    f"around it, so no callback could tear gfn {gfn} down"
                )
            else:
                ctx.notes.append(f"no invalidation covering hva page {fx.hva} ran in this window")
        _pte_links(ctx, fx, before, walk)

    if install_broke and seq_read is not None and map_r is not None and rb is not None:
        _read_retry_note(ctx, fx, installer, rb, map_r, seq_read, lock_start)
    if (
        installer is not None
        and lock_start is not None
        and f.invariant == S2
        and fx.where == "mshv_region_collect_and_map"
        and f.kind != "assertion"
    ):
        _unmapped_slot_note(ctx, gfn, installer, lock_start)

    # The guest's accesses to the gfn.
    acc = [r for r in before if r.op == "guest_access" and r.get("gfn", -1) == gfn]
    for r in acc[-2:]:
        ctx.link(r, "access", f"guest {r.get('access', 'access')} of gfn {gfn}")
    if fx.where == "guest_access":
        _guest_access(ctx, fx, granting, before, breaker)
    elif fx.where == "page_freed":
        _pinned_page_freed(ctx, fx, before)


def _pinned_page_freed(ctx: Context, fx: _Facts, before: list[Record]) -> None:
    """A page freed while the SLAT grants it, in a pinned region: the pin kept the page
    after the process unmapped it, so the free came from dropping the pin too early."""
    created = next(
        (
            r
            for r in before
            if r.op == "region_created"
            and fx.region is not None
            and r.obj == fx.region
            and r.get("type") == MSHV_REGION_TYPE_MEM_PINNED
        ),
        None,
    )
    if created is None:
        return
    ctx.link(created, "region", f"{fx.region} created pinned")
    ctx.notes.append(
        f"{fx.region} is pinned: its pin kept the page alive after the process unmapped it; "
        f"the pin was dropped while the SLAT still granted gfn {fx.gfn}, which freed the page "
        "(destroy must unmap the SLAT before it unpins and vfree's the region)"
    )


def _recorded_install(ctx: Context, granting: list[Record]) -> Record | None:
    """The SLAT write the oracle says the entry comes from (``slat_step``)."""
    step = ctx.failure.details.get("slat_step")
    if not isinstance(step, int):
        return None
    return next((r for r in reversed(granting) if r.step == step), None)


def _breaking_write(ctx: Context, fx: _Facts, map_r: Record | None) -> Record | None:
    """The write that made the invariant false when the SLAT entry was right: the last PTE
    change of the hva page after the SLAT write (or the failing step's operation)."""
    after = map_r.i if map_r is not None else -1
    if fx.where == "guest_access" and fx.region is not None:
        for r in ctx.before():
            pinned = r.op == "region_created" and r.get("type") == MSHV_REGION_TYPE_MEM_PINNED
            if r.obj == fx.region and (pinned or r.op == "vfree"):
                return None  # the region's own rule (the pin's) or its free: told below
    if fx.hva is not None and fx.where != "page_freed":
        ptes = [r for r in ctx.before() if r.i > after and pte_change(r, fx.hva) is not None]
        if ptes:
            return ptes[-1]
    if fx.where in ("pte_changed", "page_freed"):
        task = ctx.failure.task
        return next((r for r in ctx.at_failure if r.point and task in (None, r.task)), None)
    return None


def _link_breaker(ctx: Context, fx: _Facts, r: Record, map_r: Record | None) -> None:
    since = f" (written at step {map_r.step} by {map_r.task})" if map_r is not None else ""
    point = ctx.point_of(r.task, r.step)
    how = f"{point.op}: " if point is not None and point is not r else ""
    if r.op == "set_pte" and fx.hva is not None:
        state = pte_change(r, fx.hva)
        new_pfn = r.int_field("pfn")
        to = (
            f" (pfn {new_pfn})"
            if state == "present" and new_pfn is not None and new_pfn >= 0
            else ""
        )
        text = f"{how}PTE of hva page {fx.hva} -> {state}{to}"
        if fx.where == "pte_changed" and ctx.failure.invariant == S7:
            text += (
                f": write-protected while the SLAT entry of gfn {fx.gfn}{since} lets the "
                "guest write"
            )
        else:
            text += (
                f": it stops mapping pfn {fx.pfn} while the SLAT entry of gfn {fx.gfn}{since} "
                "still grants access to it"
            )
    else:
        text = (
            f"{r.op} {r.obj}: frees pfn {fx.pfn} while the SLAT entry of gfn {fx.gfn}{since} "
            "still grants access to it"
        )
    ctx.link(r, "breaks", f"{text}: this write breaks {fx.inv}")
    ctx.objects["broken at step"] = r.step
    ctx.notes.append(
        f"{fx.inv} was broken at step {r.step} by task {r.task}"
        + (f" ({point.op})" if point is not None else "")
        + (
            f"; the SLAT entry of gfn {fx.gfn} was right when task {map_r.task} wrote it at "
            f"step {map_r.step}"
            if map_r is not None
            else ""
        )
    )


def _installer_read(
    ctx: Context, fx: _Facts, installer: str, map_r: Record
) -> tuple[Record | None, Record | None, int | None]:
    """The installer's mmu_interval_read_begin and HMM walk of the hva page."""
    mine = [r for r in ctx.upto[: map_r.i + 1] if r.task == installer]
    rb = ctx.last(r for r in mine if r.op == "read_begin" and (fx.mni is None or r.obj == fx.mni))
    walk = None
    seq_read = None
    if rb is None:
        return None, None, None
    seq = rb.int_field("seq")
    if seq is not None:
        seq_read = seq
        busy = bool(rb.get("busy"))
        ctx.link(
            rb,
            "read",
            f"mmu_interval_read_begin on {rb.obj}: reads seq {seq}"
            + (" (an invalidation is running: waits for its end)" if busy else ""),
        )
    if fx.hva is not None:
        hva = fx.hva
        walk = ctx.last(
            r for r in mine if r.i > rb.i and r.op == "hmm_walk_pmd" and covers_vpn(r, hva)
        )
        if walk is not None:
            ctx.link(
                walk,
                "read",
                f"HMM walks {range_text(walk)}: reads the PTE of hva page {hva} (what it will "
                f"map for gfn {fx.gfn}) under seq {seq_read}",
            )
    return rb, walk, seq_read


def _installer_lock(ctx: Context, fx: _Facts, installer: str, map_r: Record) -> int | None:
    """Link where the installer took (or waited for) mreg_mutex; its hold's start step."""
    if fx.mutex is None:
        return None
    mutex = fx.mutex
    hold = ctx.hold_at(installer, mutex, map_r.step)
    if hold is None:
        return None
    first = hold.args.get("acquired_at_step", hold.start)
    ctx.link(ctx.point_of(installer, hold.start), "lock", f"takes {mutex} (to install under it)")
    holds = ctx.holds()
    wait = next(
        (
            sp
            for sp in holds
            if sp.kind == "wait" and sp.task == installer and sp.obj == mutex and sp.end == first
        ),
        None,
    )
    if wait is not None:
        who = sorted(
            {
                h.task
                for h in holds
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
    return hold.start


def _invalidations(ctx: Context, fx: _Facts, window: int, seq_read: int | None) -> bool:
    """Link every invalidation covering the hva page still running at record ``window`` or
    later, with what its callbacks did; False if there was none."""
    hva, gfn, mni, mutex = fx.hva, fx.gfn, fx.mni, fx.mutex
    assert hva is not None
    assert gfn is not None
    found = []
    for s in ctx.before():
        if s.op != "invalidate_range_start" or not covers_vpn(s, hva):
            continue
        rng = vpn_range(s)
        end = next(
            (
                r
                for r in ctx.upto[s.i + 1 :]
                if r.task == s.task
                and ((r.op == "invalidate_range_end" and vpn_range(r) == rng) or r.op == "oom_reap")
            ),
            None,
        )
        if end is not None and end.i < window:
            continue
        found.append((s, end))
    for s, end in found[-CAP:]:
        ctx.link(
            s,
            "invalidate",
            f"invalidate_range_start {range_text(s)} {s.get('event', '')}: covers hva page {hva}",
        )
        stop = end.i if end is not None else ctx.failure_index + len(ctx.at_failure)
        ran = False
        for r in ctx.upto[s.i + 1 : stop + 1]:
            if r.task != s.task:
                continue
            if (
                r.op == "seq"
                and mni is not None
                and r.obj == f"{mni}.invalidate_seq"
                and r.get("what") == "set_seq"
            ):
                ran = True
                v = r.get("seq", "?")
                extra = ""
                if seq_read is not None and isinstance(v, int) and v != seq_read:
                    extra = f" (a reader holding seq {seq_read} must now retry)"
                ctx.link(
                    r,
                    "callback",
                    f"the {mni.split('.')[0]} callback runs under {mutex}: set_seq {v}{extra}",
                )
            elif r.op in ("mutex_lock", "mutex_trylock") and r.obj == mutex:
                ctx.link(r, "callback", f"the callback takes {mutex}")
            elif r.op == "mutex_trylock_failed" and r.obj == mutex:
                ctx.link(r, "callback", f"mutex_trylock {mutex} fails (owner {r.get('owner')})")
            elif r.op == "slat_map" and covers_gfn(r, gfn):
                run = gfn_run(r)
                what = f"gfn {run[0]}+{run[1]}" if run else r.text()
                ctx.link(r, "remap", f"the callback remaps {what} NO_ACCESS (tears gfn {gfn} down)")
            elif r.op == "hypercall_failed":
                ctx.link(r, "remap", f"the callback's remap hypercall for {run_text(r)} fails")
            elif r.op == "WARN":
                ctx.link(r, "remap", f"WARN on {r.obj}: {warn_text(r)}")
                if r.get("reason") == WARN_INVALIDATE_REMAP_FAILED:
                    keeps = f"gfn {gfn}'s slot keeps" + (
                        f" pfn {fx.pfn}" if fx.pfn is not None else " its stale pfn"
                    )
                    ctx.notes.append(
                        f"the invalidate callback's NO_ACCESS remap failed at step {r.step}: it "
                        f"returned false before invalidate_pfns, so {keeps} (B5.5) while the "
                        "mm unmaps and frees the page anyway"
                    )
            elif r.op == "invalidate_pfns":
                ctx.link(r, "callback", f"slots {range_text(r)} of {r.obj} := MSHV_INVALID_PFN")
            elif r.op == "oom_reap":
                ret = r.get("ret", 0)
                ctx.link(
                    r,
                    "invalidate",
                    f"OOM reaper: {range_text(r)}" + (f" skipped: {ret}" if ret else ""),
                )
        if end is not None and end.op == "invalidate_range_end":
            ctx.link(end, "invalidate", f"invalidate_range_end {range_text(end)}")
        if not ran and mni is not None:
            ctx.notes.append(
                f"the invalidation started at step {s.step} by {s.task} had not run "
                f"{mni.split('.')[0]}'s callback (no set_seq) by "
                + (f"its end at step {end.step}" if end is not None else "the failing step")
            )
    return bool(found)


def _pte_links(ctx: Context, fx: _Facts, before: list[Record], walk: Record | None) -> None:
    hva = fx.hva
    assert hva is not None
    ptes = [(r, st) for r in before if (st := pte_change(r, hva)) is not None]
    for r, st in ptes[-3:]:
        point = ctx.point_of(r.task, r.step)
        how = f"{point.op}: " if point is not None else ""
        text = f"{how}PTE of hva page {hva} -> {st}"
        pfn = r.int_field("pfn")
        if st in ("none", "swap", "migration"):
            text += ": the process stops mapping the page (its pfn is put, maybe freed)"
        elif st == "present" and pfn is not None and pfn >= 0:
            text += f": the hva page maps pfn {pfn}"
        ctx.link(r, "pte", text)
    gone = [(r, st) for r, st in ptes if walk is not None and r.i < walk.i]
    if walk is not None and gone and gone[-1][1] != "present" and fx.where == _INSTALL_WHERE[1]:
        r, st = gone[-1]
        ctx.notes.append(
            f"the walk at step {walk.step} found hva page {hva} {st} (since step {r.step}), "
            f"so HMM returned no valid pfn for gfn {fx.gfn} and collect_and_map skipped its "
            "slot, trusting it to be MSHV_INVALID_PFN"
        )


def _read_retry_note(
    ctx: Context,
    fx: _Facts,
    installer: str | None,
    rb: Record,
    map_r: Record,
    seq_read: int,
    lock_start: int | None,
) -> None:
    """B3.7: did the installer go back to read_begin after taking the mutex?"""
    if fx.mni is None:
        return
    bumps = [
        r
        for r in ctx.upto[rb.i : map_r.i]
        if r.op == "seq" and r.obj == f"{fx.mni}.invalidate_seq" and r.get("what") == "set_seq"
    ]
    if bumps:
        new = bumps[-1].int_field("seq")
        lock_txt = f" it took {fx.mutex} at step {lock_start} and" if lock_start else ""
        if new is not None and new != seq_read:
            ctx.notes.append(
                f"{fx.region}'s seq changed from {seq_read} (read at step {rb.step}) to {new} "
                f"at step {bumps[-1].step}, so mmu_interval_read_retry under the mutex "
                f"returns true; yet{lock_txt} task {installer} went on to map without going "
                "back to read_begin: the result of the walk was used stale (no read_retry "
                "after mutex_lock, B3.7)"
            )
    elif fx.where in (*_INSTALL_WHERE, "guest_access"):
        ctx.notes.append(
            f"no invalidate callback bumped {fx.region}'s seq between the read at step "
            f"{rb.step} and the map at step {map_r.step}, so the read_retry (B3.7) had "
            "nothing to catch"
        )


def _unmapped_slot_note(ctx: Context, gfn: int, installer: str, lock_start: int) -> None:
    """S2 at collect_and_map: a slot filled from the walk but never mapped."""
    f = ctx.failure
    maps = [
        r
        for r in ctx.records
        if r.task == installer and lock_start <= r.step <= f.step and r.op == "slat_map"
    ]
    for r in maps[-CAP:]:
        ctx.link(r, "map", f"SLAT maps {run_text(r)}")
    if not any(covers_gfn(r, gfn) for r in maps):
        runs = ", ".join(f"{run[0]}+{run[1]}" for r in maps if (run := gfn_run(r)))
        ctx.notes.append(
            f"between taking the mutex at step {lock_start} and dropping it, task "
            f"{installer}'s hypercalls covered gfn {runs or 'nothing'}: none covered gfn "
            f"{gfn}, whose slot was filled from the walk but never mapped"
        )


def _guest_access(
    ctx: Context, fx: _Facts, granting: list[Record], before: list[Record], breaker: Record | None
) -> None:
    """The guest got through: say what the SLAT entry it used was left over from."""
    region, gfn = fx.region, fx.gfn
    created = next(
        (r for r in before if r.op == "region_created" and region and r.obj == region), None
    )
    freed = next(
        (r for r in reversed(before) if r.op == "vfree" and region and r.obj == region), None
    )
    pinned = created is not None and created.get("type") == MSHV_REGION_TYPE_MEM_PINNED
    if granting and (freed is not None or pinned):
        g = granting[-1]
        ctx.link(g, "map", f"SLAT maps {run_text(g)}: gfn {gfn} grants access")
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
    elif breaker is None:
        ctx.notes.append(
            f"the guest reached through gfn {gfn} a page the process does not map there any more"
        )
