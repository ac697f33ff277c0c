"""The controlled scheduler: runs model tasks one step at a time, in an order a strategy picks.

Design
======

Model tasks are plain ``async def`` coroutines.  They never run on an event loop: the engine
drives each one itself with ``coro.send(None)``, and a task gives control back only by
awaiting a concsim *scheduling point* (``await rt.point(op, obj)``), which yields a private
sentinel.  Driving coroutines directly is an order of magnitude cheaper than handing control
through asyncio futures or trio's reschedule (see shared/design.md), and, more importantly,
nothing outside the engine decides who runs next: there is no event loop wake-up order to
depend on.

A *step* is one resumption of one task: from the scheduling point where it was paused to the
next one.  Everything a task does between two points is atomic with respect to the others, so
a model places a point before every operation on shared state ("before the access", as loom
and shuttle do): at the point the task announces what it is about to do (``op`` on ``obj``),
and the scheduler may let another task go first.

Choices and schedules
---------------------

At each point where more than one task could run, the strategy makes a *choice*: an integer
into the list of candidates ``[current task] + [the other runnable tasks by id]`` (just the
runnable tasks by id when the current one blocked or finished).  So ``0`` always means "keep
running the task that was running" and ``k > 0`` "switch to the k-th other runnable task":
fewer switches make a numerically smaller schedule, which is what the shrinker wants.  A
point with a single candidate is not a choice and records nothing.

The environment's choices (does this hypercall batch succeed? does this allocation fail?)
are drawn from the same stream with :meth:`Runtime.choose`, ``0`` being the ordinary outcome.
The list of choices is the whole schedule: feeding it back reproduces the run exactly.
Beside it the runtime keeps the typed record of what each choice meant
(``choice_kinds``: a task or an environment choice; ``choice_tasks``: the id of the task
each task choice ran; ``choice_envs``: each outcome) and the exact number of
``preemptions`` (task choices that switched away from a task that could have gone on).

Tasks are identified by the id the engine assigns at spawn (0, 1, 2, ... in spawn order);
candidates are always ordered by that id, never by a hash, a set, or a wake-up order.

Blocking
--------

A primitive that must wait (a contended mutex, ``wait_event``) calls :meth:`Runtime.block`:
the task leaves the runnable list and records what it waits on; the primitive that releases
the resource calls :meth:`Runtime.wake_all`.  Woken tasks re-check their condition when they
next run (a mutex is not handed over; whoever the schedule runs first takes it), so every
outcome of a contended wake-up is a scheduling choice.  When no task is runnable and some are
blocked, the run ends with a ``deadlock`` failure naming the wait-for cycle.

Spawning and joining
--------------------

A running task may spawn another (``rt.spawn(name, coro)``): it gets the next id, so the
candidate order stays the spawn order, and it is runnable from the next choice on.  ``await
rt.join(task)`` waits until ``task`` has returned (a scheduling point announcing ``join`` on
the task's name; a task spawned while the run runs records an ``exited`` event on its name
when it returns, so exploration sees the join and the exit as dependent).
"""

from __future__ import annotations

import bisect
import contextlib
import traceback
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Protocol

from concsim._errors import Interrupted, UsageError
from concsim.engine._failure import Failure, FailureSignal
from concsim.engine._trace import TraceEntry, define_event

define_event("choose", ("outcome", "choices"), "{outcome}/{choices}")


class Waitable(Protocol):
    """Something a task can block on: it has a name and knows which tasks hold it."""

    name: str

    def holders(self) -> list[Task]: ...


class StepListener(Protocol):
    """Watches what every step touches (the footprint), for partial-order reduction.

    Attach one as ``rt.observer`` before :meth:`Runtime.run`.  The engine calls
    :meth:`begin_step` right before it resumes a task (``choice`` is the index in
    ``rt.choices`` of the task choice that picked it, or -1 when only one task could run);
    model code reports each shared-state access of the running step with
    :meth:`Runtime.access`, which forwards to :meth:`touch`; :meth:`Runtime.choose`
    forwards environment choices to :meth:`env`.  Everything a step does between its
    ``begin_step`` and the next one belongs to it, including what a step hook or a failing
    check reads right after it.  The strategy may attach or detach the observer inside
    ``pick_task`` (DFS does while it replays steps it has recorded before): the engine
    reads ``rt.observer`` again after every task choice, and the step that choice starts
    goes to the observer attached then.  The same holds for ``rt.tracing``: a strategy
    that stops tracing there and resumes it later puts the entries of the steps between
    into ``rt.trace`` itself (DFS takes them from the previous run's trace).
    """

    def begin_step(self, task: Task, choice: int) -> None: ...

    def touch(self, obj: str, write: bool) -> None: ...

    def env(self, label: str, n: int) -> None: ...


class Strategy(Protocol):
    """The one interface every exploration strategy implements.

    ``pick_task`` returns an index into ``rt.candidates()`` (``n`` of them, ``n >= 2``);
    ``pick_env`` an outcome in ``range(n)`` for an environment choice named ``label``.
    A strategy may inspect the runtime (candidates, their pending operations), but must not
    change it.
    """

    def pick_task(self, rt: Runtime, n: int) -> int: ...

    def pick_env(self, rt: Runtime, label: str, n: int) -> int: ...


# The value a concsim scheduling point yields to the engine.  Anything else a task yields
# comes from a foreign awaitable (an asyncio future, a trio trap) and is reported as such.
_SWITCH = object()


@types.coroutine
def _switch() -> Generator[object, None, None]:
    yield _SWITCH


RUNNABLE = 0
BLOCKED = 1
DONE = 2

#: ``Runtime.choice_kinds`` entries: a choice of the task to run, an environment outcome.
TASK_CHOICE = 0
ENV_CHOICE = 1


class Task:
    """One model task: a coroutine plus the bookkeeping the engine and primitives need."""

    __slots__ = (
        "atomic",
        "blocked_on",
        "coro",
        "dynamic",
        "held",
        "id",
        "joiners",
        "name",
        "nonblock",
        "obj",
        "op",
        "read",
        "state",
        "values",
    )

    def __init__(self, tid: int, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        self.id = tid
        self.name = name
        self.coro = coro
        self.state = RUNNABLE
        # What the task announced at its last scheduling point: the operation it performs
        # when it is next resumed.  Strategies read these (DPOR's dependency relation).
        self.op = "start"
        self.obj = ""
        self.values: tuple[object, ...] = ()
        self.read = False
        self.blocked_on: Waitable | None = None
        # Locks held, in acquisition order (primitives maintain it; lock checks read it).
        self.held: list[Any] = []
        # >0 while the task holds a spinlock (atomic context): sleeping is a bug.
        self.atomic = 0
        # >0 while the task runs in a non-blockable context (OOM reaper's invalidation).
        self.nonblock = 0
        # Tasks blocked in ``rt.join(self)``; whether it was spawned while the run ran.
        self.joiners: list[Task] = []
        self.dynamic = False

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.name!r}>"


class Runtime:
    """One run: the tasks, the strategy's choices, the trace, the counters.

    A runtime is single-use: build the world (spawn tasks, create primitives with this
    runtime), then call :meth:`run` once.
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        max_steps: int = 100_000,
        trace: bool = False,
    ) -> None:
        self.strategy = strategy
        self.max_steps = max_steps
        self.tracing = trace
        self.tasks: list[Task] = []
        self._task_names: set[str] = set()
        self._runnable: list[Task] = []  # sorted by task id
        self.current: Task | None = None
        self.step = 0
        self.choices: list[int] = []
        # Positions in ``choices`` of the environment choices (rare: kept instead of a kind
        # per choice, so the hot loop pays one append per task choice, not two).
        self._env_at: list[int] = []
        #: For each task choice, the id of the task it ran.
        self.choice_tasks: list[int] = []
        #: For each environment choice, its outcome.
        self.choice_envs: list[int] = []
        #: Task choices that switched away from a task that could have kept running.
        self.preemptions = 0
        self.trace: list[TraceEntry] = []
        self.stats: dict[str, int] = {}
        self.failure: Failure | None = None
        #: The invariant a model says a deadlock breaks (the mshv model: "L4").
        self.deadlock_invariant: str | None = None
        # Callables run after every step when a model asks (audits "every N steps").
        self._step_hooks: list[tuple[int, Callable[[Runtime], None]]] = []
        # Callables run once when every task has finished, to audit the final state.
        self._final_hooks: list[Callable[[Runtime], None]] = []
        # Per-run state that higher layers attach (the kernel's lock tracker, oracles).
        self.ext: dict[str, Any] = {}
        #: The footprint observer (see :class:`StepListener`); ``None`` on the hot path,
        #: where :meth:`access` costs one attribute test.
        self.observer: StepListener | None = None
        #: After the run: the ids of the tasks that were still runnable when it stopped
        #: (empty unless a failure cut it short).  DPOR treats their next steps as racing
        #: with the failure: had one of them run first, the run might have failed otherwise.
        self.unfinished: tuple[int, ...] = ()
        self._ran = False
        self._finished = False

    # ------------------------------------------------------------------ building a world

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> Task:
        """Add a task, while the world is built or from a running task.  Ids are assigned in
        spawn order and are the only order used."""
        if self._finished:
            coro.close()
            raise UsageError("spawn() after the run ended: a runtime is single-use")
        if name in self._task_names:
            coro.close()
            raise UsageError(f"task name {name!r} is used twice: task names must be unique")
        task = Task(len(self.tasks), name, coro)
        self.tasks.append(task)
        self._task_names.add(name)  # membership only: never iterated
        self._runnable.append(task)  # the largest id: the list stays sorted
        if self._ran:
            task.dynamic = True
            if self.current is not None:
                task.obj = name  # its first step reads what the spawn wrote
                task.read = True
                self.access(name)
            self.event("spawn", name)
        return task

    async def join(self, task: Task) -> None:
        """Wait until ``task`` has returned (a scheduling point)."""
        await self.point("join", task.name, read=True)
        if task.state != DONE:
            t = self.current
            assert t is not None
            if t is task:
                raise UsageError(f"task {task.name!r} joins itself")
            task.joiners.append(t)
            await self.block(_JoinTarget(task))

    def add_step_hook(self, hook: Callable[[Runtime], None], every: int = 1) -> None:
        """Run ``hook(rt)`` after every ``every`` steps (for periodic audits)."""
        if every < 1:
            raise UsageError("a step hook's period must be at least 1")
        self._step_hooks.append((every, hook))

    def add_final_hook(self, hook: Callable[[Runtime], None]) -> None:
        """Run ``hook(rt)`` once when all tasks have finished without a failure."""
        self._final_hooks.append(hook)

    # ------------------------------------------------------------------ used by model code

    @types.coroutine
    def point(
        self, op: str, obj: str, *values: object, read: bool = False
    ) -> Generator[object, None, None]:
        """A scheduling point: ``await rt.point("mutex_lock", "mreg_mutex")``.

        Announces the operation the task performs when it resumes; the strategy may run
        other tasks first.  ``read=True`` marks an operation that only reads ``obj`` (two
        reads of one object commute; exploration with reduction uses this).  ``values`` are
        the fields of the op's trace record, in the order its declaration names them
        (:func:`concsim.engine.define_event`): plain ints, strings, bools, stored as they
        are and formatted only by a trace view.
        """
        # A generator itself (no helper generator to create per point): the body runs when
        # the task awaits it, right away.
        t = self.current
        assert t is not None, "rt.point() awaited outside a model task"
        t.op = op
        t.obj = obj
        t.values = values
        t.read = read
        yield _SWITCH

    def access(self, obj: str, write: bool = True) -> None:
        """Report that the running step reads (``write=False``) or writes ``obj``.

        This is the step's *footprint*, what partial-order reduction decides dependence
        by: two steps of different tasks are dependent when they access a common object
        and not both only read it.  Every model object another task can observe reports
        its accesses here (a lock, the page table, the SLAT, a refcount, and whatever an
        oracle or assertion reads inside the step).  Recorded only when an observer is
        attached; otherwise one attribute test.
        """
        obs = self.observer
        if obs is not None:
            obs.touch(obj, write)

    def event(self, op: str, obj: str, *values: object) -> None:
        """Record a non-yielding event in the trace (a state change inside a step).

        ``values`` are the fields of the op's record (see :meth:`point`).  Model code that
        computes them guards the call with ``if rt.tracing:`` so an untraced run builds
        nothing."""
        if self.tracing:
            t = self.current
            entry = (self.step, t.name if t else "-", op, obj, values, False, False)
            self.trace.append(_tuple_new(TraceEntry, entry))

    def choose(self, label: str, n: int) -> int:
        """An environment choice among ``n`` outcomes; ``0`` is the ordinary one.

        It is drawn through the strategy and recorded in the schedule, so it replays.
        """
        if n <= 1:
            return 0
        c = self.strategy.pick_env(self, label, n)
        self._env_at.append(len(self.choices))
        self.choices.append(c)
        self.choice_envs.append(c)
        obs = self.observer
        if obs is not None:
            obs.env(label, n)
        if self.tracing:
            self.event("choose", label, c, n)
        return c

    @property
    def choice_kinds(self) -> bytearray:
        """What each choice meant, in order: ``TASK_CHOICE`` or ``ENV_CHOICE`` (the typed
        record; ``choices`` is its codec form)."""
        kinds = bytearray(len(self.choices))  # TASK_CHOICE is 0
        for i in self._env_at:
            kinds[i] = ENV_CHOICE
        return kinds

    def count(self, counter: str, by: int = 1) -> None:
        """Add to a scenario counter (reported in ``stats``)."""
        self.stats[counter] = self.stats.get(counter, 0) + by

    def fail(
        self,
        kind: str,
        message: str,
        *,
        invariant: str | None = None,
        **details: Any,
    ) -> FailureSignal:
        """Build the signal that stops the run with a failure: ``raise rt.fail(...)``."""
        t = self.current
        return FailureSignal(
            Failure(kind, message, self.step, t.name if t else None, invariant, details)
        )

    def check(
        self, fact: bool, message: str, *, invariant: str | None = None, **details: Any
    ) -> None:
        """An assertion point: the code relies on ``fact``; report the first run where it is
        false as an ``assertion`` failure."""
        if not fact:
            raise self.fail("assertion", message, invariant=invariant, **details)

    def block(self, on: Waitable) -> Awaitable[None]:
        """Block the current task on ``on`` until someone calls :meth:`wake_all` for it.

        The caller has already queued the task wherever ``on`` keeps its waiters; usage:
        ``waiters.append(rt.current); await rt.block(self)``.
        """
        t = self.current
        assert t is not None
        t.state = BLOCKED
        t.blocked_on = on
        t.op = "wake"
        t.obj = on.name
        t.values = ()
        t.read = False
        self._runnable.remove(t)
        return _switch()

    def wake_all(self, waiters: list[Task]) -> None:
        """Make every task in ``waiters`` runnable again and empty the list."""
        runnable = self._runnable
        for t in waiters:
            if t.state == BLOCKED:
                t.state = RUNNABLE
                t.blocked_on = None
                bisect.insort(runnable, t, key=_task_id)
        waiters.clear()

    # ------------------------------------------------------------------ strategy's view

    def candidates(self) -> list[Task]:
        """The tasks the next choice picks among, in choice order (see the module doc)."""
        cur = self.current
        if cur is not None and cur.state == RUNNABLE:
            return [cur, *(t for t in self._runnable if t is not cur)]
        return list(self._runnable)

    def candidate(self, k: int) -> Task:
        """``candidates()[k]`` without building the list (what choice ``k`` runs)."""
        cur = self.current
        runnable = self._runnable
        if cur is not None and cur.state == RUNNABLE:
            if k == 0:
                return cur
            i = runnable.index(cur)
            return runnable[k - 1] if k <= i else runnable[k]
        return runnable[k]

    def runnable(self) -> list[Task]:
        return list(self._runnable)

    # ------------------------------------------------------------------ the loop

    def run(self) -> Failure | None:
        """Run every task to completion (or to the first failure); return the failure."""
        if self._ran:
            raise UsageError("run() called twice: a runtime is single-use")
        self._ran = True
        try:
            self._loop()
            if self.failure is None:
                self.current = None
                for hook in self._final_hooks:
                    hook(self)
        except FailureSignal as sig:
            self.failure = sig.failure
            # The task whose step failed has no next step; a step limit stops before one.
            failing = self.current if sig.failure.kind != "step-limit" else None
            self.unfinished = tuple(t.id for t in self._runnable if t is not failing)
        finally:
            self._finished = True
            self._close_all()
        return self.failure

    def _loop(self) -> None:
        # Hot path: locals for everything touched per step; no allocation unless tracing.
        runnable = self._runnable
        strategy = self.strategy
        choices = self.choices
        picked = self.choice_tasks
        tracing = self.tracing
        trace = self.trace
        hooks = self._step_hooks
        max_steps = self.max_steps
        step = self.step
        new = _tuple_new
        obs = self.observer
        cur: Task | None = None
        while True:
            n = len(runnable)
            if n == 0:
                self.step = step
                self._end_of_tasks()
                return
            if n == 1:
                nxt = runnable[0]
                ci = -1
            else:
                self.step = step
                self.current = cur
                k = strategy.pick_task(self, n)
                # A strategy may attach or detach the observer, and stop or resume tracing,
                # at a task choice (DFS does while it replays steps it has run before).
                obs = self.observer
                tracing = self.tracing
                choices.append(k)
                if cur is not None and cur.state == RUNNABLE:
                    if k == 0:
                        nxt = cur
                    else:
                        i = runnable.index(cur)
                        nxt = runnable[k - 1] if k <= i else runnable[k]
                        self.preemptions += 1
                else:
                    nxt = runnable[k]
                picked.append(nxt.id)
                ci = len(choices) - 1
            step += 1
            if step > max_steps:
                self.step = step - 1
                raise FailureSignal(
                    Failure(
                        "step-limit",
                        f"the run did not finish within {max_steps} steps: suspected livelock "
                        f"(tasks still runnable: {', '.join(t.name for t in runnable)})",
                        step - 1,
                        nxt.name,
                        None,
                        {"runnable": [t.name for t in runnable]},
                    )
                )
            self.step = step
            self.current = nxt
            if obs is not None:
                obs.begin_step(nxt, ci)
            if tracing:
                # A TraceEntry without NamedTuple's Python-level __new__ (hot path).
                trace.append(
                    new(TraceEntry, (step, nxt.name, nxt.op, nxt.obj, nxt.values, True, nxt.read))
                )
            try:
                req = nxt.coro.send(None)
            except StopIteration:
                nxt.state = DONE
                runnable.remove(nxt)
                if obs is not None:
                    obs.touch(nxt.name, True)  # the exit, which its joiners read
                if tracing:
                    trace.append(new(TraceEntry, (step, nxt.name, "exit", "", (), False, False)))
                if nxt.joiners or nxt.dynamic:
                    self._exited(nxt)
                cur = nxt
                continue
            except FailureSignal:
                raise
            except (GeneratorExit, Interrupted):
                raise
            except BaseException as exc:  # SystemExit, KeyboardInterrupt: the model's failure
                raise FailureSignal(_exception_failure(nxt, exc, step)) from None
            if req is not _SWITCH:
                raise FailureSignal(_foreign_failure(nxt, req, step))
            if hooks:
                for every, hook in hooks:
                    if step % every == 0:
                        hook(self)
            cur = nxt

    def _exited(self, task: Task) -> None:
        if task.dynamic:
            self.event("exited", task.name)
        if task.joiners:
            self.wake_all(task.joiners)

    def _end_of_tasks(self) -> None:
        blocked = [t for t in self.tasks if t.state == BLOCKED]
        if blocked:
            f = _deadlock_failure(blocked, self.step)
            if self.deadlock_invariant is not None:
                f = Failure(f.kind, f.message, f.step, f.task, self.deadlock_invariant, f.details)
            raise FailureSignal(f)

    def _close_all(self) -> None:
        self.current = None
        for t in self.tasks:
            if t.state != DONE:
                t.state = DONE
                with contextlib.suppress(BaseException):
                    t.coro.close()
        self._runnable.clear()


_tuple_new: Callable[[type[TraceEntry], tuple[Any, ...]], TraceEntry] = tuple.__new__


def _task_id(t: Task) -> int:
    return t.id


class _JoinTarget:
    """What a task blocked in ``join`` waits on (for the deadlock report)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.name = task.name

    def holders(self) -> list[Task]:
        return [self.task]


def _exception_failure(task: Task, exc: BaseException, step: int) -> Failure:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Failure(
        "exception",
        f"task {task.name!r} raised {type(exc).__name__}: {exc}",
        step,
        task.name,
        None,
        {"traceback": tb, "exception": type(exc).__name__},
    )


def _foreign_failure(task: Task, req: object, step: int) -> Failure:
    what = type(req).__module__ + "." + type(req).__qualname__
    return Failure(
        "foreign-await",
        f"task {task.name!r} awaited a {what}, which is not a concsim scheduling point: model "
        "tasks may only await concsim primitives (rt.point, the kernel locks); an asyncio or "
        "trio primitive would escape the scheduler and break determinism",
        step,
        task.name,
        None,
        {"awaited": what},
    )


def _deadlock_failure(blocked: list[Task], step: int) -> Failure:
    """Describe a state where every unfinished task is blocked.

    Follow task -> resource it waits on -> holder of that resource -> ... from each blocked
    task (in id order); the first cycle found is the report.  Without a cycle (a wait that
    nobody will ever end: a lock held by a task that exited, an event never signalled), name
    every blocked task and what it waits on.
    """
    for start in blocked:
        path: list[Task] = []
        t: Task | None = start
        while t is not None and t not in path and t.state == BLOCKED:
            path.append(t)
            on = t.blocked_on
            holders = on.holders() if on is not None else []
            t = holders[0] if holders else None
        if t is not None and t in path:
            cycle = path[path.index(t) :]
            parts = []
            for x in cycle:
                on = x.blocked_on
                held = [getattr(h, "name", str(h)) for h in x.held]
                parts.append(
                    f"task {x.name!r} holds {', '.join(held) or 'nothing'} and waits for "
                    f"{on.name if on else '?'}"
                )
            return Failure(
                "deadlock",
                "deadlock: " + "; ".join(parts),
                step,
                None,
                None,
                {
                    "cycle": [x.name for x in cycle],
                    "locks": [x.blocked_on.name for x in cycle if x.blocked_on is not None],
                },
            )
    parts = []
    for x in blocked:
        on = x.blocked_on
        holders = on.holders() if on is not None else []
        who = ", ".join(f"{h.name!r}" + (" (exited)" if h.state == DONE else "") for h in holders)
        parts.append(
            f"task {x.name!r} waits for {on.name if on else '?'}"
            + (f" held by {who}" if who else " and nothing will wake it")
        )
    return Failure(
        "deadlock",
        "all remaining tasks are blocked: " + "; ".join(parts),
        step,
        None,
        None,
        {
            "blocked": [x.name for x in blocked],
            "locks": [x.blocked_on.name for x in blocked if x.blocked_on is not None],
        },
    )
