"""The trace views: Perfetto JSON structure and lock holds, mermaid structure, text marks."""

from __future__ import annotations

import json
from typing import Any

import pytest

import concsim
from concsim.artifacts import (
    TraceViewConfig,
    derive_holds,
    render_view,
    to_mermaid,
    to_perfetto,
    to_text,
)
from concsim.engine import Runtime, Task, TraceEntry
from concsim.kernel import Mutex, RWSem, SpinLock

from ..engine.helpers import run_world
from .checkers import mermaid_problems, perfetto_problems, track_names


class _Truth:
    """A lock tracker (the hook concsim.kernel reports to) recording the real holds."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.open: list[list[Any]] = []
        self.holds: list[tuple[str, str, int, int | None]] = []

    def acquire(self, t: Task, lock: Any, *, read: bool, trylock: bool) -> None:
        self.open.append([t.name, lock.name, self.rt.step])

    def release(self, t: Task, lock: Any) -> None:
        for i in range(len(self.open) - 1, -1, -1):
            name, obj, start = self.open[i]
            if name == t.name and obj == lock.name:
                del self.open[i]
                self.holds.append((name, obj, start, self.rt.step))
                return

    def all(self) -> list[tuple[str, str, int, int | None]]:
        return sorted(self.holds + [(n, o, s, None) for n, o, s in self.open])


def _mixed_world(rt: Runtime) -> None:
    """Mutexes taken in both orders (may deadlock), an rwsem, a spinlock, trylocks, and
    holds released out of order (lock a, lock b, unlock a, unlock b)."""
    rt.ext["lockdep"] = truth = _Truth(rt)
    rt.ext["truth"] = truth
    a, b = Mutex(rt, "a"), Mutex(rt, "b")
    sem = RWSem(rt, "mmap_lock")
    spin = SpinLock(rt, "pt_lock")

    async def crosser() -> None:
        await a.lock()
        await b.lock()
        await rt.point("work", "shared")
        await a.unlock()  # out of order on purpose
        await rt.point("work", "shared")
        await b.unlock()

    async def reader(name: str) -> None:
        await sem.down_read()
        await spin.lock()
        await rt.point("read_pte", "pt")
        await spin.unlock()
        if await a.trylock():
            await rt.point("work", "shared")
            await a.unlock()
        await sem.up_read()

    async def writer() -> None:
        await sem.down_write()
        await rt.point("write", "vma")
        await sem.up_write()
        await b.lock()
        await a.lock()
        await a.unlock()
        await b.unlock()

    rt.spawn("crosser", crosser())
    rt.spawn("reader0", reader("reader0"))
    rt.spawn("reader1", reader("reader1"))
    rt.spawn("writer", writer())


def _derived(trace: list[Any], failure: Any) -> list[tuple[str, str, int, int | None]]:
    spans, _end = derive_holds(trace, failure)
    return sorted(
        (s.task, s.obj, s.start, None if s.args.get("still_held_at_end") else s.end - 1)
        for s in spans
        if s.kind == "hold"
    )


@pytest.mark.parametrize("seed", range(300))
def test_derived_holds_equal_the_real_holds(seed: int) -> None:
    rt, failure = run_world(_mixed_world, seed)
    assert _derived(rt.trace, failure) == rt.ext["truth"].all()


def test_the_mixed_world_covers_waits_deadlocks_and_out_of_order_releases() -> None:
    # Keep the property test above honest: its seeds do reach the interesting cases.
    kinds = set()
    subtracks = 0
    for seed in range(300):
        rt, failure = run_world(_mixed_world, seed)
        kinds.add(failure.kind if failure else "ok")
        doc = to_perfetto(rt.trace, failure)
        subtracks += any("[" in n for n in track_names(doc).values())
        if any(e.get("cat") == "wait" for e in doc["traceEvents"]):
            kinds.add("waited")
        if any(e[2] == "mutex_trylock_failed" for e in rt.trace):
            kinds.add("trylock-failed")
    assert {"ok", "deadlock", "waited", "trylock-failed"} <= kinds
    assert subtracks > 0


@pytest.mark.parametrize("seed", range(300))
def test_perfetto_is_well_formed_and_nested(seed: int) -> None:
    rt, failure = run_world(_mixed_world, seed)
    doc = json.loads(render_view("perfetto", rt.trace, failure))
    assert perfetto_problems(doc) == []
    assert doc["displayTimeUnit"] == "ns"
    failures = [e for e in doc["traceEvents"] if e.get("cat") == "failure"]
    if failure is None:
        assert failures == []
    else:
        assert len(failures) == 1
        assert failures[0]["ph"] == "i"
        assert failures[0]["ts"] == failure.step


def test_out_of_order_release_goes_to_a_sub_track() -> None:
    def build(rt: Runtime) -> None:
        a, b = Mutex(rt, "a"), Mutex(rt, "b")

        async def t() -> None:
            await a.lock()
            await b.lock()
            await rt.point("work", "x")
            await a.unlock()
            await rt.point("work", "x")
            await b.unlock()

        rt.spawn("t", t())

    rt, failure = run_world(build)
    doc = to_perfetto(rt.trace, failure)
    assert perfetto_problems(doc) == []
    names = track_names(doc)
    assert names == {1: "t", 2: "t [b]"}
    holds = {
        (e["tid"], e["name"], e["ts"], e["dur"])
        for e in doc["traceEvents"]
        if e.get("cat") == "hold"
    }
    # a: acquired at step 2, released in step 5 (its unlock is a step of its own); b:
    # acquired at 3, released in step 7.
    assert holds == {(1, "a held", 2, 4), (2, "b held", 3, 5)}


def test_the_checker_rejects_what_it_should() -> None:
    # The nesting check is not vacuous: a partial overlap on one track is reported.
    bad = {
        "displayTimeUnit": "ns",
        "traceEvents": [
            {"name": "a", "ph": "X", "ts": 0, "dur": 3, "pid": 1, "tid": 1},
            {"name": "b", "ph": "X", "ts": 2, "dur": 3, "pid": 1, "tid": 1},
            {"name": "c", "ph": "B", "ts": 0, "pid": 1, "tid": 2},
            {"ph": "i", "ts": 1, "pid": 1, "tid": 2},
        ],
    }
    problems = perfetto_problems(bad)
    assert any("without nesting" in p for p in problems)
    assert any("lacks ['name']" in p for p in problems)
    assert any("never ended" in p for p in problems)


def _p(step: int, task: str, op: str, obj: str, *values: object) -> TraceEntry:
    """A scheduling-point record."""
    return TraceEntry(step, task, op, obj, values, True)


def _e(step: int, task: str, op: str, obj: str, *values: object) -> TraceEntry:
    """An event record (inside a step)."""
    return TraceEntry(step, task, op, obj, values, False)


def _synthetic_hypercall_trace() -> list[TraceEntry]:
    # The shape the mshv model emits: a chunked hypercall issued under a mutex that the
    # task drops inside the second chunk's step (so the call's span straddles the hold's
    # end), a sequence-number change by another task between chunks, and a fault.
    return [
        _p(1, "vcpu0", "start", ""),
        _p(2, "vcpu0", "mutex_lock", "mreg_mutex"),
        _p(3, "vcpu0", "hv_call_map_gpa_pages", "slat", 0x0, 512, 3),
        _p(4, "inval", "start", ""),
        _e(4, "inval", "mmu_interval_set_seq", "notifier", 2),
        _p(5, "vcpu0", "hv_call_map_gpa_pages", "slat", 0x200, 512, 3),
        _e(5, "vcpu0", "mutex_unlock", "mreg_mutex"),
        _p(6, "vcpu0", "hv_call_map_gpa_pages", "slat", 0x400, 512, 3),
        _p(7, "vcpu0", "hmm_range_fault", "mm", 0x1234),
        _p(8, "inval", "hvcall_unmap", "slat"),
        _e(8, "inval", "exit", ""),
    ]


def test_hypercall_spans_and_instants_follow_the_configured_patterns() -> None:
    trace = _synthetic_hypercall_trace()
    failure = concsim.Failure("safety", "stale SLAT entry", 8, "inval", "S1")
    doc = to_perfetto(trace, failure)
    assert perfetto_problems(doc) == []
    ev = doc["traceEvents"]
    ops = [(e["name"], e["ts"], e["dur"], e["args"]["count"]) for e in ev if e.get("cat") == "op"]
    # Three chunks are one span; an event of another op (the unlock) does not break it.
    assert ops == [("hv_call_map_gpa_pages", 3, 4, 3), ("hvcall_unmap", 8, 1, 1)]
    instants = sorted(e["name"] for e in ev if e.get("cat") == "instant")
    assert instants == ["hmm_range_fault mm", "mmu_interval_set_seq notifier"]
    # The hold [2, 6) and the hypercall span [3, 7) overlap without nesting: the span
    # moves to a sub-track named after its object.
    [hold] = [e for e in ev if e.get("cat") == "hold"]
    assert (hold["tid"], hold["ts"], hold["dur"]) == (1, 2, 4)
    assert track_names(doc) == {1: "vcpu0", 2: "inval", 3: "vcpu0 [slat]"}
    [fail] = [e for e in ev if e.get("cat") == "failure"]
    assert fail["tid"] == 2
    assert fail["ts"] == 8
    # Another scheduling point of the task ends a run: two calls, not one.
    broken = [
        _p(1, "vcpu0", "hv_call_map_gpa_pages", "slat"),
        _p(2, "vcpu0", "cond_resched", ""),
        _p(3, "vcpu0", "hv_call_map_gpa_pages", "slat"),
        _p(4, "vcpu0", "hv_call_map_gpa_pages", "slat"),
        _p(5, "vcpu0", "hvcall_unmap", "slat"),
    ]
    doc_b = to_perfetto(broken, None)
    assert [e["args"]["count"] for e in doc_b["traceEvents"] if e.get("cat") == "op"] == [1, 2, 1]
    # Other patterns: nothing is a span, every op containing "map" is an instant.
    cfg = TraceViewConfig(span_patterns=(), instant_patterns=("*map*",))
    doc2 = to_perfetto(trace, None, config=cfg)
    assert not [e for e in doc2["traceEvents"] if e.get("cat") == "op"]
    assert len([e for e in doc2["traceEvents"] if e.get("cat") == "instant"]) == 4


def test_timestamps_are_steps_and_the_views_are_deterministic() -> None:
    r1 = concsim.run("counter", variant="locked", seed=5)
    r2 = concsim.run("counter", variant="locked", seed=5)
    for view in ("text", "perfetto", "mermaid"):
        assert render_view(view, r1.trace, r1.failure) == render_view(view, r2.trace, r2.failure)
    doc = to_perfetto(r1.trace)
    steps = {e["ts"] for e in doc["traceEvents"] if e.get("cat") == "step"}
    assert steps == set(range(1, r1.steps + 1))


def test_mermaid_structure_and_failure_note() -> None:
    res = concsim.run("abba", seed=0)
    text = to_mermaid(res.trace, res.failure)
    assert mermaid_problems(text) == []
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert "    participant T0 as t_ba" in lines
    assert "    participant O0 as lock_a" in lines
    assert "        T0->>O0: 8: mutex_lock" in lines  # the failing step, boxed
    assert lines[-1].startswith("    Note over T0,T1: FAILURE deadlock at step 8: ")
    assert "#59;" in lines[-1]  # the message's ';' is escaped


def test_mermaid_compresses_runs_and_elides_the_middle() -> None:
    def build(rt: Runtime) -> None:
        async def spinner() -> None:
            for _ in range(50):
                await rt.point("poll", "flag", read=True)

        rt.spawn("only", spinner())

    rt, _ = run_world(build)
    text = to_mermaid(rt.trace)
    assert mermaid_problems(text) == []
    assert "    T0->>O0: steps 2-51: poll ×50" in text.splitlines()

    res = concsim.run("counter", variant="racy", seed=3, params={"increments": 40})
    text = to_mermaid(res.trace, res.failure, max_messages=30, head=10)
    assert mermaid_problems(text) == []
    arrows = [ln for ln in text.splitlines() if "->>" in ln or "-->>" in ln]
    assert len(arrows) <= 30
    assert "messages elided" in text
    assert "FAILURE assertion" in text.splitlines()[-1]


def test_mermaid_checker_is_not_vacuous() -> None:
    bad = (
        "sequenceDiagram\n    participant T0 as a\n    T0->>O9: 1: x\n    T0->>T0 oops\n"
        "    T0->>T0: a; b #59; c\n"
    )
    problems = mermaid_problems(bad)
    assert any("unescaped ';'" in p for p in problems)
    assert any("O9 is not a declared participant" in p for p in problems)
    assert any("not a participant, arrow" in p for p in problems)
    assert mermaid_problems("graph TD\n") == ["does not start with 'sequenceDiagram'"]


def test_text_marks_the_failing_step() -> None:
    res = concsim.run("counter", variant="racy", seed=3)
    text = to_text(res.trace, res.failure)
    marked = [ln for ln in text.splitlines() if ln.startswith(">>")]
    assert marked
    assert all(int(ln.split()[1]) == res.failure.step for ln in marked)
    assert text.splitlines()[-1].startswith(
        f"# FAILURE assertion [lost-update] at step {res.failure.step}"
    )


def test_unknown_view_is_a_usage_error() -> None:
    with pytest.raises(concsim.UsageError, match="unknown trace view"):
        render_view("svg", [], None)
