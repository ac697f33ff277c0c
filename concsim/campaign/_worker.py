"""The worker side of a campaign: run one batch of seeds and return a compact result.

A *batch* is a half-open range of seeds ``[start, stop)``.  The worker builds a fresh world
per seed through :func:`concsim.runs.run_world` (the same core ``concsim run`` uses), with
tracing off: the hot path records choices only.  When a seed fails, the worker runs it a
second time with ``trace=True`` to get the trace hash, checks that the rerun failed the
same way (a mismatch means the model is not deterministic, and is reported as such), and
returns the replay record.  The parent writes the files: workers never touch ``--out``.

What comes back is small and order-free: counts, a histogram per scenario counter (value
-> number of schedules), the failures, and a digest of the per-seed outcomes (a sum of
per-seed hashes modulo 2**64).  Sums and histograms do not care in which order batches
complete, so nothing written depends on which worker finished first.

The same :func:`run_batch` runs in a local worker process and on a Dask worker.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import signal
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from concsim.artifacts import ReplayFile, replay_from_result
from concsim.runs import RunConfig, RunResult, Runs, World, resolve_variant, run_fast
from concsim.scenarios import get_scenario
from concsim.strategies import Replay

#: Counter pairs reported as a per-schedule ratio (numerator per denominator) when both
#: exist: ``ebusy_retries_per_faults_handled`` is "retries per fault" in the mshv model.
RATIOS: tuple[tuple[str, str], ...] = (("ebusy_retries", "faults_handled"),)

DIGEST_MOD = 1 << 64


@dataclass(frozen=True)
class Job:
    """What every batch of a campaign runs: picklable, small, the same for all batches."""

    scenario: str
    variant: str
    params: dict[str, Any]
    strategy: str
    max_steps: int | None = None
    #: Modules imported in the worker before the first batch (to register user scenarios).
    imports: tuple[str, ...] = ()
    #: The strategy's other settings (depth, k, preemption bound, reduction), as a
    #: :class:`concsim.runs.RunConfig` whose scenario, variant, params, strategy and max
    #: steps are the fields above; ``None``: the defaults.
    settings: RunConfig | None = None
    #: A parameter-space sweep (``concsim.campaign._sweep``): each seed runs its own point.
    #: ``params`` then holds only the pinned parameters, and an empty ``variant`` or
    #: ``strategy`` is drawn per seed.
    sweep: str | None = None

    def config(self, seed: int = 0) -> RunConfig:
        """The run configuration of seed ``seed`` of this job."""
        base = self.settings if self.settings is not None else RunConfig()
        return base.replace(
            scenario=self.scenario,
            variant=self.variant,
            params=dict(self.params),
            strategy=self.strategy,
            max_steps=self.max_steps,
            seed=seed,
        )


@dataclass
class FailureRecord:
    seed: int
    signature: str
    kind: str
    invariant: str | None
    where: str
    message: str
    replay: dict[str, Any]
    #: the known finding (docs/findings.md) a sweep classified this failure as, if any
    known: str | None = None


@dataclass
class BatchResult:
    start: int
    stop: int
    schedules: int = 0
    digest: int = 0
    #: counter name -> {value: number of schedules with that value}
    hist: dict[str, dict[int, int]] = field(default_factory=dict)
    #: ratio name -> {(numerator, denominator): number of schedules}
    ratios: dict[str, dict[tuple[int, int], int]] = field(default_factory=dict)
    failures: list[FailureRecord] = field(default_factory=list)
    seconds: float = 0.0
    pid: int = 0


def seed_digest(seed: int, steps: int, kind: str | None, choices: list[int]) -> int:
    """A 64-bit hash of one seed's outcome; a campaign's digest is their sum mod 2**64."""
    h = hashlib.blake2b(f"{seed}:{steps}:{kind or 'ok'}:".encode(), digest_size=8)
    h.update(array("q", choices).tobytes())
    return int.from_bytes(h.digest(), "little")


_resolved: dict[tuple[str, str, tuple[str, ...]], tuple[Any, str, Any]] = {}


def _resolve_names(scenario: str, variant: str, imports: tuple[str, ...]) -> tuple[Any, str, Any]:
    """The scenario and variant objects of these names (after importing the job's plug-in
    modules), resolved once per worker process."""
    key = (scenario, variant, imports)
    got = _resolved.get(key)
    if got is None:
        for mod in imports:
            importlib.import_module(mod)
        scn = get_scenario(scenario)
        vname, vobj = resolve_variant(scn, variant)
        got = _resolved[key] = (scn, vname, vobj)
    return got


def _resolve(job: Job) -> tuple[Any, str, Any]:
    return _resolve_names(job.scenario, job.variant, job.imports)


def _world(job: Job, seed: int) -> World:
    scn, vname, vobj = _resolve(job)
    cfg = job.config(seed)
    params = scn.resolve_params(cfg.params)
    return World(scn, vname, vobj, params, cfg.max_steps, cfg.replace(params=params))


def _sweep_world(job: Job, seed: int) -> tuple[World, Any]:
    """Seed ``seed`` of a sweep: the world of its point (with the job's strategy settings
    and the point's strategy), and the point."""
    from concsim.campaign._sweep import draw_point

    assert job.sweep is not None
    point = draw_point(
        seed,
        job.sweep,
        fixed=job.params,
        variant=job.variant or None,
        strategy=job.strategy or None,
    )
    scn, vname, vobj = _resolve_names(point.scenario, point.variant, job.imports)
    params = scn.resolve_params(point.params)
    base = job.settings if job.settings is not None else RunConfig()
    cfg = base.replace(
        scenario=scn.name,
        variant=vname,
        params=params,
        strategy=point.strategy,
        max_steps=job.max_steps,
        seed=seed,
    )
    return World(scn, vname, vobj, params, cfg.max_steps, cfg), point


def _sweep_run(world: World, seed: int, *, trace: bool) -> RunResult:
    """Schedule 0 of the point's configuration with seed ``seed``."""
    cfg = world.config
    got = Runs(world.with_settings(cfg.replace(seed=seed)), trace=trace).next()
    assert got is not None
    res = got[1].result
    res.seed = seed
    return res


def run_batch(job: Job, start: int, stop: int, current: Any = None) -> BatchResult:
    """Run seeds ``start .. stop-1`` of ``job`` and return their compact result.

    Seed ``s`` is schedule 0 of the job's configuration with seed ``s`` (the run core's
    :class:`~concsim.runs.Runs` steps them: for DFS, the search's ``s``-th execution).
    ``current`` (a shared integer, local workers only) is set to each seed before it runs,
    so the parent can name the seed of a batch that passes its deadline."""
    t0 = time.perf_counter()
    if job.sweep is not None:
        return _run_sweep_batch(job, start, stop, t0, current)
    world = _world(job, start)
    out = BatchResult(start, stop, pid=os.getpid())
    digest = 0
    runs = Runs(world)
    for seed in range(start, stop):
        if current is not None:
            current.value = seed
        got = runs.next()
        if got is None:  # DFS ran out of executions: the rest are not schedules
            stop = seed
            break
        res = got[1].result
        res.seed = seed
        f = res.failure
        digest += seed_digest(seed, res.steps, f.kind if f else None, res.choices)
        _tally_stats(out, res.stats)
        if f is not None:
            out.failures.append(_failure_record(job, seed, res))
    out.schedules = stop - start
    out.digest = digest % DIGEST_MOD
    out.seconds = time.perf_counter() - t0
    return out


def _tally_stats(out: BatchResult, stats: dict[str, int]) -> None:
    hist = out.hist
    for k, v in stats.items():
        h = hist.get(k)
        if h is None:
            h = hist[k] = {}
        h[v] = h.get(v, 0) + 1
    for num, den in RATIOS:
        d = stats.get(den, 0)
        if d > 0 and num in stats:
            r = out.ratios.setdefault(f"{num}_per_{den}", {})
            key = (stats[num], d)
            r[key] = r.get(key, 0) + 1


def _run_sweep_batch(
    job: Job, start: int, stop: int, t0: float, current: Any = None
) -> BatchResult:
    """A sweep's batch: each seed builds and runs its own point (see ``_sweep``)."""
    from concsim.campaign._sweep import classify

    out = BatchResult(start, stop, pid=os.getpid())
    digest = 0
    for seed in range(start, stop):
        if current is not None:
            current.value = seed
        world, point = _sweep_world(job, seed)
        res = _sweep_run(world, seed, trace=False)
        f = res.failure
        digest += seed_digest(seed, res.steps, f.kind if f else None, res.choices)
        _tally_stats(out, res.stats)
        if f is not None:
            known = classify(point, f.kind, f.invariant, str(f.details.get("where", "")))
            full = _sweep_run(world, seed, trace=True)
            rec = _record(full, res)
            rec.replay["extra"]["sweep"] = {"space": point.space, "seed": seed}
            if known is not None:
                rec.replay["extra"]["known_finding"] = known
                rec.known = known
                rec.signature = f"known:{known}/{rec.signature}"
            out.failures.append(rec)
    out.schedules = stop - start
    out.digest = digest % DIGEST_MOD
    out.seconds = time.perf_counter() - t0
    return out


def _failure_record(job: Job, seed: int, fast: RunResult) -> FailureRecord:
    world = _world(job, seed)
    if job.strategy == "dfs":  # rerun the execution's own choices rather than the search
        full = run_fast(world, Replay(list(fast.choices), strict=False), "dfs", seed, trace=True)
    else:
        got = Runs(world, trace=True).next()
        assert got is not None
        full = got[1].result
    full.seed = seed
    if full.config is not None:
        full.config = full.config.replace(seed=seed)
    return _record(full, fast)


def _record(full: RunResult, fast: RunResult) -> FailureRecord:
    """The failure record of a failing seed from its traced rerun ``full``."""
    seed = fast.seed
    assert seed is not None
    f = full.failure
    assert fast.failure is not None
    if f is None or f.kind != fast.failure.kind or full.choices != fast.choices:
        # The traced rerun disagrees with the fast run: the model is not deterministic.
        # Keep the fast run's facts and say so in the record; the replay may not reproduce.
        full = fast
        f = fast.failure
        note = "nondeterministic: the traced rerun of this seed did not fail the same way"
    else:
        note = ""
    rf = replay_from_result(full)
    rf.extra.update({"signature": f.signature, "found_by": "concsim stress"})
    if note:
        rf.extra["warning"] = note
    return FailureRecord(
        seed=seed,
        signature=f.signature,
        kind=f.kind,
        invariant=f.invariant,
        where=str(f.details.get("where", "")),
        message=f.message,
        replay=rf.to_json(),
    )


def hang_record(job: Job, seed: int, timeout: float) -> FailureRecord:
    """The failure of a seed whose run did not finish within the batch deadline: it has no
    schedule to save, so its replay file holds the run configuration (seed ``seed``) and
    ``concsim replay`` reruns that seed's schedule from the start."""
    message = (
        f"seed {seed} did not finish within {timeout:g}s (an endless loop in the model or "
        "the variant, or a worker process that stopped)"
    )
    failure = {"kind": "hang", "invariant": None, "message": message, "step": 0}
    cfg = job.config(seed)
    rf = ReplayFile(
        scenario=job.scenario,
        variant=job.variant,
        params=dict(job.params),
        strategy=job.strategy,
        seed=seed,
        schedule="cs1:",
        expected={"failure": failure, "trace_sha256": None, "steps": 0},
        extra={
            "signature": "hang/-/",
            "found_by": "concsim stress",
            "unfinished": True,
            "warning": "this seed's run did not finish: replaying it runs until it is stopped",
        },
        config=cfg.to_json(),
    )
    return FailureRecord(seed, "hang/-/", "hang", None, "", message, rf.to_json())


def warm(job: Job) -> int:
    """Import and resolve everything ``job`` needs, so that the first batch is not slower."""
    if job.sweep is not None:
        _sweep_world(job, 0)
    else:
        _resolve(job)
    return os.getpid()


def worker_main(conn: Any, job: Job, current: Any = None) -> None:
    """A local worker process: say ``ready``, then receive ``(start, stop)`` and send back
    a result, until ``None``.

    The worker ignores SIGINT: Ctrl-C in a terminal reaches the whole process group, and it
    is the parent that decides how a campaign stops.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        warm(job)
    except BaseException as e:
        conn.send(("broken", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        start, stop = msg
        try:
            res: Any = run_batch(job, start, stop, current)
        except BaseException as e:  # a user error in the model's build, an import error
            res = ("error", f"{type(e).__name__}: {e}")
        conn.send(res)
