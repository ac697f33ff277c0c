"""Random small concurrent programs, for testing partial-order reduction differentially.

The way DPOR implementations are tested (Nidhugg, GenMC, loom): generate many small
programs, explore each exhaustively with and without reduction, and compare what was
found.  A program has 2 to 4 tasks (task 0 may spawn the last one while it runs, and join
it), a few shared variables, mutexes, rwsems, wait queues and completions, and performs
reads, writes, critical sections (lock/trylock/down_read/down_write ... unlock), waits and
wake-ups, environment choices (``rt.choose``) and assertion points; a final hook checks the
final state.  Every object it touches is reported to the step's footprint the way the
model's objects do (a scheduling point announcing it, or ``rt.access``).

A failure's *signature* is its kind and the assertion that fired (``assertion:A3``,
``final:F``, ``deadlock``).  Soundness: the set of signatures DFS reaches is the same with
and without reduction.  Never more work: reduction never runs more executions.

Run many from the command line (the slow run, not in CI)::

    python -m tests.explore.dpor_programs --programs 2000 --seed 0
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from concsim.engine import Runtime, Task
from concsim.kernel import Completion, Mutex, RWSem, WaitQueue
from concsim.strategies import DfsSearch, Pruned

Op = tuple[Any, ...]


@dataclass(frozen=True)
class Program:
    seed: int
    nvars: int
    tasks: tuple[tuple[Op, ...], ...]  # task 0 first; the last may be spawned by task 0
    spawned: bool  # the last task is spawned (and joined) by task 0 at run time
    final: tuple[int, int]  # final hook: vars[v] != c

    def describe(self) -> str:
        lines = [f"program seed={self.seed} vars={self.nvars} spawned={self.spawned}"]
        for i, ops in enumerate(self.tasks):
            lines.append(f"  t{i}: " + "; ".join(_fmt(o) for o in ops))
        lines.append(f"  final: v{self.final[0]} != {self.final[1]}")
        return "\n".join(lines)


def _fmt(op: Op) -> str:
    if op[0] == "cs":
        return f"{op[1]}({op[2]}){{{'; '.join(_fmt(o) for o in op[3])}}}"
    return " ".join(str(x) for x in op)


# ---------------------------------------------------------------------- generation


def generate(seed: int) -> Program:
    rnd = random.Random(seed)
    ntasks = rnd.choice((2, 2, 3, 3, 4))
    nvars = rnd.randint(1, 3)
    budget = {2: 5, 3: 4, 4: 4}[ntasks]  # scheduling points across all tasks, roughly
    counter = [0]
    per_task = [max(1, budget // ntasks + rnd.randint(-1, 1)) for _ in range(ntasks)]
    tasks = [tuple(_ops(rnd, nvars, n, counter)) for n in per_task]
    # Waits need someone who wakes: pair each wait with a wake-up in another task.
    tasks = _pair_waits(rnd, tasks)
    spawned = ntasks >= 3 and rnd.random() < 0.5
    return Program(seed, nvars, tuple(tasks), spawned, (rnd.randrange(nvars), rnd.randint(0, 3)))


def _simple(rnd: random.Random, nvars: int, counter: list[int], *, in_cs: bool) -> Op:
    r = rnd.random()
    v = rnd.randrange(nvars)
    if r < 0.3:
        return ("read", v, rnd.randrange(2))
    if r < 0.6:
        return ("write", v, rnd.randrange(2), rnd.randint(0, 2))
    if r < 0.75:
        return ("choose", rnd.randint(2, 3), rnd.randrange(2))
    counter[0] += 1
    kind = rnd.choice(("var", "reg"))
    if kind == "var":
        return ("assert_var", f"A{counter[0]}", v, rnd.randint(0, 3))
    return ("assert_reg", f"A{counter[0]}", rnd.randrange(2), rnd.randint(0, 3))


def _ops(rnd: random.Random, nvars: int, n: int, counter: list[int]) -> list[Op]:
    out: list[Op] = []
    while len(out) < n:
        r = rnd.random()
        if r < 0.55:
            out.append(_simple(rnd, nvars, counter, in_cs=False))
        elif r < 0.85:
            kind = rnd.choice(("mutex", "mutex", "trylock", "read", "write"))
            lock = rnd.randrange(2)
            body = tuple(_simple(rnd, nvars, counter, in_cs=True) for _ in range(rnd.randint(1, 2)))
            out.append(("cs", kind, lock, body))
        elif r < 0.93:
            out.append(("wait_var", rnd.randrange(2), rnd.randrange(nvars), rnd.randint(1, 2)))
        else:
            out.append(("wait_completion", rnd.randrange(2)))
    return out


def _pair_waits(rnd: random.Random, tasks: list[tuple[Op, ...]]) -> list[tuple[Op, ...]]:
    out = [list(t) for t in tasks]
    for i, ops in enumerate(tasks):
        for op in ops:
            others = [j for j in range(len(tasks)) if j != i]
            j = rnd.choice(others)
            pos = rnd.randint(0, len(out[j]))
            if op[0] == "wait_var":
                _, wq, v, c = op
                out[j].insert(pos, ("write_wake", wq, v, c))
            elif op[0] == "wait_completion":
                out[j].insert(pos, ("complete", op[1]))
    return [tuple(t) for t in out]


# ---------------------------------------------------------------------- running


def build(prog: Program) -> Callable[[Runtime], None]:
    """The world-building function of ``prog`` (called afresh for every execution)."""

    def _build(rt: Runtime) -> None:
        vars_ = [0] * prog.nvars
        mutexes = [Mutex(rt, f"m{i}") for i in range(2)]
        rwsems = [RWSem(rt, f"rw{i}") for i in range(2)]
        wqs = [WaitQueue(rt, f"wq{i}") for i in range(2)]
        comps = [Completion(rt, f"c{i}") for i in range(2)]

        async def simple(op: Op, regs: list[int]) -> None:
            kind = op[0]
            if kind == "read":
                await rt.point("read", f"v{op[1]}", read=True)
                regs[op[2]] = vars_[op[1]]
            elif kind == "write":
                await rt.point("write", f"v{op[1]}")
                vars_[op[1]] = regs[op[2]] + op[3]
            elif kind == "choose":
                regs[op[2]] += rt.choose("env", op[1])
            elif kind == "assert_var":
                # An assertion point reads shared state inside the current step: reported
                # to the footprint, not announced by a point.
                rt.access(f"v{op[2]}", write=False)
                rt.check(vars_[op[2]] != op[3], op[1])
            elif kind == "assert_reg":
                rt.check(regs[op[2]] != op[3], op[1])
            else:  # pragma: no cover
                raise AssertionError(op)

        async def body(ops: tuple[Op, ...], spawn_last: bool) -> None:
            regs = [0, 0]
            child: Task | None = None
            if spawn_last:
                child = rt.spawn(f"t{len(prog.tasks) - 1}", body(prog.tasks[-1], False))
            for op in ops:
                kind = op[0]
                if kind == "cs":
                    _, how, i, inner = op
                    if how == "mutex":
                        await mutexes[i].lock()
                    elif how == "trylock":
                        if not await mutexes[i].trylock():
                            continue
                    elif how == "read":
                        await rwsems[i].down_read()
                    else:
                        await rwsems[i].down_write()
                    for o in inner:
                        await simple(o, regs)
                    if how in ("mutex", "trylock"):
                        await mutexes[i].unlock()
                    elif how == "read":
                        await rwsems[i].up_read()
                    else:
                        await rwsems[i].up_write()
                elif kind == "wait_var":
                    _, q, v, c = op
                    await wqs[q].wait_event(lambda v=v, c=c: vars_[v] >= c, reads=(f"v{v}",))
                elif kind == "write_wake":
                    _, q, v, c = op
                    await rt.point("write", f"v{v}")
                    vars_[v] = c
                    await wqs[q].wake_up_all()
                elif kind == "wait_completion":
                    await comps[op[1]].wait_for_completion()
                elif kind == "complete":
                    await comps[op[1]].complete()
                else:
                    await simple(op, regs)
            if child is not None:
                await rt.join(child)

        n = len(prog.tasks) - (1 if prog.spawned else 0)
        for i in range(n):
            rt.spawn(f"t{i}", body(prog.tasks[i], prog.spawned and i == 0))

        def final(rt: Runtime) -> None:
            v, c = prog.final
            rt.check(vars_[v] != c, "F")

        rt.add_final_hook(final)

    return _build


def signature(f: Any) -> str:
    if f.kind == "assertion":
        return f"assertion:{f.message}"
    return f.kind


@dataclass
class DfsOutcome:
    signatures: frozenset[str]
    executions: int
    complete: bool


def dfs(
    build_fn: Callable[[Runtime], None],
    *,
    reduction: bool,
    limit: int = 20_000,
    bound: int | None = None,
    max_steps: int = 10_000,
) -> DfsOutcome:
    """Exhaustive DFS over ``build_fn``'s world, every failure collected."""
    s = DfsSearch(reduction=reduction, preemption_bound=bound)
    sigs: set[str] = set()
    while s.executions < limit:
        run = s.new_run()
        rt = Runtime(run, max_steps=max_steps)
        build_fn(rt)
        run.attach(rt)
        pruned = False
        try:
            f = rt.run()
        except Pruned:
            pruned, f = True, None
        if f is not None:
            if f.kind == "exception":
                raise AssertionError(f"the program raised: {f.message}\n{f.details}")
            sigs.add(signature(f))
        unfinished = rt.unfinished if f is not None else ()
        if not s.finish_run(run.finish_steps(), pruned=pruned, unfinished=unfinished):
            return DfsOutcome(frozenset(sigs), s.executions, True)
    return DfsOutcome(frozenset(sigs), s.executions, False)


@dataclass
class Comparison:
    program: Program
    full: DfsOutcome
    reduced: DfsOutcome

    @property
    def agrees(self) -> bool:
        return (
            self.full.signatures == self.reduced.signatures
            and self.reduced.executions <= self.full.executions
        )


def compare(seed: int, *, limit: int = 20_000, bound: int | None = None) -> Comparison | None:
    """Both searches on program ``seed``; None when the full one does not finish."""
    prog = generate(seed)
    b = build(prog)
    full = dfs(b, reduction=False, limit=limit, bound=bound)
    if not full.complete:
        return None
    reduced = dfs(b, reduction=True, limit=limit, bound=bound)
    return Comparison(prog, full, reduced)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--programs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=20_000, help="full-DFS executions per program")
    ap.add_argument("--bound", type=int, default=None, help="preemption bound")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    done = skipped = bad = 0
    full_ex = red_ex = 0
    failing = 0
    for seed in range(a.seed, a.seed + a.programs):
        c = compare(seed, limit=a.limit, bound=a.bound)
        if c is None:
            skipped += 1
            continue
        done += 1
        full_ex += c.full.executions
        red_ex += c.reduced.executions
        failing += bool(c.full.signatures)
        if not c.agrees:
            bad += 1
            print(
                f"DISAGREEMENT seed {seed}: full {sorted(c.full.signatures)} "
                f"({c.full.executions} ex), reduced {sorted(c.reduced.signatures)} "
                f"({c.reduced.executions} ex)\n{c.program.describe()}",
                flush=True,
            )
    dt = time.perf_counter() - t0
    print(
        f"programs {a.programs}: compared {done}, skipped {skipped} (full DFS over "
        f"{a.limit} executions), with failures {failing}, disagreements {bad}; executions "
        f"full {full_ex}, reduced {red_ex} ({full_ex / max(red_ex, 1):.1f}x); {dt:.1f} s"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
