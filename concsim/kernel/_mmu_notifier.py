"""Interval MMU notifiers (mm/mmu_notifier.c): sequence numbers, invalidation rounds.

The rules modelled (spec B1.5, B5 core side, B6), in the kernel's names:

* ``subs.invalidate_seq`` is mm-wide.  It starts at 2 (even: idle).  An invalidation whose
  range hits at least one interval notifier makes it odd (``seq |= 1``) in
  ``mn_itree_inv_start_range``; when the last concurrent invalidation ends
  (``active_invalidate_ranges`` drops to 0) ``mn_itree_inv_end`` makes it even again
  (``seq++``), applies the deferred inserts and removes, and wakes ``subs.wq``.
* ``mni.invalidate_seq`` is per notifier and always odd.  The driver's callback sets it to
  the round's odd ``cur_seq`` (``mmu_interval_set_seq``) under its own lock.
* ``mmu_interval_read_begin`` waits only if *this* notifier's callback already ran in the
  current round (``mni.seq == subs.seq``); if the round started but the callback has not
  run yet (it may be blocked on the driver's mutex) it does not wait: the driver's retry
  check, or the callback's own teardown, handles that case.
* ``mmu_interval_read_retry`` (under the driver lock) and ``mmu_interval_check_retry``
  (lockless, inside hmm_range_fault) both compare ``mni.seq`` with the value read_begin
  returned.
* Inserting while invalidations are active: if the round is odd the insert is deferred to
  inv_end; otherwise the insert makes the round odd; either way ``mni.seq = subs.seq``.
  Inserting when idle sets ``mni.seq = subs.seq - 1``.
* Removing during a round is deferred and waits for the round to end (an mni still only on
  the deferred-insert list is just unlinked).

Each ``subs.lock`` critical section is one atomic step of the model (a scheduling point
before it, none inside): nothing in those sections can be observed half done.

Footprint: the mm-wide state (``subs.invalidate_seq``, the interval tree, the deferred
list, ``active_invalidate_ranges``) is the object ``"subs"``; each notifier's sequence
number is ``"<mni>.invalidate_seq"``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from concsim.engine import Runtime
from concsim.kernel._lockbase import LockdepMap
from concsim.kernel._mm import MM
from concsim.kernel._sched import might_sleep, nonblock_context
from concsim.kernel._tracepoints import WARN_BLOCKABLE_CALLBACK_FAILED
from concsim.kernel._waitqueue import WaitQueue

EAGAIN = 11

MMU_NOTIFY_UNMAP = "UNMAP"
MMU_NOTIFY_CLEAR = "CLEAR"
MMU_NOTIFY_PROTECTION_VMA = "PROTECTION_VMA"
MMU_NOTIFY_MIGRATE = "MIGRATE"
MMU_NOTIFY_RELEASE = "RELEASE"

ULONG_MAX_VPN = 1 << 52


@dataclass
class MMUNotifierRange:
    """``struct mmu_notifier_range`` in pages: [start, end)."""

    mm: MM
    start: int
    end: int
    event: str
    blockable: bool = True


def mmu_notifier_range_blockable(r: MMUNotifierRange) -> bool:
    return r.blockable


InvalidateFn = Callable[["MMUIntervalNotifier", MMUNotifierRange, int], Awaitable[bool]]


class MMUIntervalNotifier:
    """``struct mmu_interval_notifier``: [start, last] in pages, its seq, its callback."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: the footprint object of its sequence number
        self.seq_obj = f"{name}.invalidate_seq"
        self.start = 0
        self.last = -1
        self.invalidate_seq = 0
        self.invalidate: InvalidateFn | None = None
        self.mm: MM | None = None
        self.in_tree = False
        self.deferred_insert = False
        self.owner: Any = None  # the containing object (container_of)

    def overlaps(self, start: int, end: int) -> bool:
        return self.start < end and start <= self.last


class MMUNotifierSubscriptions:
    def __init__(self, rt: Runtime, mm: MM) -> None:
        self.rt = rt
        self.mm = mm
        self.invalidate_seq = 2
        self.active_invalidate_ranges = 0
        self.itree: list[MMUIntervalNotifier] = []
        self.deferred_list: list[tuple[str, MMUIntervalNotifier]] = []
        self.wq = WaitQueue(rt, "subs.wq")
        self.start_map = LockdepMap(
            rt, "invalidate_range_start_map", "mmu_notifier_invalidate_range_start"
        )

    def _tree_insert(self, mni: MMUIntervalNotifier) -> None:
        mni.in_tree = True
        mni.deferred_insert = False
        self.itree.append(mni)
        # Interval-tree order: by start, ties by insertion (stable sort).
        self.itree.sort(key=lambda m: m.start)


def subscriptions(mm: MM) -> MMUNotifierSubscriptions:
    subs = mm.notifier_subscriptions
    if subs is None:
        subs = MMUNotifierSubscriptions(mm.rt, mm)
        mm.notifier_subscriptions = subs
    assert isinstance(subs, MMUNotifierSubscriptions)
    return subs


def _seq_event(rt: Runtime, what: str, subs: MMUNotifierSubscriptions) -> None:
    if rt.tracing:
        rt.event("seq", "subs.invalidate_seq", what, subs.invalidate_seq)


async def mmu_interval_notifier_insert(
    mni: MMUIntervalNotifier, mm: MM, start: int, length: int, invalidate: InvalidateFn
) -> int:
    """Register ``mni`` on [start, start+length) pages of ``mm`` (B1.5)."""
    rt = mm.rt
    subs = subscriptions(mm)
    mni.start = start
    mni.last = start + length - 1
    mni.invalidate = invalidate
    mni.mm = mm
    await rt.point("mmu_interval_notifier_insert", "subs")
    if subs.active_invalidate_ranges:
        if subs.invalidate_seq & 1:
            mni.deferred_insert = True
            subs.deferred_list.append(("insert", mni))
        else:
            subs.invalidate_seq |= 1
            subs._tree_insert(mni)
        mni.invalidate_seq = subs.invalidate_seq
    else:
        mni.invalidate_seq = subs.invalidate_seq - 1
        subs._tree_insert(mni)
    rt.access(mni.seq_obj)
    if rt.tracing:
        rt.event("seq", mni.seq_obj, "insert", mni.invalidate_seq)
    return 0


async def mmu_interval_notifier_remove(mni: MMUIntervalNotifier) -> None:
    """Unregister ``mni``; afterwards no callback runs or will run (B10.2a)."""
    mm = mni.mm
    assert mm is not None
    rt = mm.rt
    subs = subscriptions(mm)
    might_sleep(rt, "mmu_interval_notifier_remove")
    await rt.point("mmu_interval_notifier_remove", "subs")
    seq_to_wait = 0
    if subs.invalidate_seq & 1:
        if mni.deferred_insert:
            subs.deferred_list = [(op, m) for op, m in subs.deferred_list if m is not mni]
            mni.deferred_insert = False
        else:
            subs.deferred_list.append(("remove", mni))
            seq_to_wait = subs.invalidate_seq
    else:
        if mni in subs.itree:
            subs.itree.remove(mni)
        mni.in_tree = False
    subs.start_map.lock_map_acquire()
    subs.start_map.lock_map_release()
    if seq_to_wait:
        await subs.wq.wait_event(
            lambda: subs.invalidate_seq != seq_to_wait,
            "wait_event(notifier_remove)",
            reads=("subs",),
        )
    rt.event("notifier_removed", mni.name)


async def mmu_interval_read_begin(mni: MMUIntervalNotifier) -> int:
    """B6 read_begin: may sleep until the round in which our callback ran has ended."""
    mm = mni.mm
    assert mm is not None
    rt = mm.rt
    subs = subscriptions(mm)
    might_sleep(rt, "mmu_interval_read_begin")
    await rt.point("mmu_interval_read_begin", mni.seq_obj, read=True)
    rt.access("subs", write=False)
    seq = mni.invalidate_seq
    is_invalidating = seq == subs.invalidate_seq
    # lockdep: read_begin may wait for an invalidation, so it "takes" the start map.
    subs.start_map.lock_map_acquire()
    subs.start_map.lock_map_release()
    if rt.tracing:
        rt.event("read_begin", mni.name, seq, is_invalidating)
    if is_invalidating:
        rt.count("read_begin_waits")
        await subs.wq.wait_event(
            lambda: subs.invalidate_seq != seq, "wait_event(read_begin)", reads=("subs",)
        )
    return seq


async def mmu_interval_read_retry(mni: MMUIntervalNotifier, seq: int) -> bool:
    """B6 read_retry: called under the driver lock.  A scheduling point all the same: the
    sequence number is written by a callback that may run on another CPU right before it
    (if the driver forgot its lock, that is the bug)."""
    assert mni.mm is not None
    await mni.mm.rt.point("mmu_interval_read_retry", mni.seq_obj, read=True)
    return mni.invalidate_seq != seq


async def mmu_interval_check_retry(mni: MMUIntervalNotifier, seq: int) -> bool:
    """B6 check_retry: a lockless READ_ONCE, so a scheduling point."""
    assert mni.mm is not None
    await mni.mm.rt.point("mmu_interval_check_retry", mni.seq_obj, read=True)
    return mni.invalidate_seq != seq


async def mmu_interval_set_seq(mni: MMUIntervalNotifier, cur_seq: int) -> None:
    """Called by the driver's callback under its lock: makes in-flight readers retry.  A
    scheduling point (a WRITE_ONCE another CPU's lockless check_retry can see)."""
    assert mni.mm is not None
    rt = mni.mm.rt
    await rt.point("mmu_interval_set_seq", mni.seq_obj)
    mni.invalidate_seq = cur_seq
    if rt.tracing:
        rt.event("seq", mni.seq_obj, "set_seq", cur_seq)


async def _mn_itree_inv_end(subs: MMUNotifierSubscriptions) -> None:
    subs.rt.access("subs")
    subs.active_invalidate_ranges -= 1
    if subs.active_invalidate_ranges or not subs.invalidate_seq & 1:
        return
    subs.invalidate_seq += 1
    for op, mni in subs.deferred_list:
        if op == "insert":
            subs._tree_insert(mni)
        else:
            if mni in subs.itree:
                subs.itree.remove(mni)
            mni.in_tree = False
    subs.deferred_list.clear()
    _seq_event(subs.rt, "inv_end", subs)
    await subs.wq.wake_up_all()  # after spin_unlock(&subs->lock): a point of its own


async def mmu_notifier_invalidate_range_start(r: MMUNotifierRange) -> int:
    """Start invalidating ``r``: bump the round, run every overlapping callback.

    Returns 0, or -EAGAIN when a callback refused a non-blockable range (then the round
    has already been ended and the caller must not call range_end, nor free the pages).
    A callback that returns false on a blockable range is a kernel WARN and the core
    carries on (the pages will be freed anyway): recorded as a ``kernel_warn`` event.
    """
    mm = r.mm
    rt = mm.rt
    subs = subscriptions(mm)
    await rt.point("invalidate_range_start", "subs", r.start, r.end, r.event)
    subs.active_invalidate_ranges += 1
    hits = [m for m in subs.itree if m.overlaps(r.start, r.end)]
    if hits:
        subs.invalidate_seq |= 1
    cur_seq = subs.invalidate_seq
    _seq_event(rt, "inv_start", subs)
    rt.count("invalidations")
    if not hits:
        return 0
    if r.blockable:
        subs.start_map.lock_map_acquire()
    err = 0
    try:
        for mni in hits:
            assert mni.invalidate is not None
            if r.blockable:
                ok = await mni.invalidate(mni, r, cur_seq)
            else:
                with nonblock_context(rt):
                    ok = await mni.invalidate(mni, r, cur_seq)
            if not ok:
                if r.blockable:
                    rt.count("kernel_warn")
                    rt.event("WARN", mni.name, WARN_BLOCKABLE_CALLBACK_FAILED, 0)
                    continue
                err = -EAGAIN
                break
    finally:
        if r.blockable:
            subs.start_map.lock_map_release()
    if err:
        await _mn_itree_inv_end(subs)
    return err


async def mmu_notifier_invalidate_range_end(r: MMUNotifierRange) -> None:
    rt = r.mm.rt
    subs = subscriptions(r.mm)
    await rt.point("invalidate_range_end", "subs", r.start, r.end)
    await _mn_itree_inv_end(subs)
