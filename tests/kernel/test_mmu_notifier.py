"""B6 (mm/mmu_notifier.c) rule by rule, on the model objects in tiny worlds."""

from __future__ import annotations

import numpy as np
import pytest

from concsim.engine import Runtime
from concsim.kernel._mm import PTE_PRESENT
from concsim.kernel._mm_events import oom_reap
from concsim.kernel._mmu_notifier import (
    EAGAIN,
    MMU_NOTIFY_CLEAR,
    MMUIntervalNotifier,
    MMUNotifierRange,
    mmu_interval_check_retry,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    subscriptions,
)

from .world import SEEDS, Tiny, blocked_or_done, clean, run_tiny, until


def rng(w: Tiny, start: int, end: int, *, blockable: bool = True) -> MMUNotifierRange:
    return MMUNotifierRange(w.mm, start, end, MMU_NOTIFY_CLEAR, blockable)


# ---------------------------------------------------------------- the mm-wide sequence


def test_subs_seq_starts_even_and_turns_odd_only_when_a_notifier_is_hit() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        o = w.out

        async def t() -> None:
            o["initial"] = subscriptions(w.mm).invalidate_seq
            mni = await w.insert("a", 100, 10)
            s = w.subs
            # A range that misses every notifier: active, but the seq stays even.
            miss = rng(w, 200, 300)
            await mmu_notifier_invalidate_range_start(miss)
            o["miss"] = (s.invalidate_seq, s.active_invalidate_ranges)
            await mmu_notifier_invalidate_range_end(miss)
            o["miss_end"] = (s.invalidate_seq, s.active_invalidate_ranges)
            # Touching the last page of [100, 110) is a hit.
            hit = rng(w, 109, 120)
            await mmu_notifier_invalidate_range_start(hit)
            o["hit"] = (s.invalidate_seq, s.active_invalidate_ranges, mni.invalidate_seq)
            await mmu_notifier_invalidate_range_end(hit)
            o["hit_end"] = (s.invalidate_seq, s.active_invalidate_ranges)
            # One past the end is a miss again.
            await mmu_notifier_invalidate_range_start(rng(w, 110, 111))
            o["after_end"] = s.invalidate_seq
            await mmu_notifier_invalidate_range_end(rng(w, 110, 111))

        rt.spawn("t", t())
        return w

    w, _rt, f = run_tiny(build)
    clean(f)
    o = w.out
    assert o["initial"] == 2
    assert o["miss"] == (2, 1)
    assert o["miss_end"] == (2, 0)
    assert o["hit"] == (3, 1, 3)  # odd, and the callback got (and set) cur_seq 3
    assert o["hit_end"] == (4, 0)
    assert o["after_end"] == 4
    assert [e for e in w.log if e[0] == "cb"] == [("cb", "a", 3, True)]


def test_nested_rounds_end_only_when_the_last_one_ends() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        o = w.out

        async def t() -> None:
            await w.insert("a", 100, 10)
            s = w.subs
            r1, r2 = rng(w, 100, 101), rng(w, 105, 106)
            await mmu_notifier_invalidate_range_start(r1)
            await mmu_notifier_invalidate_range_start(r2)
            o["both"] = (s.invalidate_seq, s.active_invalidate_ranges)
            await mmu_notifier_invalidate_range_end(r1)
            o["one_left"] = (s.invalidate_seq, s.active_invalidate_ranges)
            await mmu_notifier_invalidate_range_end(r2)
            o["done"] = (s.invalidate_seq, s.active_invalidate_ranges)

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out == {"both": (3, 2), "one_left": (3, 1), "done": (4, 0)}
    # Both callbacks saw the same odd round.
    assert [e[2] for e in w.log] == [3, 3]


# ---------------------------------------------------------------- insert


def test_insert_when_idle_sets_mni_seq_to_subs_seq_minus_one() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)

        async def t() -> None:
            a = await w.insert("a", 100, 10)
            w.out["a"] = (a.invalidate_seq, a.in_tree, w.subs.invalidate_seq)
            # After a round (subs.seq 4), an idle insert again gives subs.seq - 1.
            await mmu_notifier_invalidate_range_start(rng(w, 100, 101))
            await mmu_notifier_invalidate_range_end(rng(w, 100, 101))
            b = await w.insert("b", 300, 10)
            w.out["b"] = (b.invalidate_seq, b.in_tree, w.subs.invalidate_seq)

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out["a"] == (1, True, 2)
    assert w.out["b"] == (3, True, 4)


def test_insert_during_an_odd_round_is_deferred_to_inv_end() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        o = w.out

        async def t() -> None:
            await w.insert("a", 100, 10)
            s = w.subs
            r = rng(w, 100, 400)
            await mmu_notifier_invalidate_range_start(r)  # hits a: seq 3
            b = await w.insert("b", 200, 10)
            o["deferred"] = (b.invalidate_seq, b.in_tree, b.deferred_insert, b in s.itree)
            # A nested invalidation of b's range in the same round does not call b back.
            r2 = rng(w, 200, 210)
            await mmu_notifier_invalidate_range_start(r2)
            await mmu_notifier_invalidate_range_end(r2)
            o["still_deferred"] = (b.in_tree, s.invalidate_seq)
            await mmu_notifier_invalidate_range_end(r)
            o["inserted"] = (b.in_tree, b.deferred_insert, b in s.itree, s.invalidate_seq)
            o["b_seq_after"] = b.invalidate_seq
            # The next round reaches b.
            await mmu_notifier_invalidate_range_start(r2)
            await mmu_notifier_invalidate_range_end(r2)

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    o = w.out
    assert o["deferred"] == (3, False, True, False)  # mni.seq = subs.seq (odd)
    assert o["still_deferred"] == (False, 3)
    assert o["inserted"] == (True, False, True, 4)
    assert o["b_seq_after"] == 3  # odd: always
    assert [(e[1], e[2]) for e in w.log] == [("a", 3), ("b", 5)]


def test_insert_during_an_active_even_round_makes_it_odd() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        o = w.out

        async def t() -> None:
            s = w.subs
            miss = rng(w, 500, 600)  # no notifier yet: active, seq stays 2
            await mmu_notifier_invalidate_range_start(miss)
            b = await w.insert("b", 100, 10)
            o["during"] = (s.invalidate_seq, b.invalidate_seq, b.in_tree, b.deferred_insert)
            await mmu_notifier_invalidate_range_end(miss)
            o["after"] = (s.invalidate_seq, b.invalidate_seq)

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out["during"] == (3, 3, True, False)
    # The round that was made odd is ended by the range_end (seq++, waiters can go).
    assert w.out["after"] == (4, 3)


def test_mni_seq_is_always_odd() -> None:
    """Over every way the model sets mni.seq: idle insert, set_seq in callbacks, deferred
    insert, insert that turns the round odd."""

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        seen: list[int] = []
        w.out["seen"] = seen

        async def t() -> None:
            mnis = [await w.insert("a", 100, 10)]
            seen.append(mnis[0].invalidate_seq)
            for k in range(3):
                r = rng(w, 0, 4096)
                await mmu_notifier_invalidate_range_start(r)
                mnis.append(await w.insert(f"d{k}", 1000 + 20 * k, 10))  # deferred
                seen.extend(m.invalidate_seq for m in mnis)
                await mmu_notifier_invalidate_range_end(r)
                seen.extend(m.invalidate_seq for m in mnis)
            miss = rng(w, 3000, 3001)
            await mmu_notifier_invalidate_range_start(miss)
            mnis.append(await w.insert("e", 2000, 10))  # makes the round odd
            seen.extend(m.invalidate_seq for m in mnis)
            await mmu_notifier_invalidate_range_end(miss)

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert len(w.out["seen"]) > 10
    assert all(s % 2 == 1 for s in w.out["seen"]), w.out["seen"]


# ---------------------------------------------------------------- read_begin


@pytest.mark.parametrize("seed", SEEDS)
def test_read_begin_waits_when_our_callback_ran_and_returns_when_the_round_ends(
    seed: int,
) -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        ran = w.completion("callback_ran")
        log = w.log
        mnis: dict[str, MMUIntervalNotifier] = {}

        async def inval() -> None:
            mnis["a"] = await w.insert("a", 100, 10)
            r = rng(w, 100, 110)
            await mmu_notifier_invalidate_range_start(r)  # our callback sets seq 3
            await ran.complete_all()
            await until(rt, blocked_or_done(reader))
            log.append(("end", w.subs.invalidate_seq))
            await mmu_notifier_invalidate_range_end(r)

        async def read() -> None:
            await ran.wait_for_completion()
            s = await mmu_interval_read_begin(mnis["a"])
            log.append(("read_begin_returned", s, w.subs.invalidate_seq))

        rt.spawn("inval", inval())
        reader = rt.spawn("reader", read())
        return w

    w, rt, f = run_tiny(build, seed)
    clean(f)
    steps = [e for e in w.log if e[0] != "cb"]
    assert steps == [("end", 3), ("read_begin_returned", 3, 4)]
    assert rt.stats["read_begin_waits"] == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_read_begin_does_not_wait_when_the_round_has_not_reached_our_callback(
    seed: int,
) -> None:
    """a's callback (first in the tree) is stuck; b's has not run: read_begin(b) returns at
    once with b's old seq, and read_retry says retry once b's callback ran."""

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        started = w.completion("a_started")
        gate = w.completion("a_gate")
        mnis: dict[str, MMUIntervalNotifier] = {}
        o = w.out

        async def inval() -> None:
            mnis["a"] = await w.insert("a", 100, 10, started=started, gate=gate)
            mnis["b"] = await w.insert("b", 200, 10)
            r = rng(w, 0, 4096)
            await mmu_notifier_invalidate_range_start(r)
            w.log.append(("range_start_returned",))
            await mmu_notifier_invalidate_range_end(r)

        async def read() -> None:
            await started.wait_for_completion()
            s = await mmu_interval_read_begin(mnis["b"])
            o["read_begin"] = (s, w.subs.invalidate_seq, [e[1] for e in w.log if e[0] == "cb"])
            o["retry_now"] = await mmu_interval_read_retry(mnis["b"], s)
            await gate.complete_all()
            await until(rt, lambda: ("range_start_returned",) in w.log)
            o["retry_later"] = await mmu_interval_read_retry(mnis["b"], s)
            o["check_retry_later"] = await mmu_interval_check_retry(mnis["b"], s)

        rt.spawn("inval", inval())
        rt.spawn("reader", read())
        return w

    w, rt, f = run_tiny(build, seed)
    clean(f)
    o = w.out
    assert o["read_begin"] == (1, 3, ["a"])  # b's seq is the idle-insert 1; round is odd
    assert rt.stats.get("read_begin_waits", 0) == 0
    assert o["retry_now"] is False
    assert o["retry_later"] is True  # b's callback has set seq 3 since
    assert o["check_retry_later"] is True


def test_read_begin_when_idle_returns_mni_seq_without_waiting() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)

        async def t() -> None:
            a = await w.insert("a", 100, 10)
            w.out["s"] = await mmu_interval_read_begin(a)

        rt.spawn("t", t())
        return w

    w, rt, f = run_tiny(build)
    clean(f)
    assert w.out["s"] == 1
    assert "read_begin_waits" not in rt.stats


def test_read_retry_check_retry_and_set_seq_compare_mni_seq() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        o = w.out

        async def t() -> None:
            a = await w.insert("a", 100, 10)
            s = await mmu_interval_read_begin(a)
            o["same"] = (await mmu_interval_read_retry(a, s), await mmu_interval_check_retry(a, s))
            await mmu_interval_set_seq(a, 7)
            o["set"] = a.invalidate_seq
            o["changed"] = (
                await mmu_interval_read_retry(a, s),
                await mmu_interval_check_retry(a, s),
            )
            o["new"] = (await mmu_interval_read_retry(a, 7), await mmu_interval_check_retry(a, 7))

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out == {
        "same": (False, False),
        "set": 7,
        "changed": (True, True),
        "new": (False, False),
    }


def test_check_retry_and_read_retry_are_scheduling_points() -> None:
    """check_retry is lockless (READ_ONCE inside hmm_range_fault) and read_retry runs
    under the driver lock: both read a sequence number another CPU writes, so another task
    may run right before either (issue 11: every operation another task can observe)."""

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)

        async def t() -> None:
            a = await w.insert("a", 100, 10)
            before = len(rt.trace)
            await mmu_interval_read_retry(a, 1)
            await mmu_interval_check_retry(a, 1)
            w.out["ops"] = [e[2] for e in rt.trace[before:]]

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out["ops"][:2] == ["mmu_interval_read_retry", "mmu_interval_check_retry"]


# ---------------------------------------------------------------- remove


def test_remove_when_idle_is_immediate() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)

        async def t() -> None:
            a = await w.insert("a", 100, 10)
            await mmu_interval_notifier_remove(a)
            w.out["after"] = (a.in_tree, a in w.subs.itree)
            r = rng(w, 100, 110)
            await mmu_notifier_invalidate_range_start(r)
            w.out["seq"] = w.subs.invalidate_seq
            await mmu_notifier_invalidate_range_end(r)

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out == {"after": (False, False), "seq": 2}  # nothing hit any more
    assert w.log == []


@pytest.mark.parametrize("seed", SEEDS)
def test_remove_during_a_round_is_deferred_and_waits_for_the_round_end(seed: int) -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        ran = w.completion("callback_ran")
        mnis: dict[str, MMUIntervalNotifier] = {}
        o = w.out

        async def inval() -> None:
            mnis["a"] = await w.insert("a", 100, 10)
            r = rng(w, 100, 110)
            await mmu_notifier_invalidate_range_start(r)
            await ran.complete_all()
            await until(rt, blocked_or_done(remover))
            a = mnis["a"]
            o["while_waiting"] = (a.in_tree, ("remove", a) in w.subs.deferred_list)
            w.log.append(("end",))
            await mmu_notifier_invalidate_range_end(r)

        async def remove() -> None:
            await ran.wait_for_completion()
            await mmu_interval_notifier_remove(mnis["a"])
            w.log.append(("removed", mnis["a"].in_tree, w.subs.invalidate_seq))

        rt.spawn("inval", inval())
        remover = rt.spawn("remover", remove())
        return w

    w, _, f = run_tiny(build, seed)
    clean(f)
    assert w.out["while_waiting"] == (True, True)
    assert [e for e in w.log if e[0] != "cb"] == [("end",), ("removed", False, 4)]


def test_remove_of_an_mni_still_on_the_deferred_insert_list_just_unlinks_it() -> None:
    """Same task: if remove() waited for the round it is itself in, it would deadlock."""

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        o = w.out

        async def t() -> None:
            await w.insert("a", 100, 10)
            r = rng(w, 100, 110)
            await mmu_notifier_invalidate_range_start(r)
            b = await w.insert("b", 200, 10)
            o["deferred"] = list(w.subs.deferred_list) == [("insert", b)]
            await mmu_interval_notifier_remove(b)
            o["unlinked"] = (w.subs.deferred_list, b.deferred_insert, b.in_tree)
            await mmu_notifier_invalidate_range_end(r)
            o["after_end"] = (b.in_tree, b in w.subs.itree)
            r2 = rng(w, 200, 210)
            await mmu_notifier_invalidate_range_start(r2)
            o["no_callback"] = w.subs.invalidate_seq
            await mmu_notifier_invalidate_range_end(r2)

        rt.spawn("t", t())
        return w

    w, _rt, f = run_tiny(build)
    clean(f)
    o = w.out
    assert o["deferred"] is True
    assert o["unlinked"] == ([], False, False)
    assert o["after_end"] == (False, False)
    assert o["no_callback"] == 4  # b is not hit: the seq stays even
    assert [e[1] for e in w.log] == ["a"]


# ---------------------------------------------------------------- failing callbacks


def test_false_on_a_non_blockable_range_is_eagain_and_ends_the_round() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        o = w.out

        async def t() -> None:
            await w.insert("a", 100, 10, ok=False)
            await w.insert("b", 105, 10)  # after a in the tree: not reached
            r = rng(w, 100, 120, blockable=False)
            o["ret"] = await mmu_notifier_invalidate_range_start(r)
            s = w.subs
            o["after"] = (s.invalidate_seq, s.active_invalidate_ranges)

        rt.spawn("t", t())
        return w

    w, rt, f = run_tiny(build)
    clean(f)
    assert w.out["ret"] == -EAGAIN
    assert w.out["after"] == (4, 0)  # inv_end ran: round over, no range_end needed
    assert [(e[1], e[3]) for e in w.log] == [("a", False)]
    assert "kernel_warn" not in rt.stats


def test_oom_reaper_skips_the_range_when_the_callback_refuses() -> None:
    """The caller side: on -EAGAIN the OOM reaper zaps nothing and frees nothing."""

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        vpns = list(range(1100, 1108))
        w.out["pfns"] = w.populate(vpns)

        async def t() -> None:
            await w.insert("a", 1100, 8, ok=False)
            await oom_reap(w.mm, 1100, 8)

        rt.spawn("t", t())
        return w

    w, rt, f = run_tiny(build)
    clean(f)
    assert rt.stats["oom_reap_skipped"] == 1
    assert "oom_reaped" not in rt.stats
    assert "pages_freed" not in rt.stats
    assert (w.mm.pte_state[1100:1108] == PTE_PRESENT).all()
    assert np.array_equal(w.mm.pte_pfn[1100:1108], w.out["pfns"])
    assert w.subs.invalidate_seq == 4
    assert w.subs.active_invalidate_ranges == 0


def test_oom_reaper_reaps_when_the_callback_agrees() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        w.populate(list(range(1100, 1108)))

        async def t() -> None:
            await w.insert("a", 1100, 8)
            await oom_reap(w.mm, 1100, 8)

        rt.spawn("t", t())
        return w

    _w, rt, f = run_tiny(build)
    clean(f)
    assert rt.stats["oom_reaped"] == 1
    assert rt.stats["pages_freed"] == 8
    assert "oom_reap_skipped" not in rt.stats


def test_false_on_a_blockable_range_warns_and_continues() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        o = w.out

        async def t() -> None:
            await w.insert("a", 100, 10, ok=False)
            await w.insert("b", 105, 10)
            r = rng(w, 100, 120)
            o["ret"] = await mmu_notifier_invalidate_range_start(r)
            s = w.subs
            o["during"] = (s.invalidate_seq, s.active_invalidate_ranges)
            await mmu_notifier_invalidate_range_end(r)
            o["after"] = (s.invalidate_seq, s.active_invalidate_ranges)

        rt.spawn("t", t())
        return w

    w, rt, f = run_tiny(build)
    clean(f)
    assert w.out["ret"] == 0
    assert w.out["during"] == (3, 1)  # the round goes on until range_end
    assert w.out["after"] == (4, 0)
    assert rt.stats["kernel_warn"] == 1
    assert [e[1] for e in w.log] == ["a", "b"]  # b was still called


def test_a_non_blockable_callback_that_may_sleep_is_caught() -> None:
    """The callback of a non-blockable range runs in a context where sleeping is S6."""

    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)
        gate = w.completion("never_needed")
        gate._all = True  # already completed when the world is built

        async def t() -> None:
            await w.insert("a", 100, 10, gate=gate)  # wait_for_completion may sleep
            await mmu_notifier_invalidate_range_start(rng(w, 100, 101, blockable=False))

        rt.spawn("t", t())
        return w

    _, _, f = run_tiny(build)
    assert f is not None
    assert (f.kind, f.invariant) == ("sleep-in-atomic", "S6")


def test_insert_records_the_interval_in_pages() -> None:
    def build(rt: Runtime) -> Tiny:
        w = Tiny(rt)

        async def t() -> None:
            mni = MMUIntervalNotifier("a")
            await mmu_interval_notifier_insert(mni, w.mm, 100, 10, w.callback("a"))
            w.out["iv"] = (mni.start, mni.last, mni.mm is w.mm)
            w.out["ov"] = [
                mni.overlaps(a, b) for a, b in ((90, 100), (90, 101), (109, 200), (110, 200))
            ]

        rt.spawn("t", t())
        return w

    w, _, f = run_tiny(build)
    clean(f)
    assert w.out["iv"] == (100, 109, True)
    assert w.out["ov"] == [False, True, True, False]
