"""What every explainer works with: the failing run's trace, indexed, and the chain it builds.

An explainer (one module per concern, ``explain(ctx: Context) -> None``) reads the failure
and the trace records through a :class:`Context` and *links* the records that matter, each
with a role and a sentence (:meth:`Context.link`); it may add conclusions
(``ctx.notes``) and name the objects involved (``ctx.objects``).  Everything is read off
the typed records (op, object, named fields, the point mark) and the failure's details,
never off a record's text, so an explanation does not change when an event is reworded.

This module is model-agnostic: nothing here knows about pages, regions or hypervisors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from concsim.artifacts._perfetto import Span, derive_holds
from concsim.engine import Failure, TraceEntry

#: How many links of one family to keep (the most recent ones).
CAP = 4

_ERRNO = {1: "EPERM", 5: "EIO", 11: "EAGAIN", 12: "ENOMEM", 14: "EFAULT", 16: "EBUSY", 22: "EINVAL"}


class RunLike(Protocol):
    """What an explanation needs of a :class:`concsim.RunResult`."""

    scenario: str
    variant: str
    params: dict[str, Any]
    failure: Failure | None
    trace: list[TraceEntry]

    def replay_command(self) -> str: ...


@dataclass(frozen=True)
class Link:
    """One step of the chain: the trace record and what it means for the failure."""

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
    #: What the invariant means (from the catalogue), when it is registered.
    invariant_text: str | None = None
    #: The module that told this story (``concsim.explain._deadlock``...).
    explainer: str = ""

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
            meaning = self.invariant_text
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
            "invariant_text": self.invariant_text,
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
            "explainer": self.explainer,
            "replay_command": self.replay_command,
        }


@dataclass(frozen=True)
class Record:
    """A trace record with its index in the trace (``point``: a scheduling point, as the
    engine marked it; ``read``: a point that only reads its object)."""

    i: int
    step: int
    task: str
    op: str
    obj: str
    point: bool
    read: bool
    fields: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def int_field(self, name: str) -> int | None:
        v = self.fields.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def text(self) -> str:
        """The record in explain's own words: op, object and ``name=value`` fields (never
        the trace's text format, so rewording that format cannot change an explanation)."""
        vals = " ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"{self.op} {self.obj} {vals}".strip()


def records(trace: Sequence[TraceEntry]) -> list[Record]:
    return [
        Record(i, e.step, e.task, e.op, e.obj, e.point, e.read, e.fields)
        for i, e in enumerate(trace)
    ]


# ---------------------------------------------------------------------- field helpers


def errno_name(ret: object) -> str:
    """``-16`` -> ``-EBUSY`` (anything else as it is)."""
    if not isinstance(ret, int):
        return str(ret)
    return f"-{_ERRNO[-ret]}" if -ret in _ERRNO else str(ret)


def vpn_range(r: Record) -> tuple[int, int] | None:
    """``(start, end)`` of a record about a half-open range of pages."""
    start, end = r.int_field("start"), r.int_field("end")
    return (start, end) if start is not None and end is not None else None


def range_text(r: Record) -> str:
    rng = vpn_range(r)
    return f"[{rng[0]},{rng[1]})" if rng else ""


def covers_vpn(r: Record, vpn: int) -> bool:
    rng = vpn_range(r)
    return rng is not None and rng[0] <= vpn < rng[1]


def warn_text(r: Record) -> str:
    """A WARN record in words: its reason and return code (from the fields)."""
    reason = r.get("reason")
    if reason is None:
        return r.text()
    ret = r.get("ret", 0)
    return str(reason).replace("_", " ") + (f": {errno_name(ret)}" if ret else "")


# ---------------------------------------------------------------------- the context


class Context:
    """The trace of one failing run, indexed for the backward search, and the chain.

    ``records`` is the whole trace; ``upto`` the records up to the failing step;
    ``at_failure`` the records of the failing step, the first of which is at index
    ``failure_index``.
    """

    def __init__(self, res: RunLike) -> None:
        assert res.failure is not None
        self.result = res
        self.failure: Failure = res.failure
        self.params = res.params
        self.records = records(res.trace)
        fs = self.failure.step
        self.upto = [r for r in self.records if r.step <= fs]
        self.at_failure = [r for r in self.upto if r.step == fs]
        self.failure_index = self.at_failure[0].i if self.at_failure else len(self.upto)
        self.links: dict[int, tuple[str, str]] = {}
        self.notes: list[str] = []
        self.objects: dict[str, Any] = {}
        self._holds: tuple[list[Span], int] | None = None

    # ------------------------------------------------------------------ the chain

    def link(self, r: Record | None, role: str, text: str) -> None:
        """Put ``r`` in the chain with ``role`` and ``text`` (the first link of a record
        wins)."""
        if r is not None and r.i not in self.links:
            self.links[r.i] = (role, text)

    def link_failure(self) -> None:
        """The failing task's operation at the failing step (when nothing else linked it)."""
        task = self.failure.task
        recs = [r for r in self.at_failure if task in (None, r.task)]
        if recs and not any(r.i in self.links for r in recs):
            self.link(recs[0], "failure", recs[0].text())

    def chain(self) -> list[Link]:
        out = []
        for i in sorted(self.links):
            r = self.records[i]
            role, text = self.links[i]
            out.append(Link(r.step, r.task, r.op, r.obj, dict(r.fields), role, text))
        return out

    # ------------------------------------------------------------------ queries

    def before(self, idx: int | None = None) -> list[Record]:
        """The records before index ``idx`` (default: up to the end of the failing step)."""
        end = self.failure_index + len(self.at_failure) if idx is None else idx
        return self.upto[:end]

    @staticmethod
    def last(recs: Iterable[Record]) -> Record | None:
        found = None
        for r in recs:
            found = r
        return found

    def holds(self) -> list[Span]:
        """Lock holds and waits of every task (see ``concsim.artifacts.derive_holds``)."""
        if self._holds is None:
            self._holds = derive_holds(self.result.trace, self.failure)
        return self._holds[0]

    def hold_at(self, task: str, obj: str, step: int) -> Span | None:
        """The hold of ``obj`` by ``task`` that covers ``step``."""
        for sp in self.holds():
            if (
                sp.kind == "hold"
                and sp.task == task
                and sp.obj == obj
                and sp.start <= step < sp.end
            ):
                return sp
        return None

    def point_of(self, task: str, step: int) -> Record | None:
        """The scheduling-point record of ``task`` at ``step``."""
        return next((r for r in self.upto if r.step == step and r.task == task and r.point), None)

    def link_acquire(self, sp: Span, text: str) -> None:
        """Link the point where the hold ``sp`` was acquired."""
        step = int(sp.args.get("acquired_at_step", sp.start))
        self.link(self.point_of(sp.task, step), "lock", text)
