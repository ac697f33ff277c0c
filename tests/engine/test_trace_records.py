"""Typed trace records: kinds and fields, points marked by the engine, text only at the edge."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import concsim
from concsim._errors import UsageError
from concsim.engine import Runtime, TraceEntry, define_event, event_kind, event_kinds, trace_sha256
from concsim.engine import _trace as trace_mod

from .helpers import run_world

PKG = Path(concsim.__file__).parent


def test_records_carry_named_fields_and_render_with_their_kind() -> None:
    e = TraceEntry(3, "vcpu0", "hv_call_map_gpa_pages", "slat", (512, 8, 0x8003), True)
    assert e.fields == {"gfn": 512, "count": 8, "flags": 0x8003}
    assert e.get("gfn") == 512
    assert e.get("pfn") is None
    assert e.get("pfn", -1) == -1
    assert e.detail == "gfn 512+8 0x8003"
    # An op nobody declared (an ad-hoc model's own): one value is "value".
    u = TraceEntry(1, "t", "store", "n", (5,), True)
    assert u.fields == {"value": 5}
    assert u.get("value") == 5
    assert u.detail == "5"
    assert TraceEntry(1, "t", "load", "n", (), True, True).detail == ""


def test_a_kind_is_declared_once_with_one_layout() -> None:
    kind = event_kind("slat_map")
    assert kind is not None
    assert kind.fields == ("gfn", "count", "flags")
    assert "set_pte" in event_kinds()
    # The same layout again is fine (a reloaded module); another layout is an error.
    define_event("slat_map", kind.fields, kind.text, kind.doc)
    with pytest.raises(UsageError, match="declared twice"):
        define_event("slat_map", ("gfn",))


def test_the_engine_marks_scheduling_points_and_events() -> None:
    def world(rt: Runtime) -> None:
        async def t() -> None:
            await rt.point("load", "x", read=True)
            rt.event("note", "x", 7)
            await rt.point("store", "x", 8)

        rt.spawn("t", t())

    rt, failure = run_world(world, seed=0)
    assert failure is None
    got = [(e.step, e.op, e.point, e.read, e.values) for e in rt.trace]
    assert got == [
        (1, "start", True, False, ()),
        (2, "load", True, True, ()),
        (2, "note", False, False, (7,)),
        (3, "store", True, False, (8,)),
        (3, "exit", False, False, ()),
    ]


def test_an_untraced_run_records_nothing() -> None:
    res = concsim.run("default", seed=1, trace=False)
    assert res.trace == []
    assert res.trace_sha256 is None


def test_the_hash_is_of_the_records_not_of_their_text(monkeypatch: pytest.MonkeyPatch) -> None:
    res = concsim.run("default", variant="no-read-retry", seed=8)
    before = trace_sha256(res.trace)
    text_before = [e.detail for e in res.trace]
    _reword_every_kind(monkeypatch)
    assert [e.detail for e in res.trace] != text_before  # the text did change...
    assert trace_sha256(res.trace) == before  # ...and the hash did not


def _reword_every_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give every declared kind another text (what a careless rewording would do)."""
    for op, kind in event_kinds().items():
        fields = kind.fields
        monkeypatch.setitem(
            trace_mod._KINDS,
            op,
            dataclasses.replace(
                kind, text=lambda f, fields=fields: "REWORDED " + ";".join(map(str, f.values()))
            ),
        )


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("where", ["engine", "strategies", "artifacts", "checks", "explain"])
def test_no_trace_reader_uses_regular_expressions(where: str) -> None:
    """The modules that read traces get fields from the records; none imports ``re``."""
    files = sorted((PKG / where).rglob("*.py")) if (PKG / where).is_dir() else [PKG / where]
    assert files
    users = [str(f.relative_to(PKG)) for f in files if "re" in _imports(f)]
    assert users == []


def test_every_record_the_mshv_model_writes_matches_its_declaration() -> None:
    """Model code passes each op's values in the order its kind declares: every record of
    the mshv model (every event, pinned regions, failures injected) and of the dmirror
    model has a declared kind
    with exactly that many fields, so no reader gets a field under the wrong name."""
    worlds = [
        {"events": "migrate,reclaim,munmap,oom,madvise,mprotect,numa,ksm,thp"},
        {"events": "exit,migrate", "destroy": True, "pinned": True},
        {"pages": 16, "hv_fail": "holes", "alloc_fail": True, "events": "madvise"},
    ]
    runs = [("default", p) for p in worlds] + [("dmirror", {})]
    seen: set[str] = set()
    for scenario, params in runs:
        for seed in range(4):
            res = concsim.run(scenario, params=params, seed=seed)
            for e in res.trace:
                if not e.values:
                    continue
                kind = event_kind(e.op)
                assert kind is not None, f"{e.op} carries values but declares no fields"
                assert len(e.values) == len(kind.fields), (e.op, e.values, kind.fields)
                seen.add(e.op)
    assert {"slat_map", "set_pte", "seq", "read_begin", "invalidate_range_start"} <= seen
    assert "dmirror_ioctl" in seen
