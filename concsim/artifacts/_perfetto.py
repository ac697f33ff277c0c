"""The Perfetto / chrome://tracing view of a trace (Chrome trace-event JSON, object format).

Layout
======

One process (pid 1) for the run; one track (tid) per task, in order of first appearance,
named with ``thread_name`` metadata; tid 0 ("runtime") carries what no task did (build-time
events, final audits) and the failure when no task is to blame (a deadlock).

Time is the engine step, never the wall clock: step ``s`` occupies ``[s, s+1)`` and one
step is one microsecond of trace time (``ts``/``dur`` are in µs in this format).  Every
span starts and ends on a step boundary, which is what keeps tracks properly nested.

On a task's track:

* a *step slice* ``[s, s+1)`` for each step the task ran, named by the operation it
  performed when resumed (the entry the trace marks as a scheduling point), with the
  record's ``fields`` and its text (``detail``) in its args;
* a *hold span* for each lock hold, from the step in which the lock was acquired to the
  end of the step in which the task released it (see :func:`derive_holds`);
* a *wait span* while a task is blocked on a lock (from the end of the step in which it
  blocked to the start of the step in which it finally acquired the lock);
* *operation spans* for configured op-name patterns (hypercalls by default:
  ``hv_call*``/``hvcall*``): consecutive entries of one such op by one task are one span
  from its first step to the end of its last (a chunked hypercall is one span); its args
  hold each call's fields (``calls``) and the first call's text (``label``);
* *instant events* for configured patterns (sequence-number changes ``*seq*`` and faults
  ``*fault*`` by default) and the failure.

Chrome's and Perfetto's importers require the complete ("X") events of a track to nest.
Step slices always nest (unit intervals on step boundaries); holds of one lock by one task
nest because releases are matched last-in-first-out; but holds of *different* locks may
interleave (lock A, lock B, unlock A, unlock B) and an operation span may straddle a lock
acquisition.  Such a span is moved to a sub-track of its task named ``task [object]`` (one
per object, and ``#2``, ``#3``... should that sub-track also refuse it), so that every track
stays a proper stack.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from concsim.engine import Failure, TraceEntry

# How a lock operation appears in a trace.  The kernel model's primitives emit these names
# (concsim.kernel); a model with its own locks extends the tables in TraceViewConfig.
ACQUIRE_OPS: Mapping[str, str] = {
    # op announced at the scheduling point -> mode ("excl" or "shared")
    "mutex_lock": "excl",
    "mutex_trylock": "excl",
    "spin_lock": "excl",
    "spin_trylock": "excl",
    "down_write": "excl",
    "down_write_trylock": "excl",
    "down_read": "shared",
    "down_read_trylock": "shared",
}
RELEASE_OPS: frozenset[str] = frozenset({"mutex_unlock", "spin_unlock", "up_read", "up_write"})


@dataclass(frozen=True)
class TraceViewConfig:
    """Which op names the exporters treat specially.  Patterns are ``fnmatch`` globs."""

    acquire_ops: Mapping[str, str] = field(default_factory=lambda: dict(ACQUIRE_OPS))
    release_ops: frozenset[str] = RELEASE_OPS
    #: A trylock that fails emits ``<op>_failed`` on the same object in the same step.
    failed_suffix: str = "_failed"
    #: Ops shown as spans (a run of consecutive entries of one op = one span).
    span_patterns: tuple[str, ...] = ("hv_call*", "hvcall*")
    #: Ops shown as instant events.
    instant_patterns: tuple[str, ...] = ("*seq*", "*fault*")

    def is_span(self, op: str) -> bool:
        return any(fnmatch.fnmatchcase(op, p) for p in self.span_patterns)

    def is_instant(self, op: str) -> bool:
        return any(fnmatch.fnmatchcase(op, p) for p in self.instant_patterns)


@dataclass
class Span:
    """A half-open interval ``[start, end)`` in steps on one task's timeline."""

    task: str
    kind: str  # "hold", "wait" or "op"
    name: str
    obj: str
    start: int
    end: int = -1
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Pending:
    """A lock operation whose outcome is not known yet (acquired, or blocked)."""

    op: str
    obj: str
    first: int  # the step of the first attempt
    attempt: int  # the step of the latest attempt (a wake-up retries)
    blocked: bool = False
    buffered: list[tuple[int, str, str, str]] = field(default_factory=list)


def derive_holds(
    trace: Sequence[TraceEntry],
    failure: Failure | None = None,
    config: TraceViewConfig | None = None,
) -> tuple[list[Span], int]:
    """Lock holds and waits of every task, and the end time of the timeline.

    Rules (the kernel model's semantics, see concsim.kernel):

    * a lock op at step ``s`` (``mutex_lock``, ``down_read``...) means the task is *about to
      acquire*: it either took the lock during step ``s`` or blocked.  Its next scheduling
      point tells which: ``wake`` on the same object means it blocked and retried at that
      step (and may block again); anything else means it took the lock at the latest
      attempt.  A failed trylock says so with ``<op>_failed`` in the same step.
    * the task's events between the attempt and its next point (an unlock in the same step)
      are applied once the attempt is resolved, so a hold opens before it closes.
    * a release (``mutex_unlock``..., a scheduling point of its own, or an event) ends the
      task's latest open hold of that object at the end of its step.
    * at the end of the trace an unresolved attempt is a wait if the failure says the task
      is blocked (a deadlock names them) or if the lock is still held in a conflicting mode;
      otherwise the task is taken to hold it.  (The model's rwsem also queues readers
      behind a waiting writer; this inference does not, which matters only at the end.)
    * spans still open at the end close at the end of the timeline: one step after the last
      one, or two when some task is left waiting, so that its wait is visible.
    """
    cfg = config or TraceViewConfig()
    acquire = cfg.acquire_ops
    spans: list[Span] = []
    open_holds: dict[str, list[Span]] = {}
    pending: dict[str, _Pending] = {}
    last_step = trace[-1].step if trace else 0

    def take(task: str, p: _Pending) -> None:
        hold = Span(
            task,
            "hold",
            f"{p.obj} held" + (" (read)" if acquire[p.op] == "shared" else ""),
            p.obj,
            p.attempt,
            args={"acquired_by": p.op, "acquired_at_step": p.attempt},
        )
        if acquire[p.op] == "shared":
            hold.args["shared"] = True
        if p.blocked and p.attempt > p.first + 1:
            spans.append(Span(task, "wait", f"waiting for {p.obj}", p.obj, p.first + 1, p.attempt))
        spans.append(hold)
        open_holds.setdefault(task, []).append(hold)

    def apply_event(step: int, task: str, op: str, obj: str) -> None:
        if op in cfg.release_ops:
            holds = open_holds.get(task, [])
            for i in range(len(holds) - 1, -1, -1):
                if holds[i].obj == obj:
                    h = holds.pop(i)
                    h.end = step + 1
                    h.args["released_by"] = op
                    h.args["released_at_step"] = step
                    break
        elif op == "downgrade_write":
            for h in reversed(open_holds.get(task, [])):
                if h.obj == obj:
                    h.args["downgraded_at_step"] = step
                    break

    def resolve_taken(task: str, p: _Pending) -> None:
        take(task, p)
        for ev in p.buffered:
            apply_event(*ev)

    for e in trace:
        step, task, op, obj, is_point = e.step, e.task, e.op, e.obj, e.point
        p = pending.get(task)
        if p is not None:
            if is_point:
                if op == "wake" and obj == p.obj:
                    p.blocked = True
                    p.attempt = step
                    p.buffered.clear()
                    continue
                del pending[task]
                resolve_taken(task, p)
            elif step == p.attempt and op == p.op + cfg.failed_suffix and obj == p.obj:
                del pending[task]  # a failed trylock: nothing held
                for ev in p.buffered:
                    apply_event(*ev)
                continue
            else:
                p.buffered.append((step, task, op, obj))
                continue
        if is_point and op in acquire:
            pending[task] = _Pending(op, obj, step, step)
        elif not is_point or op in cfg.release_ops or op == "downgrade_write":
            apply_event(step, task, op, obj)  # a release is a point of its own

    # Unresolved attempts at the end of the trace, in the order they were made.
    blocked_names: set[str] = set()
    if failure is not None and failure.kind == "deadlock":
        for key in ("cycle", "blocked"):
            blocked_names.update(str(x) for x in failure.details.get(key, ()))
    waiting: list[tuple[str, _Pending]] = []
    for task, p in sorted(pending.items(), key=lambda kv: kv[1].attempt):
        mode = acquire[p.op]
        conflict = any(
            h.obj == p.obj and (mode == "excl" or not h.args.get("shared"))
            for holds in open_holds.values()
            for h in holds
        )
        if task in blocked_names or conflict:
            waiting.append((task, p))
        else:
            resolve_taken(task, p)
    end = last_step + (2 if waiting else 1)
    for task, p in waiting:
        spans.append(
            Span(
                task,
                "wait",
                f"waiting for {p.obj}",
                p.obj,
                p.attempt + 1,
                end,
                args={"since_step": p.first, "unresolved": True},
            )
        )
    for holds in open_holds.values():
        for h in holds:
            h.end = end
            h.args["still_held_at_end"] = True
    return spans, end


def derive_op_spans(trace: Sequence[TraceEntry], config: TraceViewConfig) -> list[Span]:
    """Spans for ops matching ``config.span_patterns``: a run of one op by one task.

    The run is broken by any other scheduling point of that task (its events, such as an
    environment choice or an unlock, do not break it).
    """
    spans: list[Span] = []
    current: dict[str, Span] = {}
    for e in trace:
        step, task, op, obj = e.step, e.task, e.op, e.obj
        if config.is_span(op):
            sp = current.get(task)
            if sp is not None and sp.name == op:
                sp.end = step + 1
                sp.args["count"] += 1
                if len(sp.args["details"]) < 16:
                    sp.args["details"].append(f"{step}: {obj} {e.detail}".strip())
                    sp.args["calls"].append(_jsonable({"step": step, **e.fields}))
                continue
            sp = Span(
                task,
                "op",
                op,
                obj,
                step,
                step + 1,
                args={
                    "count": 1,
                    "label": e.detail or op,
                    "details": [f"{step}: {obj} {e.detail}".strip()],
                    "calls": [_jsonable({"step": step, **e.fields})],
                },
            )
            spans.append(sp)
            current[task] = sp
        elif e.point:
            current.pop(task, None)
    return spans


class _Lane:
    """One track: a stack of open intervals; accepts an interval only if it nests."""

    def __init__(self, tid: int, name: str, sort_index: int) -> None:
        self.tid = tid
        self.name = name
        self.sort_index = sort_index
        self.stack: list[tuple[int, int]] = []

    def accepts(self, start: int, end: int) -> bool:
        st = self.stack
        while st and st[-1][1] <= start:
            st.pop()
        return not st or st[-1][1] >= end

    def push(self, start: int, end: int) -> None:
        self.stack.append((start, end))


def to_perfetto(
    trace: Sequence[TraceEntry],
    failure: Failure | None = None,
    *,
    title: str = "concsim",
    metadata: Mapping[str, Any] | None = None,
    config: TraceViewConfig | None = None,
) -> dict[str, Any]:
    """Build the trace-event JSON object ``{"traceEvents": [...], "displayTimeUnit": "ns"}``."""
    cfg = config or TraceViewConfig()
    pid = 1
    tasks: list[str] = []
    for e in trace:
        task = e.task
        if task != "-" and task not in tasks:
            tasks.append(task)
    if failure is not None and failure.task and failure.task not in tasks:
        tasks.append(failure.task)
    tid_of = {t: i + 1 for i, t in enumerate(tasks)}
    lanes: dict[str, list[_Lane]] = {t: [_Lane(tid_of[t], t, 100 * tid_of[t])] for t in tasks}
    sub_lanes: dict[tuple[str, str], list[_Lane]] = {}
    next_tid = len(tasks) + 1
    used_runtime = False

    events: list[dict[str, Any]] = []

    holds, end = derive_holds(trace, failure, cfg)
    op_spans = derive_op_spans(trace, cfg)
    # Outer intervals first, so each lane sees parents before children.
    kind_rank = {"hold": 0, "wait": 1, "op": 2}
    all_spans = sorted(holds + op_spans, key=lambda s: (s.start, -s.end, kind_rank[s.kind]))
    for sp in all_spans:
        main = lanes[sp.task][0]
        if main.accepts(sp.start, sp.end):
            lane = main
        else:
            candidates = sub_lanes.setdefault((sp.task, sp.obj), [])
            found = next((ln for ln in candidates if ln.accepts(sp.start, sp.end)), None)
            if found is not None:
                lane = found
            else:
                suffix = f" #{len(candidates) + 1}" if candidates else ""
                lane = _Lane(
                    next_tid,
                    f"{sp.task} [{sp.obj}]{suffix}",
                    100 * tid_of[sp.task] + len(lanes[sp.task]),
                )
                next_tid += 1
                candidates.append(lane)
                lanes[sp.task].append(lane)
        lane.push(sp.start, sp.end)
        events.append(
            {
                "name": sp.name,
                "cat": sp.kind,
                "ph": "X",
                "ts": sp.start,
                "dur": sp.end - sp.start,
                "pid": pid,
                "tid": lane.tid,
                "args": {"object": sp.obj, **sp.args},
            }
        )

    for e in trace:
        step, task, op, obj = e.step, e.task, e.op, e.obj
        if task == "-":
            tid = 0
            used_runtime = True
        else:
            tid = tid_of[task]
        args: dict[str, Any] = {"step": step, "object": obj}
        if e.values:
            args["detail"] = e.detail
            args["fields"] = _jsonable(e.fields)
        if e.point:
            events.append(
                {
                    "name": f"{op} {obj}".strip(),
                    "cat": "step",
                    "ph": "X",
                    "ts": step,
                    "dur": 1,
                    "pid": pid,
                    "tid": tid,
                    "args": args,
                }
            )
        if cfg.is_instant(op) or op == "exit":
            events.append(
                {
                    "name": f"{op} {obj}".strip(),
                    "cat": "exit" if op == "exit" else "instant",
                    "ph": "i",
                    "s": "t",
                    "ts": step,
                    "pid": pid,
                    "tid": tid,
                    "args": args,
                }
            )

    if failure is not None:
        if failure.task and failure.task in tid_of:
            ftid = tid_of[failure.task]
        else:
            ftid = 0
            used_runtime = True
        events.append(
            {
                "name": f"FAILURE {failure.kind}",
                "cat": "failure",
                "ph": "i",
                "s": "g",
                "ts": failure.step,
                "pid": pid,
                "tid": ftid,
                "args": _jsonable(failure.to_json()),
            }
        )

    meta: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "ts": 0, "pid": pid, "tid": 0, "args": {"name": title}},
    ]
    if used_runtime:
        meta.append(
            {
                "name": "thread_name",
                "ph": "M",
                "ts": 0,
                "pid": pid,
                "tid": 0,
                "args": {"name": "runtime"},
            }
        )
        meta.append(
            {
                "name": "thread_sort_index",
                "ph": "M",
                "ts": 0,
                "pid": pid,
                "tid": 0,
                "args": {"sort_index": 0},
            }
        )
    for t in tasks:
        for lane in lanes[t]:
            meta.append(
                {
                    "name": "thread_name",
                    "ph": "M",
                    "ts": 0,
                    "pid": pid,
                    "tid": lane.tid,
                    "args": {"name": lane.name},
                }
            )
            meta.append(
                {
                    "name": "thread_sort_index",
                    "ph": "M",
                    "ts": 0,
                    "pid": pid,
                    "tid": lane.tid,
                    "args": {"sort_index": lane.sort_index},
                }
            )

    # Parents before children at equal timestamps (longer first), metadata first.
    events.sort(key=lambda e: (e["ts"], -e.get("dur", 0), e["ph"] != "X", e["tid"]))
    doc: dict[str, Any] = {
        "traceEvents": meta + events,
        "displayTimeUnit": "ns",
        "otherData": {
            "time_unit": "1 us = 1 engine step",
            "end_step": end,
            **_jsonable(dict(metadata or {})),
        },
    }
    return doc


def _jsonable(obj: Any) -> Any:
    """Round-trip through JSON with ``str`` for anything JSON does not know."""
    return json.loads(json.dumps(obj, default=str))


def dumps_perfetto(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=False) + "\n"


def iter_tracks(doc: Mapping[str, Any]) -> Iterable[tuple[int, str]]:
    """``(tid, name)`` of every named track (for reports and tests)."""
    for e in doc["traceEvents"]:
        if e["ph"] == "M" and e["name"] == "thread_name":
            yield e["tid"], e["args"]["name"]
