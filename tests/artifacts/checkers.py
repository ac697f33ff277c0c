"""Structural checkers for the trace views (used by the view and CLI tests)."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

REQUIRED = ("ph", "ts", "pid", "tid", "name")


def perfetto_problems(doc: Any) -> list[str]:
    """Everything wrong with a Chrome trace-event JSON object; [] when it is well formed.

    Checks: the object format with ``traceEvents`` and ``displayTimeUnit``; the required
    fields on every event; integer-valued, non-negative timestamps; every ``X`` has a
    non-negative ``dur``; ``B``/``E`` pairs match per track; and on each track (pid, tid)
    the spans (``X`` and ``B``/``E``) are properly nested: no two overlap partially.
    """
    problems: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        return ["not a JSON object with a traceEvents list"]
    if doc.get("displayTimeUnit") not in ("ms", "ns"):
        problems.append("displayTimeUnit must be 'ms' or 'ns'")
    spans: dict[tuple[int, int], list[tuple[float, float, str]]] = defaultdict(list)
    open_b: dict[tuple[int, int], list[tuple[float, str]]] = defaultdict(list)
    for i, e in enumerate(doc["traceEvents"]):
        missing = [k for k in REQUIRED if k not in e]
        if missing:
            problems.append(f"event {i} lacks {missing}")
            continue
        if not isinstance(e["ts"], int | float) or e["ts"] < 0:
            problems.append(f"event {i} has a bad ts {e['ts']!r}")
        track = (e["pid"], e["tid"])
        ph = e["ph"]
        if ph == "X":
            if not isinstance(e.get("dur"), int | float) or e["dur"] < 0:
                problems.append(f"X event {i} has a bad dur {e.get('dur')!r}")
                continue
            spans[track].append((e["ts"], e["ts"] + e["dur"], e["name"]))
        elif ph == "B":
            open_b[track].append((e["ts"], e["name"]))
        elif ph == "E":
            if not open_b[track]:
                problems.append(f"E event {i} on track {track} without a B")
                continue
            ts, name = open_b[track].pop()
            spans[track].append((ts, e["ts"], name))
        elif ph not in ("i", "I", "M", "C", "s", "t", "f"):
            problems.append(f"event {i} has an unknown ph {ph!r}")
    for track, left in open_b.items():
        if left:
            problems.append(f"track {track}: B events never ended: {left}")
    for track, ivs in spans.items():
        ivs.sort(key=lambda iv: (iv[0], -iv[1]))
        stack: list[tuple[float, float, str]] = []
        for iv in ivs:
            while stack and stack[-1][1] <= iv[0]:
                stack.pop()
            if stack and stack[-1][1] < iv[1]:
                problems.append(
                    f"track {track}: {iv[2]!r} [{iv[0]}, {iv[1]}) overlaps "
                    f"{stack[-1][2]!r} [{stack[-1][0]}, {stack[-1][1]}) without nesting"
                )
            stack.append(iv)
    return problems


def track_names(doc: dict[str, Any]) -> dict[int, str]:
    return {
        e["tid"]: e["args"]["name"]
        for e in doc["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }


_PARTICIPANT = re.compile(r"^    participant (\w+) as (\S.*)$")
_ARROW = re.compile(r"^\s+(\w+)(->>|-->>)(\w+): (\S.*)$")
_NOTE = re.compile(r"^\s+Note over (\w+)(?:,(\w+))?: (\S.*)$")


def mermaid_problems(text: str) -> list[str]:
    """What is wrong with a concsim sequenceDiagram; [] when it is well formed."""
    lines = text.rstrip("\n").split("\n")
    if not lines or lines[0] != "sequenceDiagram":
        return ["does not start with 'sequenceDiagram'"]
    problems = []
    declared: set[str] = set()
    depth = 0
    for n, line in enumerate(lines[1:], start=2):
        if m := _PARTICIPANT.match(line):
            declared.add(m.group(1))
            continue
        if line.strip().startswith("%%"):
            continue
        if re.match(r"^\s+rect rgb\(\d+, \d+, \d+\)$", line):
            depth += 1
            continue
        if line.strip() == "end":
            depth -= 1
            if depth < 0:
                problems.append(f"line {n}: 'end' without 'rect'")
            continue
        if m := _ARROW.match(line):
            ends = [m.group(1), m.group(3)]
            body = m.group(4)
        elif m := _NOTE.match(line):
            ends = [x for x in (m.group(1), m.group(2)) if x]
            body = m.group(3)
        else:
            problems.append(f"line {n}: not a participant, arrow, note or box: {line!r}")
            continue
        problems.extend(
            f"line {n}: {p} is not a declared participant" for p in ends if p not in declared
        )
        if ";" in re.sub(r"#\d+;", "", body):
            problems.append(f"line {n}: unescaped ';' in a label")
    if depth:
        problems.append("a 'rect' box is not closed")
    return problems
