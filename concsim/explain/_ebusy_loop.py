"""L1, an -EBUSY loop around ``hmm_range_fault`` that does not terminate (the mshv driver's
B2.3 loop, dmirror's fault loop): round by round, the sequence number the task read, the
invalidation whose callback changed it before the walk was done, and where the task saw the
change and retried (``mmu_interval_check_retry``, or ``mmu_interval_read_retry`` under the
driver's mutex).  Model-agnostic: it reads the kernel's notifier records only.

L1 promises termination only once invalidations stop; the story says who kept them coming,
and which rounds no invalidation explains: a round that ends with the seq it read unchanged
and still goes round again is the loop's own doing (an error it retries, a stale seq), and
those are the retries L1 counts against its bound.  When the failure says how many times the
loop retried (``details["retries"]``), the story is that many rounds, the task's last.
"""

from __future__ import annotations

from concsim.explain._context import Context, Record, range_text
from concsim.explain._livelock import explain as explain_livelock


def _rounds(ctx: Context, task: str) -> list[list[Record]]:
    """The task's last run of rounds: records from one read_begin to the next, on the
    notifier of its last read_begin."""
    mine = [r for r in ctx.upto if r.task == task]
    rbs = [r for r in mine if r.op == "read_begin"]
    if not rbs:
        return []
    mni = rbs[-1].obj
    starts = [r.i for r in rbs if r.obj == mni]
    out = []
    for k, a in enumerate(starts):
        b = starts[k + 1] if k + 1 < len(starts) else ctx.failure_index + len(ctx.at_failure)
        out.append([r for r in ctx.upto if a <= r.i < b])
    n = ctx.failure.details.get("retries")
    if isinstance(n, int) and not isinstance(n, bool) and 0 < n < len(out):
        out = out[-n:]  # the failing loop's rounds (earlier ones were other calls)
    return out


def _retry_point(recs: list[Record], task: str, bump: Record | None) -> Record | None:
    """Where the task saw the change: its first lockless ``mmu_interval_check_retry`` after
    the bump, else its last acquisition of a mutex in the round (the driver's: the
    ``mmu_interval_read_retry`` under it has no scheduling point of its own)."""
    mine = [r for r in recs if r.task == task and r.point and (bump is None or r.i > bump.i)]
    check = next((r for r in mine if r.op == "mmu_interval_check_retry"), None)
    if check is not None:
        return check
    locks = [r for r in mine if r.op == "mutex_lock" or (r.op == "wake" and "mutex" in r.obj)]
    return locks[-1] if locks else (mine[-1] if mine else None)


def explain(ctx: Context) -> None:
    f = ctx.failure
    t = f.task
    if t is None:
        return
    rounds = _rounds(ctx, t)
    if not rounds:
        explain_livelock(ctx)
        return
    mni = rounds[-1][0].obj
    ctx.objects["notifier"] = mni
    ctx.objects["rounds"] = len(rounds)
    movers: list[str] = []
    unexplained: list[int] = []
    for n, recs in enumerate(rounds, 1):
        rb = recs[0]
        seq = rb.get("seq")
        then = f"round {n + 1}" if n < len(rounds) else "past the retry bound"
        ctx.link(rb, "read", f"round {n}: mmu_interval_read_begin on {mni} reads seq {seq}")
        bumps = [
            r
            for r in recs
            if r.op == "seq" and r.obj == f"{mni}.invalidate_seq" and r.get("what") == "set_seq"
        ]
        for b in bumps[:2]:
            inv = ctx.last(
                r for r in ctx.upto[: b.i] if r.task == b.task and r.op == "invalidate_range_start"
            )
            by = "its own" if b.task == t else f"by {b.task}"
            if inv is not None:
                ctx.link(
                    inv,
                    "invalidate",
                    f"invalidate_range_start {range_text(inv)} {inv.get('event', '')} "
                    f"({by}) covers the range being walked",
                )
            ctx.link(b, "callback", f"its callback sets seq {b.get('seq')}: round {n} is stale")
            movers.append(b.task)
        if not bumps:
            # Nothing changed the seq: the round ended for a reason of the loop's own.
            unexplained.append(n)
            # The task's last point of the round (the next round's read_begin point shares
            # its step with that round's first record, so it is left out).
            nxt = rounds[n][0].step if n < len(rounds) else None
            mine = [r for r in recs if r.task == t and r.point and (nxt is None or r.step < nxt)]
            if mine:
                ctx.link(
                    mine[-1],
                    "retry",
                    f"round {n} ends with seq still {seq}: no invalidation changed it, yet "
                    f"the loop goes round again ({then})",
                )
            ctx.notes.append(
                f"round {n} (from step {rb.step}) read seq {seq} and nothing changed it: "
                "the retry is not an invalidation's"
            )
            continue
        seen = _retry_point(recs, t, bumps[0])
        if seen is not None:
            if seen.op == "mmu_interval_check_retry":
                how = f"mmu_interval_check_retry: seq is no longer {seq}"
            else:
                how = f"takes {seen.obj}; mmu_interval_read_retry under it: seq is no longer {seq}"
            ctx.link(seen, "retry", f"{how}: -EBUSY, {then}")
        ctx.notes.append(
            f"round {n} (from step {rb.step}) read seq {seq}; "
            + ", ".join(
                f"{b.task}'s invalidation set seq {b.get('seq')} at step {b.step}" for b in bumps
            )
            + " before the walk was checked"
        )
    bound = ctx.params.get("retry_bound")
    times = f"task {t} went round the -EBUSY loop {len(rounds)} times" + (
        f" (retry_bound {bound})" if bound is not None else ""
    )
    who = ", ".join(dict.fromkeys(movers)) or "other tasks"
    if not unexplained:
        ctx.notes.append(
            f"{times}: each time an invalidation ({who}) changed the seq before the walk "
            "finished; L1 promises termination only once invalidations stop"
        )
        return
    spoiled = len(rounds) - len(unexplained)
    ctx.notes.append(
        f"{times}: {spoiled} round(s) spoiled by an invalidation"
        + (f" ({who})" if spoiled else "")
        + f", {len(unexplained)} with the seq unchanged (round "
        + ", ".join(str(n) for n in unexplained)
        + "): no invalidation explains those retries, so the loop would go round even once "
        "invalidations stop (L1 counts only the retries that invalidations do not explain)"
    )
