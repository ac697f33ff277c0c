"""Compare two variants on the same schedules: the numbers a patch reviewer needs.

``compare(a, b)`` runs schedule ``i`` of both variants with the strategy seeded ``seed + i``
(the seeds ``concsim run --seed`` and ``concsim explore`` use), without traces, and sums the
model's own counters: failures, GPA faults handled, -EBUSY retries (and their distribution
per fault), hmm_range_fault restarts, hypercalls and their reps, pages mapped with access at
region creation, and steps.  Same seeds, same numbers: nothing here reads a clock.

The two variants see the same seed, not the same interleaving: a patch changes which
scheduling points exist, so schedule ``i`` of A and of B are two draws of the same strategy.
The sums over many schedules are what compare.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from concsim._errors import UsageError
from concsim.runs import STRATEGIES, RunConfig, RunResult, Runs, resolve
from concsim.scenarios import get_scenario

#: Counters summed over the schedules (scenario ``stats`` keys).
#: ``fault_errors`` are handled faults whose range fault failed (the intercept then goes to
#: the VMM); ``hypercalls.<path>`` split ``hypercalls`` by the driver path that made them
#: (``concsim.driver._driver.HYPERCALL_PATHS``).
COUNTERS = (
    "faults_handled",
    "fault_errors",
    "ebusy_retries",
    "hmm_restarts",
    "hypercalls",
    "hypercalls.creation",
    "hypercalls.fault",
    "hypercalls.invalidate",
    "hypercalls.destroy",
    "hypercall_reps",
    "pages_mapped_at_creation",
)

#: Every scalar metric, in the order tables and ``diff`` show them.
METRICS = (
    "failures",
    *COUNTERS[:3],
    "ebusy_retries_per_fault_mean",
    "ebusy_retries_per_fault_p50",
    "ebusy_retries_per_fault_p99",
    *COUNTERS[3:],
    "steps_mean",
    "steps_p50",
    "steps_p99",
)


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 6) if values else 0.0


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 6) if values else 0.0


@dataclass
class VariantStats:
    """One variant's numbers over the compared schedules."""

    variant: str
    schedules: int
    #: ``kind`` or ``kind[invariant]`` -> schedules that failed that way
    failure_kinds: dict[str, int]
    #: first failing seed per kind (to rerun with ``concsim run --seed``)
    failure_seeds: dict[str, int]
    totals: dict[str, int]
    #: ebusy_retries / faults_handled of each schedule that handled at least one fault
    retries_per_fault: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(self.failure_kinds.values())

    def metrics(self) -> dict[str, float]:
        rpf = self.retries_per_fault
        steps = [float(s) for s in self.steps]
        computed = {
            "failures": self.failures,
            "ebusy_retries_per_fault_mean": _mean(rpf),
            "ebusy_retries_per_fault_p50": _pct(rpf, 50),
            "ebusy_retries_per_fault_p99": _pct(rpf, 99),
            "steps_mean": _mean(steps),
            "steps_p50": _pct(steps, 50),
            "steps_p99": _pct(steps, 99),
        }
        return {k: computed[k] if k in computed else self.totals[k] for k in METRICS}

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            **self.metrics(),
            "failure_kinds": dict(self.failure_kinds),
            "failure_seeds": dict(self.failure_seeds),
            "schedules_with_faults": len(self.retries_per_fault),
        }


@dataclass
class Comparison:
    """``compare(a, b)``: both variants' numbers and B minus A."""

    scenario: str
    schedules: int
    seed: int
    strategy: str
    params: dict[str, Any]
    a: VariantStats
    b: VariantStats
    #: stopped by Ctrl-C: ``schedules`` seeds were run on both sides
    interrupted: bool = False

    def given_params(self) -> list[str]:
        """``name=value`` of the parameters that differ from the scenario's defaults."""
        defaults = {p.name: p.default for p in get_scenario(self.scenario).params}
        return [f"{k}={v}" for k, v in self.params.items() if defaults.get(k) != v]

    def diff(self) -> dict[str, dict[str, float | None]]:
        """Per metric: ``b_minus_a`` and ``ratio`` (B / A; None when A is 0)."""
        ma, mb = self.a.metrics(), self.b.metrics()
        out: dict[str, dict[str, float | None]] = {}
        for k in METRICS:
            va, vb = ma[k], mb[k]
            out[k] = {
                "b_minus_a": round(vb - va, 6),
                "ratio": round(vb / va, 6) if va else None,
            }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "diff": self.diff(),
            "scenario": self.scenario,
            "schedules": self.schedules,
            "seed": self.seed,
            "strategy": self.strategy,
            "params": self.params,
        }


class _Measure:
    """One variant's running numbers, a schedule at a time (schedule i: seed + i, as in
    every front end)."""

    def __init__(
        self, scenario: str, variant: str, params: dict[str, Any], seed: int, strategy: str
    ) -> None:
        cfg = RunConfig(
            scenario=scenario, variant=variant, params=params, strategy=strategy, seed=seed
        )
        world = resolve(cfg)
        self.runs = Runs(world)
        self.seed = seed
        self.kinds: Counter[str] = Counter()
        self.first_seed: dict[str, int] = {}
        self.out = VariantStats(world.variant, 0, {}, {}, dict.fromkeys(COUNTERS, 0))
        self.exhausted = False

    def run(self) -> RunResult | None:
        """The next schedule's result (None once DFS has run every execution)."""
        if self.exhausted:
            return None
        got = self.runs.next()
        if got is None:
            self.exhausted = True
            return None
        return got[1].result

    def add(self, i: int, res: RunResult) -> None:
        out = self.out
        out.schedules += 1
        st = res.stats
        for k in COUNTERS:
            out.totals[k] += int(st.get(k, 0))
        faults = int(st.get("faults_handled", 0))
        if faults:
            out.retries_per_fault.append(int(st.get("ebusy_retries", 0)) / faults)
        out.steps.append(res.steps)
        if res.failure is not None:
            f = res.failure
            key = f"{f.kind}[{f.invariant}]" if f.invariant else f.kind
            self.kinds[key] += 1
            self.first_seed.setdefault(key, self.seed + i)

    def result(self) -> VariantStats:
        out = self.out
        out.failure_kinds = dict(sorted(self.kinds.items()))
        out.failure_seeds = {k: self.first_seed[k] for k in out.failure_kinds}
        return out


def compare(
    a: str,
    b: str,
    *,
    scenario: str = "default",
    schedules: int = 200,
    seed: int = 0,
    strategy: str = "random",
    params: Mapping[str, object] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Comparison:
    """Run ``schedules`` schedules of variants ``a`` and ``b`` on the same seeds.

    The two variants take turns, schedule by schedule, so when ``stop()`` turns true (a
    Ctrl-C) the comparison so far covers the same seeds on both sides (``interrupted`` is
    then set and ``schedules`` says how many).

    Either may be a shipped variant name or a user variant spec (``file.py:Class``,
    ``package.module:Class``).  Bad input raises :class:`concsim.UsageError`.
    """
    if schedules < 1:
        raise UsageError(f"--schedules must be at least 1, got {schedules}")
    if strategy not in STRATEGIES:
        raise UsageError(
            f"unknown strategy {strategy!r} for compare (known: {', '.join(STRATEGIES)})"
        )
    scn = get_scenario(scenario)
    resolved = scn.resolve_params(params)
    # Resolve both before running either, so a bad B fails before A's schedules run.
    ma = _Measure(scn.name, a, resolved, seed, strategy)
    mb = _Measure(scn.name, b, resolved, seed, strategy)
    done = 0
    interrupted = False
    try:
        for i in range(schedules):
            if stop is not None and stop():
                interrupted = True
                break
            # both runs first, then both tallies: a second Ctrl-C leaves them equal
            ra, rb = ma.run(), mb.run()
            if ra is None and rb is None:
                break
            if ra is not None:
                ma.add(i, ra)
            if rb is not None:
                mb.add(i, rb)
            done += 1
    except KeyboardInterrupt:
        interrupted = True
    return Comparison(
        scenario=scn.name,
        schedules=done if interrupted else schedules,
        seed=seed,
        strategy=strategy,
        params=dict(resolved),
        a=ma.result(),
        b=mb.result(),
        interrupted=interrupted,
    )


def check_plot_path(path: str) -> None:
    """Refuse, before any schedule runs, a plot path that cannot be written."""
    import os
    from pathlib import Path

    p = Path(path)
    if p.suffix.lower() != ".png":
        raise UsageError(f"--plot writes a PNG: give it a FILE.png, not {path!r}")
    if p.is_dir():
        raise UsageError(f"--plot {path} is a folder: give it a FILE.png")
    parent = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write plot {path}: {e.strerror or e}") from None
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write plot {path}: folder {parent} is not writable")


def plot_retries(cmp: Comparison, path: str) -> None:
    """Write a PNG of the -EBUSY retries per fault of both variants (a histogram over the
    schedules that handled a fault).  Deterministic: no timestamp or software tag."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'concsim[plot]'") from None
    import io
    from pathlib import Path

    from concsim.artifacts import atomic_write_bytes

    fig = Figure(figsize=(7.0, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    data = [cmp.a.retries_per_fault, cmp.b.retries_per_fault]
    top = max([0.0, *data[0], *data[1]])
    edges = np.linspace(0.0, max(1.0, top), 21)
    for (vs, values), color in zip(
        ((cmp.a, data[0]), (cmp.b, data[1])), ("tab:red", "tab:blue"), strict=True
    ):
        m = vs.metrics()
        ax.hist(
            values,
            bins=edges.tolist(),
            alpha=0.55,
            color=color,
            label=(
                f"{vs.variant}: {vs.totals['faults_handled']} faults, "
                f"mean {m['ebusy_retries_per_fault_mean']:.3f}, "
                f"p99 {m['ebusy_retries_per_fault_p99']:.3f} ({len(values)} schedules)"
            ),
        )
    ax.set_xlabel("-EBUSY retries per fault handled (one schedule)")
    ax.set_ylabel("schedules")
    params = ", ".join(cmp.given_params())
    ax.set_title(
        f"concsim compare: {cmp.scenario}, {cmp.schedules} {cmp.strategy} schedules "
        f"from seed {cmp.seed}" + (f"\n{params}" if params else ""),
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    try:
        atomic_write_bytes(Path(path), buf.getvalue(), mode=0o644)
    except OSError as e:
        raise UsageError(f"cannot write plot {path}: {e.strerror or e}") from None
