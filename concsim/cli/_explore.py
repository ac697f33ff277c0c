"""``concsim explore`` and ``concsim bench-explore``.

Registered on the ``cli`` group by :mod:`concsim.cli` (one ``add_command`` line each), so
this module and ``_main`` can change independently.  Exit codes as everywhere: 0 no
failure, 1 a failure was found, 2 a usage error (one line on stderr).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from concsim._api import DEFAULT_SCENARIO
from concsim._db import scenario_key
from concsim._errors import Interrupted, UsageError
from concsim.cli._common import _emit_json, _user_errors, fail_usage
from concsim.cli._interrupt import EXIT_INTERRUPTED, interruptible
from concsim.cli._replay import open_db, replay_first, replay_saved, save_to_db
from concsim.exploration import STRATEGIES, Exploration, ExploreResult
from concsim.exploration._explorer import DEFAULT_WINDOW, _exploration
from concsim.runs._defaults import layered_config
from concsim.scenarios import parse_param_args
from concsim.strategies._pct import DEFAULT_DEPTH


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[Exploration], None] | None]:
    """A rich progress bar on stderr, or nothing (not a terminal, or --json)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("exploring", total=total, info="")

        def update(ex: Exploration) -> None:
            cov = ex.coverage
            bar.update(
                task,
                completed=ex.executions,
                info=f"failures {ex.failures}  pairs {cov.pairs_both_orders}/{len(cov.pairs)}",
            )

        yield update


def _print(res: ExploreResult) -> None:
    cov = res.coverage
    click.echo(
        f"scenario {res.scenario}, variant {res.variant}, strategy {res.strategy}"
        + (f", seed {res.seed}" if res.strategy != "dfs" else "")
    )
    done = "complete" if res.complete else f"stopped ({res.stopped_by})"
    if not res.complete and res.open_backtracks is not None:
        done += f", {res.open_backtracks:,} backtrack points still open"
    click.echo(
        f"schedules: {res.schedules_run}   executions: {res.executions}   {done}   "
        f"elapsed: {res.elapsed_s:.3f}s"
    )
    click.echo(
        f"coverage: {cov.ntasks} tasks, {cov.points} scheduling points, racing pairs "
        f"{cov.pairs_both_orders}/{len(cov.pairs)} seen in both orders, PCT bound "
        f"(depth {cov.depth}) {cov.pct_bound():.3g}"
    )
    f = res.first_failure
    if f is None:
        click.echo("result: ok, no failure")
        return
    inv = f" [{f.invariant}]" if f.invariant else ""
    click.echo(f"FAILURE {f.kind}{inv} in schedule #{f.schedule_index}")
    click.echo(f"  {f.message}")
    click.echo(
        f"preemptions: {f.preemptions} -> {f.shrunk_preemptions} after shrinking, steps: "
        f"{f.steps} -> {f.shrunk_steps} ({f.shrink_runs} shrink runs)"
    )
    click.echo(f"schedule: {f.shrunk_schedule}   (original {f.schedule})")
    click.echo(f"replay with: {f.result.replay_command()}")
    if res.stopped_by != "failure":  # --keep-going: every failing schedule was counted
        sigs = sorted(res.signatures.items(), key=lambda kv: (-kv[1], kv[0]))
        click.echo(
            f"failing schedules: {res.failures} of {res.executions}, "
            f"{len(sigs)} distinct signature(s)"
        )
        for sig, n in sigs:
            click.echo(f"  {n:>6}  {sig}")


@click.command("explore")
@click.option("--scenario", default=None, help=f"scenario name [default: {DEFAULT_SCENARIO}]")
@click.option("--variant", default=None, help="variant name (default: scenario's)")
@click.option("--strategy", default=None, help="random | pct | dfs [default: random]")
@click.option("--schedules", type=int, default=None, help="at most this many runs")
@click.option("--seed", type=int, default=None, help="first seed [default: 0]")
@click.option("--depth", type=int, default=None, help=f"PCT bug depth d [default: {DEFAULT_DEPTH}]")
@click.option(
    "--k",
    "pct_k",
    type=click.IntRange(min=1),
    default=None,
    help="PCT's k [default: the scenario's pct_k]",
)
@click.option("--preemption-bound", type=int, default=None, help="dfs: at most K preemptions")
@click.option("--no-reduction", is_flag=True, help="dfs: no partial-order reduction")
@click.option("--until-coverage", is_flag=True, help="stop when racing pairs stop appearing")
@click.option(
    "--coverage-window",
    type=int,
    default=DEFAULT_WINDOW,
    show_default=True,
    help="schedules without a new racing pair before --until-coverage stops",
)
@click.option("--no-shrink", is_flag=True, help="report the failing schedule as found")
@click.option("--keep-going", is_flag=True, help="do not stop at the first failure")
@click.option("--max-steps", type=int, default=None)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object as the last line")
@click.option("--save", "save_dir", default=None, help="write the failure's replay file here")
@click.option(
    "--replay-first",
    "replay_dir",
    default=None,
    metavar="DIR",
    help="first replay every counterexample saved under DIR against this variant; if one "
    "still fails (or fails differently), report it and explore nothing new",
)
@click.option(
    "--db",
    "db_dir",
    default=None,
    metavar="DIR",
    help="the failure database: its failures of this target are replayed first, a new "
    "failure is saved there [default: $CONCSIM_DB, else .concsim; 'off' to skip]",
)
@_user_errors
def explore_cmd(
    scenario: str | None,
    variant: str | None,
    strategy: str | None,
    schedules: int | None,
    seed: int | None,
    depth: int | None,
    pct_k: int | None,
    preemption_bound: int | None,
    no_reduction: bool,
    until_coverage: bool,
    coverage_window: int,
    no_shrink: bool,
    keep_going: bool,
    max_steps: int | None,
    params: tuple[str, ...],
    as_json: bool,
    save_dir: str | None,
    replay_dir: str | None,
    db_dir: str | None,
) -> None:
    """Explore many schedules of a scenario (random walk, PCT or exhaustive DFS).

    Settings not given come from the environment (CONCSIM_SEED, CONCSIM_SCHEDULES, ...),
    [tool.concsim] in pyproject.toml, then the built-ins: see 'concsim config'."""
    if strategy is not None and strategy not in STRATEGIES:
        raise UsageError(
            f"unknown strategy {strategy!r} for explore (known: {', '.join(STRATEGIES)})"
        )
    if max_steps is not None and max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, got {max_steps}")
    if preemption_bound is not None and strategy is not None and strategy != "dfs":
        raise UsageError("--preemption-bound applies to --strategy dfs only")
    if depth is not None and depth < 1:
        raise UsageError(f"--depth must be at least 1, got {depth}")
    cfg, env_schedules = layered_config(
        {
            "scenario": scenario,
            "variant": variant,
            "strategy": strategy,
            "seed": seed,
            "max_steps": max_steps,
            "depth": depth,
            "k": pct_k,
            "preemption_bound": preemption_bound,
            "reduction": False if no_reduction else None,
            "schedules": schedules,
        }
    )
    schedules = env_schedules
    strategy = cfg.strategy
    show = not as_json and sys.stderr.isatty()
    total = schedules if schedules is not None else (100_000 if strategy == "dfs" else 1000)
    ex = _exploration(
        cfg.scenario,
        dict(
            variant=cfg.variant,
            params=parse_param_args(list(params)),
            max_steps=cfg.max_steps,
            strategy=cfg.strategy,
            schedules=schedules,
            seed=cfg.seed,
            depth=cfg.depth,
            k=cfg.k,
            preemption_bound=cfg.preemption_bound,
            reduction=cfg.reduction,
            until_coverage=until_coverage,
            coverage_window=coverage_window,
            stop_on_failure=not keep_going,
            shrink_failure=not no_shrink,
            save_dir=save_dir,
        ),
    )
    first: list[Any] = []
    if replay_dir is not None:
        # the files keep their own parameters, but for the ones given with --param
        given = parse_param_args(list(params))
        first = replay_first(replay_dir, ex.target.variant, given, err=as_json)
        bad = [v for v in first if v.verdict in ("still fails", "fails differently")]
        if bad:
            if as_json:
                _emit_json({"ok": False, "replay_first": [v.to_json() for v in first]})
            else:
                click.echo(
                    f"{len(bad)} of {len(first)} saved counterexample(s) still fail: "
                    "no new schedules explored"
                )
            sys.exit(1)
    db = open_db(db_dir)
    key = scenario_key(ex.target.scenario.name, ex.target.variant, ex.target.params)
    # saved failures of this target first: which are fixed, which still fail (then explore)
    from_db = replay_saved(db, key, err=as_json) if db is not None else []
    with interruptible() as stopped, _progress(show, total) as progress:
        try:
            while not stopped() and ex.step():
                if progress is not None:
                    progress(ex)
        except Interrupted:
            pass
    interrupted = stopped()
    if interrupted:
        ex.stopped_by = "interrupted"
    res = ex.result()
    if db is not None and res.first_failure is not None:
        save_to_db(db, key, res.first_failure.result, res.first_failure.schedule, err=as_json)
    if as_json:
        obj = res.to_json()
        if from_db:
            obj["ok"] = False
            obj["failure_database"] = [v.to_json() for v in from_db]
        if replay_dir is not None:
            obj["replay_first"] = [v.to_json() for v in first]
        _emit_json(obj)
    else:
        _print(res)
        if interrupted:
            click.echo(f"interrupted after {res.executions} schedules (Ctrl-C)")
    if ex.save_error is not None:
        fail_usage(f"--save {save_dir}: the replay file was not written: {ex.save_error}")
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if from_db and not as_json:
        click.echo(f"{len(from_db)} saved failure(s) of this target still fail (failure database)")
    sys.exit(0 if res.ok and not from_db else 1)


@click.command("bench-explore")
@click.option("--target", "targets", multiple=True, metavar="SCENARIO:VARIANT")
@click.option("--all", "include_all", is_flag=True, help="every registered scenario/variant")
@click.option("--seeds", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--max-schedules", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--dfs-limit", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def bench_explore_cmd(
    targets: tuple[str, ...],
    include_all: bool,
    seeds: int,
    max_schedules: int,
    dfs_limit: int,
    as_json: bool,
) -> None:
    """Schedules to the first failure (random, PCT) and DFS executions per target."""
    from concsim.exploration._bench import bench_explore, parse_target, registry_targets

    pairs = (
        [parse_target(t) for t in targets] if targets else registry_targets(include_all=include_all)
    )
    r = bench_explore(pairs, seeds=seeds, max_schedules=max_schedules, dfs_limit=dfs_limit)
    if as_json:
        _emit_json(r)
        return
    click.echo(
        f"{'target':28} {'random':>8} {'pct':>8} {'dfs':>6} {'dfs-noPOR':>9} "
        f"{'dfs full':>9} {'noPOR full':>11}"
    )
    for row in r["targets"]:

        def med(s: str, row: dict[str, object] = row) -> str:
            m = row[s]["median_schedules_to_failure"]  # type: ignore[index]
            return "-" if m is None else f"{m:g}"

        # DFS runs only where exhaustive search is meant to (not on ``default``).
        dfs_cells = ["-"] * 4
        if "dfs" in row:
            d, n = row["dfs"], row["dfs_no_reduction"]
            dfs_cells = [
                str(d["executions_to_failure"] or "-"),
                str(n["executions_to_failure"] or "-"),
                str(d["executions_full"]) + ("" if d["complete"] else "+"),
                str(n["executions_full"]) + ("" if n["complete"] else "+"),
            ]
        click.echo(
            f"{row['scenario'] + '/' + row['variant']:28} {med('random'):>8} {med('pct'):>8} "
            f"{dfs_cells[0]:>6} {dfs_cells[1]:>9} {dfs_cells[2]:>9} {dfs_cells[3]:>11}"
        )
    click.echo(
        f"(random/pct: median schedules to the first failure over {seeds} seeds; dfs: "
        "executions, only on scenarios small enough for it; '+' = capped)"
    )
