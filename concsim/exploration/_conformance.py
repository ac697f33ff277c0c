"""``concsim conformance``: the ported HMM selftests run on the model, as a table.

Each case of :mod:`concsim.exploration._hmm_selftests` runs once (concurrent ones under
``schedules`` schedules, alternating random walk and PCT from ``seed``), with the dmirror
oracles (D1-D3, L1) watching every step.  A case passes when every ASSERT of the selftest
held and no oracle failed on any schedule.  A failing case is *documented* when it carries
a divergence (a reason the model leaves something out on purpose); any other failure is
undocumented and makes the command exit 1.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from concsim.driver.dmirror._test_hmm import DmirrorDriver
from concsim.engine import Runtime
from concsim.exploration._hmm_selftests import CASES, NOT_PORTED, Case
from concsim.exploration._selftest import CaseFailed, Check, Selftest
from concsim.kernel._mm import PMD_ORDER
from concsim.strategies import PCT, RandomWalk, Replay

DEFAULT_SCHEDULES = 200
MAX_STEPS = 2_000_000


@dataclass
class CaseOutcome:
    name: str
    expects: str
    produced: str
    passed: bool
    schedules: int
    partial: str = ""
    divergence: str = ""
    failure: str = ""

    @property
    def status(self) -> str:
        if self.passed:
            return "pass"
        return "fail (documented)" if self.divergence else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.name,
            "expects": self.expects,
            "produced": self.produced,
            "status": self.status,
            "passed": self.passed,
            "schedules": self.schedules,
            "partial": self.partial or None,
            "divergence": self.divergence or None,
            "failure": self.failure or None,
        }


def _produced(checks: list[Check]) -> str:
    parts = []
    for c in checks:
        if isinstance(c.want, str) and c.want.startswith(("array(", "[")) and c.ok:
            parts.append(f"{c.label} as expected")
        else:
            parts.append(f"{c.label}={c.got}")
    return "; ".join(parts)


def _selftest(rt: Runtime, c: Case, driver_cls: type[DmirrorDriver]) -> Selftest:
    """The world a case runs in: with room for a 1 GiB huge page (and the aligned address
    it starts at) when the case runs with 1 GiB default huge pages."""
    if c.hugepage_order <= PMD_ORDER:
        return Selftest(rt, driver_cls)
    size = 1 << c.hugepage_order
    return Selftest(
        rt,
        driver_cls,
        nr_vpns=4 * size,
        capacity=size + (1 << 15),
        hugepage_order=c.hugepage_order,
    )


def run_case(
    c: Case,
    *,
    schedules: int = DEFAULT_SCHEDULES,
    seed: int = 0,
    driver_cls: type[DmirrorDriver] = DmirrorDriver,
) -> CaseOutcome:
    runs = schedules if c.concurrent else 1
    notes: Counter[str] = Counter()
    checks: list[Check] = []
    for i in range(runs):
        if not c.concurrent:
            strategy: Any = Replay([], strict=False)
        elif i % 2 == 0:
            strategy = RandomWalk(seed + i)
        else:
            strategy = PCT(seed + i, k=4000)
        rt = Runtime(strategy, max_steps=MAX_STEPS)
        t = _selftest(rt, c, driver_cls)
        failed: list[str] = []

        async def main(t: Selftest = t, failed: list[str] = failed) -> None:
            try:
                await c.body(t)
            except CaseFailed as e:
                failed.append(str(e))
            finally:
                t.close_threads()

        rt.spawn("selftest", main())
        rt.spawn("thread", t.thread())
        f = rt.run()
        notes.update(t.notes)
        checks = t.checks
        where = f" (schedule {i}, {strategy.name} seed {seed + i})" if c.concurrent else ""
        if f is not None:
            inv = f" [{f.invariant}]" if f.invariant else ""
            msg = f"{f.kind}{inv}: {f.message}{where}"
            return CaseOutcome(c.name, c.expects, msg, False, i + 1, c.partial, c.divergence, msg)
        if failed:
            msg = failed[0] + where
            return CaseOutcome(
                c.name, c.expects, _produced(checks), False, i + 1, c.partial, c.divergence, msg
            )
    produced = _produced(checks)
    if c.concurrent:
        outcomes = ", ".join(f"{k} x{v}" for k, v in sorted(notes.items()))
        produced = f"{runs} schedules, every ASSERT held and no oracle failed"
        if outcomes:
            produced += f"; outcomes: {outcomes}"
    return CaseOutcome(c.name, c.expects, produced, True, runs, c.partial, c.divergence)


def run_conformance(
    *,
    schedules: int = DEFAULT_SCHEDULES,
    seed: int = 0,
    only: list[str] | None = None,
    driver_cls: type[DmirrorDriver] = DmirrorDriver,
) -> list[CaseOutcome]:
    cases = [c for c in CASES if not only or c.name in only]
    return [run_case(c, schedules=schedules, seed=seed, driver_cls=driver_cls) for c in cases]


def undocumented(outcomes: list[CaseOutcome]) -> list[CaseOutcome]:
    return [o for o in outcomes if not o.passed and not o.divergence]


def to_markdown(outcomes: list[CaseOutcome]) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| case | the selftest expects | concsim produces | result |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        expects = o.expects + (f" (ported partly: {o.partial})" if o.partial else "")
        result = o.status + (f": {o.divergence}" if o.divergence else "")
        lines.append(f"| `{o.name}` | {cell(expects)} | {cell(o.produced)} | {cell(result)} |")
    lines += ["", "Not ported:", "", "| case | why |", "|---|---|"]
    lines += [f"| `{k}` | {cell(v)} |" for k, v in NOT_PORTED.items()]
    return "\n".join(lines) + "\n"
