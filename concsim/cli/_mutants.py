"""``concsim mutants``: run the mutant catalog and the correct variants (exit 0 only if every
mutant is caught with the expected failure and every correct variant is clean)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from concsim._errors import Interrupted
from concsim.cli._common import _emit_json, _user_errors
from concsim.cli._interrupt import EXIT_INTERRUPTED, interruptible
from concsim.exploration._catalog import CatalogResult, run_catalog


def _table(res: CatalogResult) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"mutant catalog ({res.strategy}, budget {res.budget}, seed {res.seed})")
    for col in ("mutant", "caught", "failure", "expected", "schedules", "time"):
        t.add_column(col)
    for m in res.mutants:
        t.add_row(
            m.name,
            "yes" if m.caught else "NO",
            f"{m.kind}/{m.invariant}" if m.kind else "-",
            m.expected,
            str(m.schedules_to_failure or "-"),
            f"{m.elapsed_s:.2f}s",
        )
    c = Table(title="correct variants")
    for col in ("variant", "scenario", "schedules", "result", "time"):
        c.add_column(col)
    for v in res.clean_variants:
        c.add_row(
            v.name,
            v.scenario,
            str(v.schedules),
            "clean" if v.ok else v.failure,
            f"{v.elapsed_s:.2f}s",
        )
    console = Console(width=120)
    console.print(t)
    if res.clean_variants:
        console.print(c)


@click.command("mutants")
@click.option(
    "--budget",
    type=int,
    default=1000,
    show_default=True,
    help="schedules per mutant (until its first failure) and per correct variant",
)
@click.option("--strategy", default="pct", show_default=True, help="random or pct")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--only", multiple=True, help="run only this mutant (repeatable)")
@click.option("--no-clean", is_flag=True, help="skip the correct variants")
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def mutants_cmd(
    budget: int, strategy: str, seed: int, only: tuple[str, ...], no_clean: bool, as_json: bool
) -> None:
    """Run every catalog mutant until caught, and every correct variant for the budget."""
    with interruptible() as stopped:
        try:
            res = _run(budget, strategy, seed, only, no_clean, as_json, stopped)
        except Interrupted:  # a second Ctrl-C: nothing finished to report
            click.echo("interrupted (Ctrl-C) before any exploration finished", err=True)
            sys.exit(EXIT_INTERRUPTED)
    if as_json:
        _emit_json(res.to_json())
    else:
        _table(res)
        if res.interrupted:
            click.echo("interrupted (Ctrl-C): the tables hold the explorations that finished")
    if res.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(0 if res.ok else 1)


def _run(
    budget: int,
    strategy: str,
    seed: int,
    only: tuple[str, ...],
    no_clean: bool,
    as_json: bool,
    stop: Callable[[], bool],
) -> CatalogResult:
    bar_enabled = sys.stderr.isatty() and not as_json
    if bar_enabled:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("mutants", total=None)

            def progress(label: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=label)

            res = run_catalog(
                budget=budget,
                strategy=strategy,
                seed=seed,
                only=list(only) or None,
                clean=not no_clean,
                progress=progress,
                stop=stop,
            )
    else:
        res = run_catalog(
            budget=budget,
            strategy=strategy,
            seed=seed,
            only=list(only) or None,
            clean=not no_clean,
            stop=stop,
        )
    return res
