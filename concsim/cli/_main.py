"""The ``concsim`` command line.

Exit codes, everywhere: 0 no failure, 1 a failure was found, 2 a usage or input error (one
line on stderr, never a traceback).  With ``--json`` the last line printed is one JSON
object.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from concsim._api import DEFAULT_SCENARIO, replay, run, save_failure
from concsim._errors import UsageError
from concsim.cli._common import (
    OneLineErrors,
    _emit_json,
    _refuse_adhoc,
    _user_errors,
    fail_usage,
)
from concsim.engine import format_trace
from concsim.runs import RunResult, resolve_variant
from concsim.runs._defaults import SETTINGS, layered_config, resolve_settings
from concsim.scenarios import all_scenarios, get_scenario, parse_param_args
from concsim.strategies._pct import MAX_DEPTH

if TYPE_CHECKING:
    pass


def _print_result(res: RunResult, *, show_trace: bool) -> None:
    head = f"scenario {res.scenario}, variant {res.variant}, strategy {res.strategy}"
    if res.seed is not None:
        head += f", seed {res.seed}"
    click.echo(head)
    click.echo(f"steps: {res.steps}   trace_sha256: {res.trace_sha256}")
    if res.stats:
        click.echo("stats: " + ", ".join(f"{k}={v}" for k, v in res.stats.items()))
    if res.failure is None:
        click.echo("result: ok, no failure")
        return
    f = res.failure
    inv = f" [{f.invariant}]" if f.invariant else ""
    click.echo(f"FAILURE {f.kind}{inv} at step {f.step}" + (f" in task {f.task}" if f.task else ""))
    click.echo(f"  {f.message}")
    if show_trace and res.trace:
        click.echo("last steps of the trace:")
        tail = [e for e in res.trace if e.step > f.step - 25]
        click.echo(format_trace(tail, fail_step=f.step))
    if "traceback" in f.details:
        click.echo(f.details["traceback"].rstrip())
    click.echo(f"schedule: {res.schedule}")
    click.echo(f"replay with: {res.replay_command()}")


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="concsim")
@click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    help="import a plug-in module (its scenarios and drivers) first; repeatable; "
    "child processes import it too (CONCSIM_IMPORT)",
)
@_user_errors
def cli(imports: tuple[str, ...]) -> None:
    """concsim: a deterministic concurrency simulator for HMM drivers (mshv movable memory
    regions, lib/test_hmm.c) and the kernel memory management they race."""
    if imports:
        from concsim.scenarios._plugins import add_env_modules

        add_env_modules(list(imports))


_scenario_opt = click.option(
    "--scenario", default=DEFAULT_SCENARIO, show_default=True, help="scenario name"
)
_variant_opt = click.option("--variant", default=None, help="variant name (default: scenario's)")
_param_opt = click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="scenario parameter"
)


@cli.command("run")
@click.option("--scenario", default=None, help="scenario name [default: default]")
@_variant_opt
@click.option("--seed", type=click.IntRange(min=0), default=None, help="seed [default: 0]")
@click.option(
    "--strategy",
    default=None,
    help="random | pct | dfs (dfs: --seed S is the search's S-th execution) [default: random]",
)
@click.option("--schedule", default=None, help="replay this schedule string (cs1:...)")
@_param_opt
@click.option("--max-steps", type=click.IntRange(min=1), default=None)
@click.option("--depth", type=click.IntRange(1, MAX_DEPTH), default=None, help="PCT bug depth d")
@click.option("--k", "pct_k", type=click.IntRange(min=1), default=None, help="PCT's k")
@click.option("--preemption-bound", type=click.IntRange(min=0), default=None, help="dfs")
@click.option("--no-reduction", is_flag=True, help="dfs: no partial-order reduction")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object as the last line")
@click.option("--save", "save_dir", default=None, help="write a replay file here on failure")
@_user_errors
def run_cmd(
    scenario: str | None,
    variant: str | None,
    seed: int | None,
    strategy: str | None,
    schedule: str | None,
    params: tuple[str, ...],
    max_steps: int | None,
    depth: int | None,
    pct_k: int | None,
    preemption_bound: int | None,
    no_reduction: bool,
    as_json: bool,
    save_dir: str | None,
) -> None:
    """Run one schedule of a scenario (schedule 0 of its run configuration).

    Settings not given come from the environment (CONCSIM_SEED, ...), [tool.concsim] in
    pyproject.toml, then the built-ins: see 'concsim config'."""
    cfg, _ = layered_config(
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
        },
        params=parse_param_args(list(params)),
        schedule=schedule,
    )
    if depth is not None and cfg.strategy != "pct":
        raise UsageError("--depth applies to --strategy pct only")
    if (no_reduction or preemption_bound is not None) and cfg.strategy != "dfs":
        raise UsageError("--no-reduction and --preemption-bound apply to --strategy dfs only")
    res = run(config=cfg, trace=True)
    save_error = None
    if save_dir is not None and not res.ok:
        try:
            save_failure(res, save_dir)
        except (UsageError, OSError) as e:  # print the failure anyway: nothing is lost
            save_error = str(e) if isinstance(e, UsageError) else f"{e.strerror}"
    if as_json:
        _emit_json(res.to_json())
    else:
        _print_result(res, show_trace=True)
    if save_error is not None:
        fail_usage(f"--save {save_dir}: the replay file was not written: {save_error}")
    sys.exit(0 if res.ok else 1)


@cli.command("replay")
@click.argument("files", nargs=-1, required=True, metavar="FILE|DIR...")
@click.option(
    "--variant",
    default=None,
    help="replay against this variant instead of the file's own (the fix under review), "
    "following the schedule by task identity",
)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="override a parameter")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--trace",
    "trace_view",
    type=click.Choice(["text", "perfetto", "mermaid", "png"]),
    default=None,
    help="print (or write with -o) the trace in this view instead of the summary "
    "(png: a picture of the perfetto view, needs -o and matplotlib)",
)
@click.option(
    "-o", "--output", default=None, help="write the --trace view to this file (atomically)"
)
@_user_errors
def replay_cmd(
    files: tuple[str, ...],
    variant: str | None,
    params: tuple[str, ...],
    as_json: bool,
    trace_view: str | None,
    output: str | None,
) -> None:
    """Rerun replay files and say whether they reproduce.

    One FILE without --variant: rerun it exactly (the trace, bit for bit).  Several files,
    folders (every *.json under them), --variant or --param: check each counterexample
    against the variant: "still fails" (same signature), "fails differently" or "passes"
    (the fix survives it).  Exit code 1 if any still fails or fails differently.
    """
    from concsim._replaycheck import is_single_file

    paths = list(files)
    if variant is None and not params and is_single_file(paths):
        _replay_one(paths[0], as_json, trace_view, output)
        return
    if trace_view is not None or output is not None:
        raise UsageError("--trace and -o show one exact replay: give one FILE, no --variant")
    _replay_many(paths, variant, parse_param_args(list(params)), as_json)


def _replay_many(
    paths: list[str], variant: str | None, params: dict[str, str], as_json: bool
) -> None:
    from concsim._replaycheck import (
        ERROR,
        FAILS_DIFFERENTLY,
        PASSES,
        STILL_FAILS,
        check_replay,
        replay_files,
    )

    found = replay_files(paths)
    verdicts = []
    single = len(found) == 1
    for path in found:
        v = check_replay(path, variant, params, trace=single)
        verdicts.append(v)
        if not as_json:
            click.echo(v.line())
    counts = {
        k: sum(1 for v in verdicts if v.verdict == k)
        for k in (STILL_FAILS, FAILS_DIFFERENTLY, PASSES, ERROR)
    }
    if as_json:
        _emit_json({"files": [v.to_json() for v in verdicts], "counts": counts})
    else:
        if single and verdicts[0].result is not None and verdicts[0].verdict != PASSES:
            _print_result(verdicts[0].result, show_trace=True)
        click.echo(
            f"{len(verdicts)} file(s): {counts[STILL_FAILS]} still fail, "
            f"{counts[FAILS_DIFFERENTLY]} fail differently, {counts[PASSES]} pass"
            + (f", {counts[ERROR]} could not be replayed" if counts[ERROR] else "")
        )
    if counts[STILL_FAILS] or counts[FAILS_DIFFERENTLY]:
        sys.exit(1)
    if counts[ERROR]:
        sys.exit(2)
    sys.exit(0)


def _replay_one(file: str, as_json: bool, trace_view: str | None, output: str | None) -> None:
    from concsim.artifacts import load_replay

    if output is not None and trace_view is None:
        raise UsageError("-o/--output needs --trace text|perfetto|mermaid")
    if trace_view == "png" and output is None:
        raise UsageError("--trace png writes an image: give it an -o FILE.png")
    if trace_view == "png" and output is not None and not output.lower().endswith(".png"):
        raise UsageError(f"--trace png writes a PNG: give it an -o FILE.png, not {output!r}")
    if trace_view is not None and output is None and as_json:
        raise UsageError("--json and --trace both print to stdout: give --trace an -o FILE")
    _refuse_adhoc(load_replay(file), file)
    out = replay(file)
    res = out.result
    if trace_view is not None:
        from pathlib import Path

        from concsim.artifacts import atomic_write_text, render_view

        title = f"concsim {res.scenario}/{res.variant}"
        if trace_view == "png":
            from concsim.artifacts import to_perfetto
            from concsim.artifacts._timeline_png import render_timeline_png, write_png

            assert output is not None
            png = render_timeline_png(to_perfetto(res.trace, res.failure, title=title))
            try:
                write_png(Path(output), png)
            except OSError as e:
                raise UsageError(f"cannot write {output}: {e.strerror}") from None
            text = ""
        else:
            text = render_view(
                trace_view,
                res.trace,
                res.failure,
                title=title,
                metadata={"replay_file": file, "schedule": res.schedule, "seed": res.seed},
            )
        if output is None:
            click.echo(text, nl=False)
            sys.exit(0 if res.ok else 1)
        try:
            if trace_view != "png":
                atomic_write_text(Path(output), text)
        except OSError as e:
            raise UsageError(f"cannot write {output}: {e.strerror}") from None
    if as_json:
        obj = res.to_json()
        obj["reproduced"] = out.reproduced
        obj["expected"] = out.expected
        if output is not None:
            obj["trace_output"] = output
        _emit_json(obj)
    else:
        _print_result(res, show_trace=True)
        click.echo(
            "reproduced: "
            + ("yes (same failure kind, same trace hash)" if out.reproduced else "NO")
        )
        if not out.same_trace:
            click.echo(f"  expected trace_sha256 {out.expected.get('trace_sha256')}")
        if output is not None:
            click.echo(f"{trace_view} trace written to {output}")
    sys.exit(0 if res.ok else 1)


@cli.command("bench")
@click.option("--steps", type=click.IntRange(min=1000), default=200_000, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--region",
    is_flag=True,
    help="instead: create and invalidate a fully populated region (1 GiB default)",
)
@click.option(
    "--pages",
    type=click.IntRange(min=1),
    default=262_144,
    show_default=True,
    help="region size for --region",
)
@click.option(
    "--model",
    is_flag=True,
    help="instead: schedules/s and model steps/s of the default scenario against the floor",
)
@click.option(
    "--schedules",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="schedules per round for --model",
)
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def bench_cmd(
    steps: int, repeats: int, region: bool, pages: int, model: bool, schedules: int, as_json: bool
) -> None:
    """Measure the engine's steps/s against the bare coroutine-driving floor (or, with
    --region, region creation and invalidation at scale against before-patch creation; with
    --model, the default scenario's schedules/s and model steps/s against the floor)."""
    from concsim._bench import bench_engine, bench_model, bench_region, model_line

    if region and model:
        raise UsageError("--region and --model are two different benchmarks: pick one")
    if model:
        rm = bench_model(schedules=schedules, repeats=repeats, floor_steps=steps)
        if as_json:
            _emit_json(rm)
        else:
            click.echo(model_line(rm))
        return
    if region:
        rr = bench_region(pages=pages, repeats=repeats)
        if as_json:
            _emit_json(rr)
        else:
            click.echo(
                f"{pages:,} pages, median of {repeats} (CPU time): after-patch create "
                f"{rr['after_patch_create_ms']} ms ({rr['pages_mapped_at_creation']:,} pages "
                f"mapped), invalidate {rr['after_patch_invalidate_ms']} ms; before-patch "
                f"create {rr['before_patch_create_ms']} ms, invalidate "
                f"{rr['before_patch_invalidate_ms']} ms; create ratio "
                f"{rr['create_ratio_after_vs_before']}"
            )
        return
    r = bench_engine(steps=steps, repeats=repeats)
    if as_json:
        _emit_json(r)
    else:
        click.echo(
            f"engine: {r['engine_steps_per_s']:,} steps/s   floor: {r['floor_steps_per_s']:,} "
            f"steps/s   ratio: {r['ratio']:.2f}   ({r['tasks']} tasks, {r['steps']:,} steps, "
            f"median of {r['repeats']})"
        )


@cli.command("scenarios")
@click.option("--json", "as_json", is_flag=True)
def scenarios_cmd(as_json: bool) -> None:
    """List the scenarios and their parameters."""
    items: list[dict[str, Any]] = [
        {
            "name": s.name,
            "summary": s.summary,
            "default_variant": s.default_variant,
            "variants": list(s.variants()),
            "params": [
                {"name": p.name, "type": p.type.__name__, "default": p.default, "help": p.help}
                for p in s.params
            ],
        }
        for s in all_scenarios()
    ]
    if as_json:
        _emit_json({"scenarios": items})
        return
    for it in items:
        click.echo(f"{it['name']}: {it['summary']}")
        click.echo(f"  variants: {', '.join(it['variants'])} (default {it['default_variant']})")
        for p in it["params"]:
            click.echo(f"  --param {p['name']}=<{p['type']}>  default {p['default']}: {p['help']}")


@cli.command("variants")
@click.option("--scenario", default=None, help="only this scenario's variants")
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def variants_cmd(scenario: str | None, as_json: bool) -> None:
    """List the variants each scenario accepts."""
    scns = [get_scenario(scenario)] if scenario else all_scenarios()
    seen: dict[str, dict[str, Any]] = {}
    for s in scns:
        for name, obj in s.variants().items():
            resolve_variant(s, name)
            entry = seen.setdefault(
                name,
                {
                    "name": name,
                    "summary": getattr(obj, "summary", "") or "",
                    "mutant": bool(getattr(obj, "mutant", False)),
                    "scenarios": [],
                },
            )
            entry["scenarios"].append(s.name)
    if as_json:
        _emit_json({"variants": list(seen.values())})
        return
    for v in seen.values():
        tag = " (mutant)" if v["mutant"] else ""
        click.echo(
            f"{v['name']}{tag}: {v['summary'] or '-'}  [scenarios: {', '.join(v['scenarios'])}]"
        )


@cli.command("config")
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def config_cmd(as_json: bool) -> None:
    """Print the resolved run settings and where each came from (environment variables,
    [tool.concsim] in the nearest pyproject.toml, built-ins)."""
    resolved = resolve_settings({})
    if as_json:
        _emit_json({name: {"value": r.value, "source": r.source} for name, r in resolved.items()})
        return
    width = max(len(s.name) for s in SETTINGS)
    for s in SETTINGS:
        r = resolved[s.name]
        shown = "-" if r.value is None else str(r.value)
        click.echo(f"{s.name:<{width}}  {shown:<10}  {r.source}  [{s.env}; {s.help}]")


def main() -> None:
    cli(prog_name="concsim")
