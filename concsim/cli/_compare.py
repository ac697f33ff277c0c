"""``concsim compare A B``: two variants side by side on the same seeds.

The numbers come from :func:`concsim._compare.compare`; this module only formats them (a
rich table, ``--json``, ``--plot``).  Registered on the ``cli`` group by one
``add_command`` line in ``_main``.  Exit codes: 0 compared (whatever the failures: a
reviewer reads them in the table), 2 bad input (one line on stderr).
"""

from __future__ import annotations

import sys

import click

from concsim._api import DEFAULT_SCENARIO
from concsim._compare import METRICS, Comparison, check_plot_path, compare, plot_retries
from concsim._errors import UsageError
from concsim.cli._common import _emit_json, _user_errors, fail_usage
from concsim.cli._interrupt import EXIT_INTERRUPTED, interruptible
from concsim.runs import STRATEGIES
from concsim.runs._defaults import setting_values
from concsim.scenarios import parse_param_args

_LABELS = {
    "failures": "failures (schedules)",
    "faults_handled": "faults handled",
    "fault_errors": "  of which failed (to the VMM)",
    "ebusy_retries": "-EBUSY retries",
    "ebusy_retries_per_fault_mean": "-EBUSY retries per fault, mean",
    "ebusy_retries_per_fault_p50": "-EBUSY retries per fault, p50",
    "ebusy_retries_per_fault_p99": "-EBUSY retries per fault, p99",
    "hmm_restarts": "hmm_range_fault restarts",
    "hypercalls": "hypercalls",
    "hypercalls.creation": "  made by region creation",
    "hypercalls.fault": "  made by GPA faults",
    "hypercalls.invalidate": "  made by invalidations",
    "hypercalls.destroy": "  made by region destroy",
    "hypercall_reps": "hypercall reps",
    "pages_mapped_at_creation": "pages mapped at creation",
    "steps_mean": "steps per schedule, mean",
    "steps_p50": "steps per schedule, p50",
    "steps_p99": "steps per schedule, p99",
}


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.3f}"


def _signed(v: float | None) -> str:
    if v is None:
        return "-"
    return ("+" if v > 0 else "") + _num(v)


def _kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{n}" for k, n in kinds.items()) or "none"


def _print_table(cmp: Comparison) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    given = cmp.given_params()
    params = " ".join(given) or "the scenario's defaults"
    console.print(
        f"scenario {cmp.scenario}, {cmp.schedules} schedules, strategy {cmp.strategy}, "
        f"seeds {cmp.seed}..{cmp.seed + cmp.schedules - 1}"
    )
    console.print(f"params: {params}" + (" (others default)" if given else ""), soft_wrap=True)
    table = Table(show_lines=False)
    table.add_column("metric (sum over schedules unless noted)")
    table.add_column(f"A: {cmp.a.variant}", justify="right", overflow="fold")
    table.add_column(f"B: {cmp.b.variant}", justify="right", overflow="fold")
    table.add_column("B - A", justify="right")
    table.add_column("B / A", justify="right")
    ma, mb, diff = cmp.a.metrics(), cmp.b.metrics(), cmp.diff()
    for k in METRICS:
        d = diff[k]
        ratio = d["ratio"]
        table.add_row(
            _LABELS[k],
            _num(ma[k]),
            _num(mb[k]),
            _signed(d["b_minus_a"]),
            "-" if ratio is None else f"{ratio:.3f}",
        )
    console.print(table)
    for side, vs in (("A", cmp.a), ("B", cmp.b)):
        line = f"{side} failures: {_kinds(vs.failure_kinds)}"
        if vs.failure_seeds:
            line += (
                " (first seeds: "
                + ", ".join(f"{k} seed {s}" for k, s in vs.failure_seeds.items())
                + ")"
            )
        console.print(line, soft_wrap=True)


#: Schedules per variant when neither the command line nor the settings say.
DEFAULT_SCHEDULES = 200


@click.command("compare")
@click.argument("a")
@click.argument("b")
@click.option("--scenario", default=None, help=f"scenario name [default: {DEFAULT_SCENARIO}]")
@click.option(
    "--schedules",
    type=int,
    default=None,
    help=f"schedules per variant (seeds SEED .. SEED+N-1) [default: {DEFAULT_SCHEDULES}]",
)
@click.option("--seed", type=int, default=None, help="[default: 0]")
@click.option("--strategy", type=click.Choice(STRATEGIES), default=None, help="[default: random]")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="scenario parameter")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object as the last line")
@click.option(
    "--plot",
    "plot",
    default=None,
    metavar="FILE.png",
    help="draw the -EBUSY retries per fault of both variants (needs matplotlib)",
)
@_user_errors
def compare_cmd(
    a: str,
    b: str,
    scenario: str | None,
    schedules: int | None,
    seed: int | None,
    strategy: str | None,
    params: tuple[str, ...],
    as_json: bool,
    plot: str | None,
) -> None:
    """Run variants A and B on the same seeds and show their numbers side by side.

    A and B are variant names (concsim variants) or user variants, path/to/file.py:Class
    or package.module:Class (see docs/variant-api.md).
    """
    if plot is not None:
        check_plot_path(plot)
    # Not given: CONCSIM_*, [tool.concsim], then the built-ins (as run and explore).
    v = setting_values(
        {"scenario": scenario, "schedules": schedules, "seed": seed, "strategy": strategy}
    )
    with interruptible() as stopped:
        cmp = compare(
            a,
            b,
            scenario=v["scenario"],
            schedules=v["schedules"] if v["schedules"] is not None else DEFAULT_SCHEDULES,
            seed=v["seed"],
            strategy=v["strategy"],
            params=parse_param_args(list(params)),
            stop=stopped,
        )
    plot_error = None
    if plot is not None:
        try:
            plot_retries(cmp, plot)
        except UsageError as e:  # the numbers are printed all the same
            plot_error = str(e)
        except OSError as e:
            plot_error = f"cannot write plot {plot}: {e.strerror or type(e).__name__}"
    if as_json:
        out = cmp.to_json()
        if plot is not None and plot_error is None:
            out["plot"] = plot
        if cmp.interrupted:
            out["interrupted"] = True
        _emit_json(out)
    else:
        _print_table(cmp)
        if plot is not None and plot_error is None:
            click.echo(f"plot of -EBUSY retries per fault written to {plot}")
        if cmp.interrupted:
            click.echo(f"interrupted after {cmp.schedules} schedules per variant (Ctrl-C)")
    if plot_error is not None:
        fail_usage(plot_error)
    if cmp.interrupted:
        sys.exit(EXIT_INTERRUPTED)
