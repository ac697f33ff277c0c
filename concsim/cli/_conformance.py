"""``concsim conformance``: the kernel's HMM selftests (hmm-tests.c), ported to the dmirror
model, as a table (exit 0 when every case passes or its failure is a documented
divergence, 1 on any undocumented failure)."""

from __future__ import annotations

import sys

import click

from concsim.cli._common import _emit_json, _user_errors
from concsim.exploration._conformance import (
    DEFAULT_SCHEDULES,
    CaseOutcome,
    run_conformance,
    to_markdown,
    undocumented,
)


def _table(outcomes: list[CaseOutcome]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="hmm-tests.c on the dmirror model")
    for col in ("case", "the selftest expects", "concsim produces", "result"):
        t.add_column(col, overflow="fold")
    for o in outcomes:
        expects = o.expects + (f" [ported partly: {o.partial}]" if o.partial else "")
        result = o.status + (f": {o.divergence}" if o.divergence else "")
        t.add_row(o.name, expects, o.failure or o.produced, result)
    Console(width=160).print(t)


@click.command("conformance")
@click.option(
    "--schedules",
    type=click.IntRange(min=1),
    default=DEFAULT_SCHEDULES,
    show_default=True,
    help="schedules per concurrent case (alternating random walk and PCT)",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--only", multiple=True, help="run only this case (repeatable)")
@click.option(
    "--variant",
    default="dmirror",
    show_default=True,
    help="the dmirror variant to run them on (a mutant shows which selftests catch it)",
)
@click.option("--markdown", is_flag=True, help="print the table as markdown (docs/)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object as the last line")
@_user_errors
def conformance_cmd(
    schedules: int, seed: int, only: tuple[str, ...], variant: str, markdown: bool, as_json: bool
) -> None:
    """Run the ported HMM selftests on the model and print the conformance table."""
    from concsim._errors import UsageError
    from concsim.driver.dmirror import VARIANTS
    from concsim.exploration._hmm_selftests import CASES

    if variant not in VARIANTS:
        raise UsageError(f"unknown dmirror variant {variant!r} (known: {', '.join(VARIANTS)})")
    names = [c.name for c in CASES]
    bad = [n for n in only if n not in names]
    if bad:
        raise UsageError(f"unknown case {bad[0]!r} (known: {', '.join(names)})")
    outcomes = run_conformance(
        schedules=schedules, seed=seed, only=list(only) or None, driver_cls=VARIANTS[variant]
    )
    failing = undocumented(outcomes)
    if as_json:
        from concsim.exploration._hmm_selftests import NOT_PORTED

        _emit_json(
            {
                "ok": not failing,
                "cases": [o.to_json() for o in outcomes],
                "passed": sum(o.passed for o in outcomes),
                "documented_divergences": sum(
                    bool(o.divergence) and not o.passed for o in outcomes
                ),
                "undocumented_failures": [o.name for o in failing],
                "not_ported": NOT_PORTED,
            }
        )
    elif markdown:
        click.echo(to_markdown(outcomes), nl=False)
    else:
        _table(outcomes)
        click.echo(
            f"{sum(o.passed for o in outcomes)} of {len(outcomes)} cases pass; "
            f"{len(failing)} undocumented failure(s)"
        )
    sys.exit(1 if failing else 0)
