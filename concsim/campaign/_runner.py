"""The campaign loop: shard seeds into batches, collect results, never lose a failure.

The parent process owns ``--out``.  As each batch result arrives it

1. writes every failure of the batch as a replay file,
   ``failures/<signature-slug>/seed-<N>.json``, atomically (the same seed always gives the
   same file, so a rewrite after a crash is harmless);
2. adds the batch to the running :class:`~concsim.campaign._tally.Tally` (the seed
   interval joins ``done``);
3. at most every ``FLUSH_S`` seconds, and always at the end, rewrites ``manifest.json``
   (the tally and the campaign's definition) and ``summary.json`` atomically.

Failures are on disk before the manifest calls their batch done, so whatever stops the
parent, a resume reruns at most the batches whose results were not yet in the manifest and
rewrites the same files: no seed is counted twice and none is skipped.

Batches are sized from measured time per seed (about ``TARGET_S`` each, so the per-task
overhead is amortised and a Ctrl-C is answered quickly) and shrink near the end of a seed
range so that the last batches spread over all workers.  Sizes depend on timing; results
do not: each seed is a pure function of the campaign definition and the seed.

Ctrl-C: the first SIGINT stops handing out batches and waits up to ``GRACE_S`` for the ones
in flight (their failures are written), then stops the workers, writes the manifest and
returns with ``interrupted`` set; a second SIGINT stops at once.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concsim._errors import UsageError
from concsim._version import __version__
from concsim.artifacts import atomic_write_text
from concsim.campaign._backends import Backend, CampaignError, DaskBackend, Done, LocalBackend
from concsim.campaign._shrinking import ShrinkInterrupted, shrink_signatures
from concsim.campaign._spec import SETTING_KEYS, SeedRange
from concsim.campaign._tally import Tally, signature_slug, subtract
from concsim.campaign._worker import BatchResult, Job, hang_record, seed_digest
from concsim.runs import RunConfig

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
FORMAT = "concsim-stress-manifest"
VERSION = 1
FLUSH_S = 0.5
GRACE_S = 5.0
MAX_BATCH = 50_000
LOCK = ".lock"
DEFAULT_KEEP_PER_SIGNATURE = 20
DEFAULT_BATCH_TIMEOUT_S = 60.0


@dataclass
class CampaignSpec:
    job: Job
    seeds: SeedRange
    out: Path
    budget_s: float | None = None
    workers: int = 1
    backend: str = "local"
    scheduler: str | None = None
    connect_timeout: float = 10.0
    resume: bool = False
    name: str | None = None
    #: Seconds of work per batch to aim for (None: 0.25 local, 0.5 Dask).
    target_batch_s: float | None = None
    #: Model runs to spend shrinking each failure signature at the end (0: do not shrink).
    shrink_runs: int = 1000
    #: Replay files kept per failure signature (its smallest seeds); every seed is counted.
    keep_per_signature: int = DEFAULT_KEEP_PER_SIGNATURE
    #: Seconds a batch may run before its worker is stopped and the seed it was running is
    #: reported as a ``hang`` failure (local backend; None: no deadline).
    batch_timeout_s: float | None = DEFAULT_BATCH_TIMEOUT_S

    def identity(self) -> dict[str, Any]:
        """What a resumed campaign must agree on (the budget and workers may change)."""
        ident = {
            "scenario": self.job.scenario,
            "variant": self.job.variant,
            "params": self.job.params,
            "strategy": self.job.strategy,
            "max_steps": self.job.max_steps,
            "imports": list(self.job.imports),
            "seeds": [self.seeds.lo, self.seeds.hi],
            **self._settings(),
        }
        if self.job.sweep is not None:
            ident["sweep"] = self.job.sweep
        return ident

    def _settings(self) -> dict[str, Any]:
        """The strategy settings that differ from the defaults (older manifests have none)."""
        s = self.job.settings
        if s is None:
            return {}
        return {k: getattr(s, k) for k in SETTING_KEYS if getattr(s, k) != getattr(RunConfig(), k)}


@dataclass
class Progress:
    schedules: int  # in the whole campaign, resumed sessions included
    session_schedules: int
    failures: int
    distinct: int
    elapsed_s: float
    total: int | None  # schedules the campaign has in all (None: open-ended)
    budget_s: float | None
    lost: int
    retried: int

    @property
    def rate(self) -> float:
        return self.session_schedules / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def time_left_s(self) -> float | None:
        left: list[float] = []
        if self.budget_s is not None:
            left.append(max(0.0, self.budget_s - self.elapsed_s))
        if self.total is not None and self.rate > 0:
            left.append(max(0, self.total - self.schedules) / self.rate)
        return min(left) if left else None


@dataclass
class CampaignResult:
    spec: CampaignSpec
    tally: Tally
    session_schedules: int
    elapsed_s: float
    startup_s: float
    workers: int
    interrupted: bool
    complete: bool
    retried: int
    events: list[str] = field(default_factory=list)
    #: signature -> the shrunk counterexample's figures (see ``_shrinking``)
    shrunk: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def schedules_per_s(self) -> float:
        return self.session_schedules / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary_json(self) -> dict[str, Any]:
        t = self.tally
        return {
            "schedules": t.schedules,
            "failures": t.failures,
            "new_failures": t.new_failures,
            "known_findings": t.known,
            "distinct_failures": len(t.signatures),
            "schedules_per_s": round(self.schedules_per_s, 1),
            "workers": self.workers,
            "backend": self.spec.backend,
            "out": str(self.spec.out),
            "stats": t.stats(),
            "session_schedules": self.session_schedules,
            "elapsed_s": round(self.elapsed_s, 3),
            "interrupted": self.interrupted,
            "complete": self.complete,
            "lost_batches": t.lost,
            "signatures": [_signature_json(s, self.shrunk) for s in _by_count(t)],
        }


def _signature_json(s: Any, shrunk: dict[str, dict[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = s.to_json()
    if s.signature in shrunk:
        d["shrunk"] = shrunk[s.signature]
    return d


def _by_count(t: Tally) -> list[Any]:
    return sorted(t.signatures.values(), key=lambda s: (-s.count, s.signature))


# ---------------------------------------------------------------------------- out folder


def _read_manifest(out: Path) -> dict[str, Any]:
    p = out / MANIFEST
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"--resume: {out} holds no campaign ({MANIFEST} is missing); start one without --resume"
        ) from None
    except (OSError, ValueError) as e:
        raise UsageError(f"--resume: cannot read {p} ({type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"--resume: {p} is not a concsim stress manifest")
    if data.get("version") != VERSION:
        raise UsageError(f"--resume: {p} has version {data.get('version')!r}; this reads {VERSION}")
    return data


class OutLock:
    """The ``--out`` folder's lock: one campaign at a time writes a folder.

    ``flock`` on ``<out>/.lock``, held for the campaign's life and released by the kernel
    when the process ends however it ends (``kill -9`` included), so a lock is never stale.
    The file holds the holder's pid, which the refusal names.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        try:
            self.out.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UsageError(
                f"cannot write to the output folder {self.out}: {e.strerror or type(e).__name__}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(
                f"{self.out} is in use by another campaign (pid {holder}): wait for it to end "
                "or stop it, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the file stays (harmless)
            self.fd = None


def remove_stale_temp_files(out: Path) -> int:
    """Delete the temporary files an interrupted atomic write left (``.NAME.*.tmp``); only
    the lock's holder calls this, so no writer is using them."""
    n = 0
    for p in out.rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


def prepare_out(spec: CampaignSpec) -> tuple[Tally, dict[str, Any]]:
    """Check (or create) the out folder; return the tally so far and the manifest's header.
    The caller holds the folder's :class:`OutLock`."""
    out = spec.out
    if spec.resume:
        remove_stale_temp_files(out)
        data = _read_manifest(out)
        if data["campaign"] != spec.identity():
            diff = [k for k in spec.identity() if data["campaign"].get(k) != spec.identity()[k]]
            raise UsageError(
                f"--resume: the campaign in {out} has a different {', '.join(diff)}; "
                "leave those options out to resume it as it was"
            )
        return Tally.from_json(data["tally"]), data
    if (out / MANIFEST).exists():
        raise UsageError(
            f"{out} already holds a campaign: pass --resume to continue it, or choose another --out"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".concsim-write-probe"
        atomic_write_text(probe, "ok\n")
        probe.unlink()
    except OSError as e:
        raise UsageError(
            f"cannot write to the output folder {out}: {e.strerror or type(e).__name__}"
        ) from None
    header = {
        "format": FORMAT,
        "version": VERSION,
        "concsim_version": __version__,
        "name": spec.name,
        "campaign": spec.identity(),
        "sessions": [],
    }
    return Tally(), header


def _write_state(
    spec: CampaignSpec,
    header: dict[str, Any],
    tally: Tally,
    complete: bool,
    shrunk: dict[str, dict[str, Any]] | None = None,
) -> None:
    manifest = dict(header)
    manifest["complete"] = complete
    manifest["tally"] = tally.to_json()
    atomic_write_text(spec.out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    summary = {
        "name": spec.name,
        "campaign": spec.identity(),
        "complete": complete,
        "schedules": tally.schedules,
        "failures": tally.failures,
        "new_failures": tally.new_failures,
        "known_findings": tally.known,
        "distinct_failures": len(tally.signatures),
        "signatures": [
            dict(
                _signature_json(s, shrunk or {}),
                replay=f"concsim replay {spec.out / s.to_json()['folder']}/seed-{s.seeds[0]}.json",
            )
            for s in _by_count(tally)
        ],
        "lost_batches": tally.lost,
        "stats": tally.stats(),
    }
    atomic_write_text(spec.out / SUMMARY, json.dumps(summary, indent=1) + "\n")


class _FailureFiles:
    """Writes each failing seed's replay file, keeping at most ``keep`` per signature: the
    smallest seeds (so which files remain does not depend on the order batches finish in).
    The tally counts every seed whatever is kept."""

    def __init__(self, out: Path, keep: int) -> None:
        self.out = out
        self.keep = keep
        self.kept: dict[str, list[int]] = {}

    def _folder(self, slug: str) -> list[int]:
        kept = self.kept.get(slug)
        if kept is None:
            kept = []
            d = self.out / slug
            if d.is_dir():  # a resumed campaign: what an earlier session kept
                for p in d.glob("seed-*.json"):
                    with contextlib.suppress(ValueError):
                        kept.append(int(p.stem.removeprefix("seed-")))
            kept.sort()
            self.kept[slug] = kept
        return kept

    def write(self, done: Done) -> None:
        assert done.result is not None
        for f in done.result.failures:
            # A sweep's known findings go to known/, apart from new failures.
            slug = ("known/" if f.known else "failures/") + signature_slug(f.signature)
            kept = self._folder(slug)
            if f.seed in kept:
                continue
            if len(kept) >= self.keep and f.seed > kept[-1]:
                continue
            path = self.out / slug / f"seed-{f.seed}.json"
            atomic_write_text(path, json.dumps(f.replay, indent=2) + "\n")
            bisect.insort(kept, f.seed)
            while len(kept) > self.keep:
                drop = kept.pop()
                with contextlib.suppress(OSError):
                    (self.out / slug / f"seed-{drop}.json").unlink()


# ---------------------------------------------------------------------------- the loop


class _Batches:
    """Hands out seed intervals: retries first, then the not-yet-done part of the range."""

    def __init__(self, seeds: SeedRange, tally: Tally) -> None:
        self.pending: deque[list[Any]] = deque(subtract(seeds.lo, seeds.hi, tally.done))
        self.retry: deque[tuple[int, int]] = deque()

    def remaining(self) -> int | None:
        n = 0
        for a, b in self.pending:
            if b is None:
                return None
            n += b - a
        return n + sum(b - a for a, b in self.retry)

    def take(self, size: int) -> tuple[int, int] | None:
        if self.retry:
            return self.retry.popleft()
        while self.pending:
            a, b = self.pending[0]
            stop = a + size if b is None else min(b, a + size)
            if stop >= (b if b is not None else math.inf):
                self.pending.popleft()
            else:
                self.pending[0][0] = stop
            if stop > a:
                return a, stop
        return None


def make_backend(spec: CampaignSpec, stop: Callable[[], bool] | None = None) -> Backend:
    if spec.backend == "dask":
        return DaskBackend(spec.job, spec.workers, spec.scheduler, spec.connect_timeout)
    if spec.backend == "local":
        return LocalBackend(spec.job, spec.workers, spec.batch_timeout_s, stop)
    raise UsageError(f"unknown backend {spec.backend!r} (known: local, dask)")


def run_campaign(
    spec: CampaignSpec,
    on_progress: Callable[[Progress], None] | None = None,
    on_event: Callable[[str], None] | None = None,
) -> CampaignResult:
    """Run (or resume) a campaign to its end, its budget, or a Ctrl-C."""
    if spec.keep_per_signature < 1:
        raise UsageError(f"--keep-per-signature must be at least 1, got {spec.keep_per_signature}")
    lock = OutLock(spec.out)
    lock.acquire()
    try:
        return _run_locked(spec, on_progress, on_event)
    finally:
        lock.release()


def _run_locked(
    spec: CampaignSpec,
    on_progress: Callable[[Progress], None] | None,
    on_event: Callable[[str], None] | None,
) -> CampaignResult:
    tally, header = prepare_out(spec)
    events: list[str] = []

    def event(msg: str) -> None:
        events.append(msg)
        if on_event is not None:
            on_event(msg)

    stop = {"requested": 0, "shrinking": 0}

    def on_sigint(signum: int, frame: Any) -> None:
        stop["requested"] += 1
        if stop["shrinking"]:
            # The seeds are done and on disk: stop the optional shrinking at once.
            raise ShrinkInterrupted

    old_handler: Any = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGINT, on_sigint)
    t_start = time.monotonic()
    backend: Backend | None = None
    try:
        backend = make_backend(spec, lambda: stop["requested"] > 0)
        startup = time.monotonic() - t_start
        try:
            result = _loop(spec, backend, tally, header, stop, event, on_progress)
        except OSError as e:  # the out folder filled up or went away mid-campaign
            raise CampaignError(
                f"cannot write to {spec.out} ({e.strerror or type(e).__name__}); the "
                "manifest holds the last consistent state: fix it and pass --resume"
            ) from None
        result.startup_s = startup
        backend.close()
        backend = None
        new_sigs = [s for s in _by_count(tally) if not s.known]
        if spec.shrink_runs > 0 and not result.interrupted and new_sigs:
            stop["shrinking"] = 1
            try:
                result.shrunk = shrink_signatures(
                    spec.job,
                    spec.out,
                    new_sigs,
                    max_runs=spec.shrink_runs,
                    stop=lambda: stop["requested"] > 0,
                    event=event,
                )
            except ShrinkInterrupted:
                event("shrinking interrupted: the seeds' own replay files are all on disk")
            except Exception as e:  # an optional phase must not cost the campaign's report
                event(f"shrinking failed ({type(e).__name__}: {e}); the seed files are on disk")
            finally:
                stop["shrinking"] = 0
            _write_state(spec, header, tally, complete=result.complete, shrunk=result.shrunk)
    finally:
        if backend is not None:
            backend.close()
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    result.events = events
    return result


def _loop(
    spec: CampaignSpec,
    backend: Backend,
    tally: Tally,
    header: dict[str, Any],
    stop: dict[str, int],
    event: Callable[[str], None],
    on_progress: Callable[[Progress], None] | None,
) -> CampaignResult:
    batches = _Batches(spec.seeds, tally)
    files = _FailureFiles(spec.out, spec.keep_per_signature)
    target = spec.target_batch_s or (0.5 if spec.backend == "dask" else 0.25)
    per_seed: float | None = None  # measured seconds per seed (moving average)
    attempts: dict[tuple[int, int], int] = {}
    retried = 0
    session = 0
    losses_in_a_row = 0
    t0 = time.monotonic()
    deadline = t0 + spec.budget_s if spec.budget_s is not None else None
    last_flush = 0.0
    grace_until: float | None = None
    sess = {
        "started_unix": round(time.time(), 3),
        "workers": backend.workers,
        "backend": spec.backend,
    }
    header["sessions"] = [*header.get("sessions", []), sess]

    def progress() -> Progress:
        return Progress(
            tally.schedules,
            session,
            tally.failures,
            len(tally.signatures),
            time.monotonic() - t0,
            spec.seeds.size,
            spec.budget_s,
            len(tally.lost),
            retried,
        )

    while True:
        now = time.monotonic()
        if stop["requested"] and grace_until is None:
            grace_until = now + GRACE_S
            event("interrupted: finishing the batches in flight (Ctrl-C again to stop now)")
        if stop["requested"] > 1 or (grace_until is not None and now > grace_until):
            break
        time_up = deadline is not None and now >= deadline
        while not stop["requested"] and not time_up and backend.capacity() > 0:
            size = _batch_size(
                per_seed,
                target,
                batches.remaining(),
                backend.workers,
                None if deadline is None else deadline - now,
            )
            b = batches.take(size)
            if b is None:
                break
            backend.submit(*b)
        if backend.in_flight() == 0:
            break
        for d in backend.poll(0.1):
            key = (d.start, d.stop)
            if d.hung_seed is not None:  # a hang is the seed's failure; the rest run again
                _record_hang(spec, d, d.hung_seed, files, tally, batches)
                session += 1
                event(f"{d.error}: reported as a hang failure; the campaign goes on")
                continue
            if d.result is None:
                losses_in_a_row += 1
                if losses_in_a_row >= 2 * backend.workers + 2 and session == 0:
                    _write_state(spec, header, tally, complete=False)
                    raise CampaignError(
                        f"the workers keep dying before finishing any batch ({d.error}); "
                        "run one seed with 'concsim run' to see why"
                    )
            else:
                losses_in_a_row = 0
            if d.result is not None:
                files.write(d)
                tally.add(d.result)
                session += d.result.schedules
                if d.result.schedules:
                    s = d.result.seconds / d.result.schedules
                    per_seed = s if per_seed is None else 0.7 * per_seed + 0.3 * s
            elif attempts.get(key, 0) == 0:
                attempts[key] = 1
                retried += 1
                batches.retry.append(key)
                event(f"batch of seeds {d.start}:{d.stop} lost ({d.error}); retrying it once")
            else:
                tally.add_lost(d.start, d.stop, d.error or "lost")
                event(f"batch of seeds {d.start}:{d.stop} lost again ({d.error}); reported")
        now = time.monotonic()
        if now - last_flush >= FLUSH_S:
            sess["elapsed_s"] = round(now - t0, 3)
            _write_state(spec, header, tally, complete=False)
            last_flush = now
        if on_progress is not None:
            on_progress(progress())
    elapsed = time.monotonic() - t0
    interrupted = stop["requested"] > 0
    complete = spec.seeds.hi is not None and not subtract(spec.seeds.lo, spec.seeds.hi, tally.done)
    sess.update(elapsed_s=round(elapsed, 3), schedules=session, interrupted=interrupted)
    _write_state(spec, header, tally, complete=complete)
    if on_progress is not None:
        on_progress(progress())
    return CampaignResult(
        spec, tally, session, elapsed, 0.0, backend.workers, interrupted, complete, retried
    )


def _record_hang(
    spec: CampaignSpec,
    d: Done,
    seed: int,
    files: _FailureFiles,
    tally: Tally,
    batches: _Batches,
) -> None:
    assert spec.batch_timeout_s is not None
    rec = hang_record(spec.job, seed, spec.batch_timeout_s)
    one = BatchResult(
        seed, seed + 1, schedules=1, digest=seed_digest(seed, 0, "hang", []), failures=[rec]
    )
    files.write(Done(seed, seed + 1, one))
    tally.add(one)
    if d.start < seed:
        batches.retry.append((d.start, seed))
    if seed + 1 < d.stop:
        batches.retry.append((seed + 1, d.stop))


def _batch_size(
    per_seed: float | None,
    target: float,
    remaining: int | None,
    workers: int,
    time_left: float | None,
) -> int:
    if per_seed is None:
        size = 16  # a probe: the first results tell how long a seed takes
    else:
        size = int(target / max(per_seed, 1e-7))
        if time_left is not None:
            size = min(size, int(time_left / max(per_seed, 1e-7)) + 1)
    if remaining is not None:
        size = min(size, max(1, math.ceil(remaining / (2 * workers))))
    return max(1, min(size, MAX_BATCH))
