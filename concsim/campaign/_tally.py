"""A campaign's running totals: what the manifest stores and the summary reports.

Everything here is a sum, a histogram, a set of seed intervals or a "smallest seeds" list,
so merging batch results in any order gives the same state: the order in which workers
finish never shows in anything written (only in timings).
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from concsim.campaign._worker import DIGEST_MOD, BatchResult

#: How many seeds each signature keeps as examples (the smallest ones).
EXAMPLE_SEEDS = 5


def signature_slug(signature: str) -> str:
    """A folder name for a failure signature: readable, and unique thanks to a short hash."""
    text = re.sub(r"[^A-Za-z0-9]+", "-", signature).strip("-")[:60] or "failure"
    return f"{text}-{hashlib.sha1(signature.encode()).hexdigest()[:8]}"


@dataclass
class SignatureTally:
    signature: str
    kind: str
    invariant: str | None
    where: str
    message: str
    count: int = 0
    seeds: list[int] = field(default_factory=list)
    #: the known finding these failures are (a sweep's), or None for new failures
    known: str | None = None

    def add(self, seed: int, message: str) -> None:
        self.count += 1
        if len(self.seeds) < EXAMPLE_SEEDS or seed < self.seeds[-1]:
            if seed in self.seeds:
                return
            self.seeds.append(seed)
            self.seeds.sort()
            del self.seeds[EXAMPLE_SEEDS:]
            if seed == self.seeds[0]:
                self.message = message  # the example message is the smallest seed's

    @property
    def slug(self) -> str:
        return signature_slug(self.signature)

    @property
    def folder(self) -> str:
        """Where its replay files go: ``failures/<slug>``, or ``known/<slug>`` for a known
        finding of a sweep."""
        return f"{'known' if self.known else 'failures'}/{self.slug}"

    def to_json(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "kind": self.kind,
            "invariant": self.invariant,
            "where": self.where,
            "count": self.count,
            "seeds": self.seeds,
            "folder": self.folder,
            "message": self.message,
            "known": self.known,
        }


def add_interval(done: list[list[int]], a: int, b: int) -> None:
    """Insert ``[a, b)`` into a sorted list of disjoint intervals, coalescing neighbours.

    Overlap with an interval already there is a bug in the caller (a seed counted twice),
    so it raises instead of hiding it.
    """
    if a >= b:
        raise AssertionError(f"empty seed interval {a}:{b}")
    i = bisect.bisect_left(done, [a, b])  # sorted by start
    if (i > 0 and done[i - 1][1] > a) or (i < len(done) and done[i][0] < b):
        raise AssertionError(f"seeds {a}:{b} overlap seeds already done")
    done.insert(i, [a, b])
    if i + 1 < len(done) and done[i][1] == done[i + 1][0]:
        done[i][1] = done[i + 1][1]
        del done[i + 1]
    if i > 0 and done[i - 1][1] == done[i][0]:
        done[i - 1][1] = done[i][1]
        del done[i]


def subtract(lo: int, hi: int | None, done: list[list[int]]) -> list[list[Any]]:
    """The intervals of ``[lo, hi)`` (``hi=None``: unbounded) not covered by ``done``."""
    out: list[list[Any]] = []
    cur = lo
    for a, b in done:
        if hi is not None and a >= hi:
            break
        if b <= cur:
            continue
        if a > cur:
            out.append([cur, a if hi is None else min(a, hi)])
        cur = max(cur, b)
    if hi is None:
        out.append([cur, None])
    elif cur < hi:
        out.append([cur, hi])
    return out


@dataclass
class Tally:
    schedules: int = 0
    failures: int = 0
    #: how many of ``failures`` are known findings (a sweep's); the rest are new
    known: int = 0
    digest: int = 0
    done: list[list[int]] = field(default_factory=list)
    lost: list[dict[str, Any]] = field(default_factory=list)
    signatures: dict[str, SignatureTally] = field(default_factory=dict)
    hist: dict[str, dict[int, int]] = field(default_factory=dict)
    ratios: dict[str, dict[tuple[int, int], int]] = field(default_factory=dict)

    def add(self, r: BatchResult) -> None:
        add_interval(self.done, r.start, r.stop)
        self.schedules += r.schedules
        self.digest = (self.digest + r.digest) % DIGEST_MOD
        for name, h in r.hist.items():
            mine = self.hist.setdefault(name, {})
            for v, c in h.items():
                mine[v] = mine.get(v, 0) + c
        for name, rh in r.ratios.items():
            rmine = self.ratios.setdefault(name, {})
            for key, c in rh.items():
                rmine[key] = rmine.get(key, 0) + c
        for f in r.failures:
            self.failures += 1
            if f.known:
                self.known += 1
            st = self.signatures.get(f.signature)
            if st is None:
                st = self.signatures[f.signature] = SignatureTally(
                    f.signature, f.kind, f.invariant, f.where, f.message, known=f.known
                )
            st.add(f.seed, f.message)

    @property
    def new_failures(self) -> int:
        """Failures that are not known findings: what makes a campaign fail."""
        return self.failures - self.known

    def add_lost(self, start: int, stop: int, reason: str) -> None:
        add_interval(self.done, start, stop)
        self.lost.append({"seeds": [start, stop], "reason": reason})
        self.lost.sort(key=lambda d: d["seeds"][0])

    # ------------------------------------------------------------------ statistics

    def stats(self) -> dict[str, dict[str, float]]:
        """p50, p90, p99 and mean of every counter (and ratio) over the schedules.

        A counter a schedule never touched counts as 0 for that schedule.  Ratios are over
        the schedules where the denominator is positive.
        """
        out: dict[str, dict[str, float]] = {}
        for name in sorted(self.hist):
            h = dict(self.hist[name])
            missing = self.schedules - sum(h.values())
            if missing > 0:
                h[0] = h.get(0, 0) + missing
            out[name] = hist_summary(h)
        for name in sorted(self.ratios):
            rh: dict[float, int] = {}
            for (num, den), c in self.ratios[name].items():
                v = num / den
                rh[v] = rh.get(v, 0) + c
            out[name] = hist_summary(rh)
        return out

    # ------------------------------------------------------------------ (de)serialisation

    def to_json(self) -> dict[str, Any]:
        return {
            "schedules": self.schedules,
            "failures": self.failures,
            "known": self.known,
            "digest": f"{self.digest:016x}",
            "done": self.done,
            "lost": self.lost,
            "signatures": {k: self.signatures[k].to_json() for k in sorted(self.signatures)},
            "hist": {
                k: {str(v): c for v, c in sorted(self.hist[k].items())} for k in sorted(self.hist)
            },
            "ratios": {
                k: [[n, d, c] for (n, d), c in sorted(self.ratios[k].items())]
                for k in sorted(self.ratios)
            },
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Tally:
        t = cls(
            schedules=int(d["schedules"]),
            failures=int(d["failures"]),
            known=int(d.get("known", 0)),
            digest=int(d["digest"], 16),
            done=[[int(a), int(b)] for a, b in d["done"]],
            lost=list(d.get("lost", [])),
        )
        for k, s in d["signatures"].items():
            t.signatures[k] = SignatureTally(
                k,
                s["kind"],
                s["invariant"],
                s["where"],
                s["message"],
                s["count"],
                s["seeds"],
                s.get("known"),
            )
        t.hist = {k: {int(v): int(c) for v, c in h.items()} for k, h in d["hist"].items()}
        t.ratios = {k: {(n, dd): c for n, dd, c in rows} for k, rows in d["ratios"].items()}
        return t


def hist_summary(h: dict[Any, int]) -> dict[str, float]:
    """numpy's default (linear) percentiles and the mean, from a value -> count histogram.

    Equal to ``np.percentile(np.repeat(values, counts), q)`` without materialising one
    entry per schedule, so a campaign's memory does not grow with its length.
    """
    values = np.array(sorted(h), dtype=np.float64)
    counts = np.array([h[v] for v in sorted(h)], dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "mean": 0.0}
    ends = np.cumsum(counts)  # sorted data index i holds values[searchsorted(ends, i, right)]
    out: dict[str, float] = {}
    for q in (50, 90, 99):
        pos = q / 100 * (n - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        vlo = values[np.searchsorted(ends, lo, side="right")]
        vhi = values[np.searchsorted(ends, hi, side="right")]
        out[f"p{q}"] = round(float(vlo + (vhi - vlo) * (pos - lo)), 6)
    out["mean"] = round(float(np.dot(values, counts) / n), 6)
    return out
