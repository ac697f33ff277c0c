"""Where batches run: local worker processes, or a Dask distributed cluster.

Both backends offer the same three operations to the campaign loop: ``submit`` a batch,
``poll`` for finished ones, ``close``.  A finished batch is either a
:class:`~concsim.campaign._worker.BatchResult` or a *loss* (the process running it died,
the task raised): the loop retries a lost batch once and then reports it.

Local
-----
N processes from a ``forkserver`` (or ``spawn``) context, each with its own pipe, each
running one batch at a time.  We do not use ``ProcessPoolExecutor``: when one of its
workers dies every pending future fails with ``BrokenProcessPool`` and there is no telling
which batch killed it.  Here the parent waits on every pipe and every process sentinel
(``multiprocessing.connection.wait``); a sentinel that fires names the one batch that was
lost, and a fresh process takes the dead one's place.

Dask
----
The same ``run_batch`` is submitted as a task to an existing scheduler (``tcp://...``) or to
a ``LocalCluster(processes=True)``.  Dask already reschedules the tasks of a worker that
died and gives up with ``KilledWorker`` after ``allowed-failures``; either way the loop
sees one lost batch.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from concsim._errors import ConcsimError, UsageError
from concsim.campaign._worker import BatchResult, Job, run_batch, warm, worker_main


class CampaignError(ConcsimError, RuntimeError):
    """The campaign cannot go on: its workers cannot start or cannot finish any batch."""


@dataclass
class Done:
    """A finished batch: a result, or the reason it was lost."""

    start: int
    stop: int
    result: BatchResult | None
    error: str | None = None
    #: the seed a worker was running when its batch passed the deadline (a hang)
    hung_seed: int | None = None


class Backend(Protocol):
    name: str
    workers: int

    def capacity(self) -> int:
        """How many more batches may be submitted now."""
        ...

    def submit(self, start: int, stop: int) -> None: ...

    def poll(self, timeout: float) -> list[Done]: ...

    def in_flight(self) -> int: ...

    def close(self) -> None: ...


class _Proc:
    def __init__(self, ctx: Any, job: Job) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn = parent
        #: the seed the worker is running (it writes it before each seed; no lock needed)
        self.current = ctx.RawValue("q", -1)
        self.proc = ctx.Process(target=worker_main, args=(child, job, self.current), daemon=True)
        self.proc.start()
        child.close()
        self.batch: tuple[int, int] | None = None
        self.since = 0.0

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait for the worker's ``ready`` (it has imported and resolved the job)."""
        ready = multiprocessing.connection.wait([self.conn, self.proc.sentinel], timeout)
        msg: Any = None
        if self.conn in ready:
            with contextlib.suppress(EOFError, OSError):
                msg = self.conn.recv()
        if isinstance(msg, tuple) and msg[0] == "ready":
            return
        self.proc.kill()
        why = msg[1] if isinstance(msg, tuple) else f"exit code {self.proc.exitcode}"
        raise CampaignError(f"a worker process could not start the campaign ({why})")


class LocalBackend:
    name = "local"

    def __init__(
        self,
        job: Job,
        workers: int,
        batch_timeout: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.batch_timeout = batch_timeout
        methods = multiprocessing.get_all_start_methods()
        method = "forkserver" if "forkserver" in methods else "spawn"
        self._ctx = multiprocessing.get_context(method)
        self._job = job
        self._procs: list[_Proc] = []
        for _ in range(workers):  # a Ctrl-C while they start stops starting more
            if stop is not None and stop():
                break
            self._procs.append(_Proc(self._ctx, job))
        self.workers = len(self._procs)
        try:
            for p in self._procs:
                p.wait_ready()
        except CampaignError:
            self.close()
            raise

    def capacity(self) -> int:
        return sum(1 for p in self._procs if p.batch is None)

    def in_flight(self) -> int:
        return sum(1 for p in self._procs if p.batch is not None)

    def submit(self, start: int, stop: int) -> None:
        for p in self._procs:
            if p.batch is None:
                p.batch = (start, stop)
                p.since = time.monotonic()
                # If the process is gone, poll() sees its sentinel and reports the loss.
                with contextlib.suppress(OSError):
                    p.conn.send((start, stop))
                return
        raise RuntimeError("submit() without capacity")

    def poll(self, timeout: float) -> list[Done]:
        busy = [p for p in self._procs if p.batch is not None]
        if not busy:
            time.sleep(timeout)
            return []
        waitables: list[Any] = []
        for p in busy:
            waitables += [p.conn, p.proc.sentinel]
        ready = set(multiprocessing.connection.wait(waitables, timeout))
        out: list[Done] = []
        now = time.monotonic()
        for i, p in enumerate(self._procs):
            if p.batch is None:
                continue
            if p.conn not in ready and p.proc.sentinel not in ready:
                if self.batch_timeout is not None and now - p.since > self.batch_timeout:
                    out.append(self._hung(i, p))
                continue
            start, stop = p.batch
            msg: Any = None
            if p.conn in ready:
                try:
                    msg = p.conn.recv()
                except (EOFError, OSError):
                    msg = None
            if isinstance(msg, BatchResult):
                p.batch = None
                out.append(Done(start, stop, msg))
                continue
            if isinstance(msg, tuple):  # ("error", text): the batch raised in the worker
                p.batch = None
                out.append(Done(start, stop, None, msg[1]))
                continue
            # The process died mid-batch: replace it; only this batch is lost.
            p.proc.join(timeout=5)
            code = p.proc.exitcode
            p.conn.close()
            self._procs[i] = _Proc(self._ctx, self._job)
            self._procs[i].wait_ready()
            out.append(Done(start, stop, None, f"worker process died (exit code {code})"))
        return out

    def _hung(self, i: int, p: _Proc) -> Done:
        """A batch past its deadline: stop its worker (an endless loop in the model, or a
        stopped process), start another, and name the seed it was running."""
        assert p.batch is not None
        start, stop = p.batch
        seed = int(p.current.value)
        p.proc.kill()
        p.proc.join(timeout=5)
        p.conn.close()
        self._procs[i] = _Proc(self._ctx, self._job)
        self._procs[i].wait_ready()
        if not start <= seed < stop:
            seed = start
        return Done(
            start,
            stop,
            None,
            f"seed {seed} ran past the {self.batch_timeout:g}s batch deadline",
            hung_seed=seed,
        )

    def close(self) -> None:
        for p in self._procs:
            try:
                if p.batch is None:
                    p.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2
        for p in self._procs:
            if p.batch is not None:
                p.proc.terminate()
            p.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if p.proc.is_alive():
                p.proc.kill()
                p.proc.join()
            p.conn.close()


class DaskBackend:
    name = "dask"

    def __init__(
        self, job: Job, workers: int, scheduler: str | None, connect_timeout: float
    ) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise UsageError(
                "--backend dask needs Dask distributed: pip install 'concsim[dask]'"
            ) from None
        self._job = job
        self._cluster: Any = None
        self._futures: dict[Any, tuple[int, int]] = {}
        try:
            if scheduler:
                self._client = Client(scheduler, timeout=connect_timeout, set_as_default=False)
            else:
                self._cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    host="127.0.0.1",
                    silence_logs=logging.CRITICAL,
                )
                self._client = Client(self._cluster, set_as_default=False)
        except (OSError, TimeoutError) as e:
            if self._cluster is not None:
                self._cluster.close()
            where = scheduler or "a LocalCluster"
            raise UsageError(
                f"cannot reach the Dask scheduler at {where} within {connect_timeout:g}s "
                f"({type(e).__name__}); is it running? (dask-scheduler prints its address)"
            ) from None
        try:
            self._client.run(warm, job)  # import and resolve on every worker, once
        except Exception as e:
            self.close()
            raise CampaignError(
                f"a Dask worker could not start the campaign ({type(e).__name__}: {e})"
            ) from None
        self._threads = sum(self._client.nthreads().values()) or workers
        self.workers = self._threads

    def capacity(self) -> int:
        # Two batches per worker thread keep every worker busy across the round trip.
        return max(0, 2 * self._threads - len(self._futures))

    def in_flight(self) -> int:
        return len(self._futures)

    def submit(self, start: int, stop: int) -> None:
        fut = self._client.submit(run_batch, self._job, start, stop, pure=False)
        self._futures[fut] = (start, stop)

    def poll(self, timeout: float) -> list[Done]:
        # Futures flip to done from the client's own thread; checking them every 20 ms is
        # cheap next to a batch (~0.5 s) and needs no default client (distributed.wait does).
        deadline = time.monotonic() + timeout
        while not any(f.done() for f in self._futures) and time.monotonic() < deadline:
            time.sleep(0.02)
        out: list[Done] = []
        for fut in [f for f in self._futures if f.done()]:
            start, stop = self._futures.pop(fut)
            try:
                out.append(Done(start, stop, fut.result()))
            except Exception as e:  # KilledWorker, an exception in the task
                out.append(Done(start, stop, None, f"{type(e).__name__}: {e}"))
            fut.release()
        return out

    def close(self) -> None:
        for fut in self._futures:
            fut.cancel()
        self._futures.clear()
        # Closing a LocalCluster whose workers are slow to stop (inside a batch when a
        # --budget ran out, or starved on a loaded machine) is routine for a campaign, but
        # distributed reports it as trouble: a worker's heartbeat to the closed scheduler
        # logs a 31-line CommClosedError traceback, the nannies warn that they kill the
        # workers.  Nothing is lost (the campaign has every finished batch).  The workers
        # of a LocalCluster we start log only CRITICAL (``silence_logs``, set at start:
        # asking a stuck worker to change its logging would hang), and the nannies and
        # scheduler in this process are quieted for the close.  A worker that dies during
        # the campaign is still reported, by its batch's result.
        with _quiet_distributed_logging():
            self._client.close()
            if self._cluster is not None:
                self._cluster.close()


def _distributed_loggers() -> list[str]:
    names = sorted(n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed")
    return names or ["distributed"]


@contextlib.contextmanager
def _quiet_distributed_logging() -> Iterator[None]:
    """Raise this process's ``distributed`` loggers to CRITICAL for the block, then put
    their levels back."""
    saved = {n: logging.getLogger(n).level for n in _distributed_loggers()}
    for n in saved:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)
