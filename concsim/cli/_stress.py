"""``concsim stress``: a campaign of many seeds across cores or a Dask cluster.

Kept in its own module and registered on the ``concsim`` group with one line, so that the
command and the rest of the CLI can change independently.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from concsim import _api
from concsim._api import DEFAULT_SCENARIO
from concsim._db import scenario_key
from concsim._errors import UsageError
from concsim.artifacts import load_replay
from concsim.campaign import CampaignResult, CampaignSpec, Job, Progress, run_campaign
from concsim.campaign._runner import (
    DEFAULT_BATCH_TIMEOUT_S,
    DEFAULT_KEEP_PER_SIGNATURE,
    MANIFEST,
)
from concsim.campaign._spec import (
    DEFAULT_BUDGET_S,
    SETTING_KEYS,
    SeedRange,
    check_strategy,
    default_strategy,
    load_campaign,
    parse_budget,
    parse_seeds,
)
from concsim.cli._common import _user_errors
from concsim.cli._replay import open_db, replay_first
from concsim.runs import RunConfig, resolve_variant
from concsim.runs._defaults import resolve_settings
from concsim.scenarios import get_scenario, parse_param_args

OUT_ROOT = Path("concsim-out")


def _fresh_out() -> Path:
    """A fresh folder named by the start time; two campaigns started within the same second
    get -2, -3, ... rather than colliding on one --out."""
    stem = OUT_ROOT / f"stress-{time.strftime('%Y%m%d-%H%M%S')}"
    out_path, again = stem, 1
    while out_path.exists():
        again += 1
        out_path = stem.with_name(f"{stem.name}-{again}")
    return out_path


def _latest_out() -> Path:
    found = sorted(p.parent for p in OUT_ROOT.glob(f"stress-*/{MANIFEST}"))
    if not found:
        raise UsageError(f"--resume without --out: no campaign under {OUT_ROOT}/ (pass --out DIR)")
    return found[-1]


def max_local_workers() -> int:
    """The most local worker processes a campaign starts (more only cost memory)."""
    return 4 * (os.cpu_count() or 1)


def _fmt_secs(s: float | None) -> str:
    if s is None:
        return "-"
    n = round(s)
    if n >= 3600:
        return f"{n // 3600}:{n % 3600 // 60:02d}:{n % 60:02d}"
    return f"{n // 60}:{n % 60:02d}"


#: The layered settings (concsim config) a campaign takes: not the base seed (a campaign
#: has a seed range) nor the schedule count (it has a budget).
_LAYERED = frozenset({"scenario", "variant", "strategy", "max_steps", *SETTING_KEYS})


def build_spec(
    *,
    campaign: str | None,
    scenario: str | None,
    variant: str | None,
    strategy: str | None,
    seeds: str | None,
    budget: str | None,
    workers: int | None,
    backend: str,
    scheduler: str | None,
    connect_timeout: float,
    out: str | None,
    resume: bool,
    params: tuple[str, ...],
    max_steps: int | None,
    imports: tuple[str, ...],
    shrink_runs: int = 1000,
    settings: dict[str, Any] | None = None,
    keep_per_signature: int = DEFAULT_KEEP_PER_SIGNATURE,
    batch_timeout: float | None = DEFAULT_BATCH_TIMEOUT_S,
) -> CampaignSpec:
    """Merge the defaults, the named campaign, a resumed manifest and the options."""
    conf: dict[str, Any] = {}
    out_path = Path(out) if out else None
    if resume:
        out_path = out_path or _latest_out()
        mpath = out_path / MANIFEST
        try:
            saved = json.loads(mpath.read_text(encoding="utf-8"))["campaign"]
        except (OSError, ValueError, KeyError, TypeError):
            saved = None  # prepare_out gives the precise error
        if saved is not None:
            lo, hi = saved["seeds"]
            conf = {
                "scenario": saved["scenario"],
                "variant": saved["variant"],
                "strategy": saved["strategy"],
                "params": saved["params"],
                "max_steps": saved["max_steps"],
                "seeds": f"{lo}:{'' if hi is None else hi}",
                "imports": saved.get("imports", []),
                **{k: saved[k] for k in SETTING_KEYS if k in saved},
            }
            if saved.get("sweep"):
                conf["sweep"] = saved["sweep"]
    name = None
    if campaign is not None:
        camp = load_campaign(campaign)
        name = Path(camp.pop("_path")).stem
        camp.pop("description", None)
        conf.update(camp)
    if scenario is not None:
        conf["scenario"] = scenario
    if variant is not None:
        conf["variant"] = variant
    if strategy is not None:
        conf["strategy"] = strategy
    if seeds is not None:
        conf["seeds"] = seeds
    if budget is not None:
        conf["budget"] = budget
    if max_steps is not None:
        conf["max_steps"] = max_steps
    if imports:
        conf["imports"] = list(imports)
    for k, v in (settings or {}).items():
        if v is not None:
            conf[k] = v
    # What neither the options, the campaign file nor a resumed manifest said comes from
    # CONCSIM_* or [tool.concsim], as for run and explore (the built-ins stay the
    # campaign's own defaults below).
    # (A sweep draws its own points: only its options pin them.)
    for k, r in () if conf.get("sweep") else resolve_settings({}).items():
        if k in _LAYERED and k not in conf and r.source != "built-in":
            conf[k] = r.value
    raw_params = dict(conf.get("params") or {})
    raw_params.update(parse_param_args(list(params)))

    for mod in conf.get("imports", []):
        try:
            __import__(mod)
        except ImportError as e:
            raise UsageError(f"--import {mod}: {e}") from None
    if conf.get("sweep"):
        job = _sweep_job(conf, raw_params)
    else:
        scn = get_scenario(conf.get("scenario", DEFAULT_SCENARIO))
        want_variant = conf.get("variant")
        if want_variant is None and scn.name == DEFAULT_SCENARIO:
            # The main job may name its own variant (the mshv model's "after-patch").
            want_variant = getattr(_api, "DEFAULT_VARIANT", None)
        vname, _ = resolve_variant(scn, want_variant)
        resolved = scn.resolve_params(raw_params)
        strat = check_strategy(conf["strategy"]) if "strategy" in conf else default_strategy()
        job = Job(
            scn.name,
            vname,
            dict(resolved),
            strat,
            conf.get("max_steps"),
            tuple(conf.get("imports", [])),
            RunConfig(strategy=strat, **{k: conf[k] for k in SETTING_KEYS if k in conf}),
        )
    seed_range, budget_s, n, out_path = _common_options(
        conf, backend=backend, scheduler=scheduler, workers=workers, out_path=out_path
    )
    return CampaignSpec(
        job=job,
        seeds=seed_range,
        out=out_path,
        budget_s=budget_s,
        workers=n,
        backend=backend,
        scheduler=scheduler,
        connect_timeout=connect_timeout,
        resume=resume,
        name=name,
        shrink_runs=shrink_runs,
        keep_per_signature=keep_per_signature,
        batch_timeout_s=batch_timeout,
    )


def _common_options(
    conf: dict[str, Any],
    backend: str,
    scheduler: str | None,
    workers: int | None,
    out_path: Path | None,
) -> tuple[SeedRange, float | None, int, Path]:
    """What every campaign, a sweep too, takes from its options: the seed range, the budget,
    the backend and scheduler checked, the workers (capped on the local backend) and the
    output folder."""
    seed_range = parse_seeds(conf["seeds"]) if "seeds" in conf else SeedRange(0, None)
    budget_s = parse_budget(conf["budget"]) if "budget" in conf else None
    if budget_s is None and seed_range.hi is None:
        budget_s = DEFAULT_BUDGET_S
    if backend not in ("local", "dask"):
        raise UsageError(f"--backend {backend}: known backends are local and dask")
    if scheduler is not None and backend != "dask":
        raise UsageError("--scheduler needs --backend dask")
    if scheduler is not None and not scheduler.startswith(("tcp://", "tls://", "inproc://")):
        raise UsageError(f"--scheduler {scheduler}: give a scheduler address like tcp://HOST:PORT")
    n = workers if workers is not None else (os.cpu_count() or 1)
    cap = max_local_workers()
    if backend == "local" and n > cap:
        click.echo(
            f"concsim stress: --workers {n} is more than {cap} (4 per core on this machine): "
            f"using {cap}",
            err=True,
        )
        n = cap
    if out_path is None:
        out_path = _fresh_out()
    return seed_range, budget_s, n, out_path


def _sweep_job(conf: dict[str, Any], raw_params: dict[str, Any]) -> Job:
    """The job of a parameter-space sweep: each seed draws its own point; the options pin
    dimensions (the parameters given, a variant, a strategy) and are checked here, once."""
    from concsim.campaign._sweep import SPACES, draw_point

    space = str(conf["sweep"])
    if space not in SPACES:
        raise UsageError(f"sweep = {space!r}: known sweeps are {', '.join(SPACES)}")
    if conf.get("scenario") not in (None, "default"):
        raise UsageError("a sweep draws points of the default scenario; drop --scenario")
    point = draw_point(0, space, fixed=raw_params)
    scn = get_scenario(point.scenario)
    scn.resolve_params(point.params)  # a bad pinned parameter is a one-line error now
    variant = conf.get("variant") or ""
    if variant:
        resolve_variant(scn, variant)
    strat = check_strategy(conf["strategy"]) if conf.get("strategy") else ""
    return Job(
        scn.name,
        variant,
        dict(raw_params),
        strat,
        conf.get("max_steps"),
        tuple(conf.get("imports", [])),
        sweep=space,
    )


class _Bar:
    """The progress bar on stderr (only on a terminal, never with --json)."""

    def __init__(self, spec: CampaignSpec, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=False,
        )
        self.by_time = spec.seeds.size is None
        total = spec.budget_s if self.by_time else spec.seeds.size
        self.task = self.progress.add_task("stress", total=total, info="starting workers")
        self.progress.start()

    def update(self, p: Progress) -> None:
        if not self.enabled:
            return
        info = (
            f"{p.schedules:,} schedules  {p.rate:,.0f}/s  "
            f"failures {p.failures:,} ({p.distinct} distinct)  left {_fmt_secs(p.time_left_s)}"
        )
        if p.lost or p.retried:
            info += f"  lost batches {p.lost} (retried {p.retried})"
        done = p.elapsed_s if self.by_time else p.schedules
        self.progress.update(self.task, completed=done, info=info)

    def event(self, msg: str) -> None:
        if self.enabled:
            self.console.print(f"[yellow]{msg}[/]")
        else:
            click.echo(f"concsim stress: {msg}", err=True)

    def stop(self) -> None:
        if self.enabled:
            self.progress.stop()


def _print_table(res: CampaignResult) -> None:
    from rich.console import Console
    from rich.table import Table

    d = res.summary_json()
    spec = res.spec
    console = Console()
    head = Table(title="concsim stress", show_header=False, box=None)
    job = spec.job
    what = (
        f"sweep {job.sweep}: {job.scenario} / {job.variant or 'a correct variant'} / "
        f"{job.strategy or 'random or pct'}"
        + (
            f" / pinned {', '.join(f'{k}={v}' for k, v in job.params.items())}"
            if job.params
            else ""
        )
        if job.sweep
        else f"{job.scenario} / {job.variant} / {job.strategy}"
    )
    head.add_row("campaign", what + (f"  ({spec.name})" if spec.name else ""))
    head.add_row("seeds", str(spec.seeds) + ("  complete" if res.complete else ""))
    head.add_row("schedules", f"{d['schedules']:,} ({res.session_schedules:,} this run)")
    head.add_row(
        "rate",
        f"{d['schedules_per_s']:,.0f} schedules/s on {res.workers} "
        f"{spec.backend} worker(s), {res.elapsed_s:.1f}s",
    )
    if spec.job.sweep:
        head.add_row(
            "failures",
            f"{d['new_failures']:,} new; known findings {d['known_findings']:,} "
            "(documented hazards of the correct variants, docs/findings.md)",
        )
    else:
        head.add_row("failures", f"{d['failures']:,} ({d['distinct_failures']} distinct)")
    head.add_row("out", str(spec.out))
    console.print(head)
    new = [s for s in d["signatures"] if not s.get("known")]
    known = [s for s in d["signatures"] if s.get("known")]
    if known:
        t = Table(title="known findings (not failures of the campaign)")
        for col in ("count", "known finding", "signature", "first seeds"):
            t.add_column(col)
        for s in known:
            sig = s["signature"].split("/", 1)[1]
            t.add_row(f"{s['count']:,}", s["known"], sig, ", ".join(map(str, s["seeds"])))
        console.print(t)
    if new:
        t = Table(title="new failures by signature" if spec.job.sweep else "failures by signature")
        for col in ("count", "signature", "first seeds", "example message"):
            t.add_column(col)
        for s in new:
            t.add_row(
                f"{s['count']:,}", s["signature"], ", ".join(map(str, s["seeds"])), s["message"]
            )
        console.print(t)
        for s in new:
            path = spec.out / s["folder"] / f"seed-{s['seeds'][0]}.json"
            shrunk = s.get("shrunk", {})
            if "file" in shrunk:
                p, st = shrunk["preemptions"], shrunk["steps"]
                click.echo(
                    f"replay {s['signature']} with: concsim replay {shrunk['file']}  (seed "
                    f"{s['seeds'][0]} shrunk: {p[0]} -> {p[1]} preemptions, {st[0]} -> {st[1]} "
                    "steps)"
                )
            else:
                click.echo(f"replay {s['signature']} with: concsim replay {path}")
    if d["stats"]:
        t = Table(title="per schedule")
        for col in ("counter", "p50", "p90", "p99", "mean"):
            t.add_column(col, justify="right" if col != "counter" else "left")
        for k, v in d["stats"].items():
            t.add_row(k, *(f"{v[c]:g}" for c in ("p50", "p90", "p99", "mean")))
        console.print(t)
    for lost in d["lost_batches"]:
        a, b = lost["seeds"]
        console.print(f"[red]lost batch[/] seeds {a}:{b}: {lost['reason']}")
    if res.interrupted or (not res.complete and spec.seeds.hi is not None):
        console.print(f"resume with: concsim stress --resume --out {spec.out}")


def _save_signatures(res: CampaignResult, db_dir: str | None) -> None:
    """Keep each signature's smallest failing seed in the failure database, so the next
    ``explore`` of the campaign's target replays it first."""
    db = open_db(db_dir)
    if db is None:
        return
    job = res.spec.job
    key = scenario_key(job.scenario, job.variant, job.params)
    for sig in res.summary_json()["signatures"]:
        path = res.spec.out / sig["folder"] / f"seed-{sig['seeds'][0]}.json"
        try:
            rf = load_replay(path)
            db.save(key, rf, sig["signature"])
        except UsageError as e:
            click.echo(f"concsim stress: warning: failure database: {e}", err=True)


@click.command("stress")
@click.option("--campaign", default=None, help="a named campaign (stress/NAME.toml)")
@click.option("--scenario", default=None, help=f"scenario name [default: {DEFAULT_SCENARIO}]")
@click.option("--variant", default=None, help="variant name (default: scenario's)")
@click.option("--strategy", default=None, help="random, pct or dfs [default: pct]")
@click.option("--seeds", default=None, metavar="A:B", help="run seeds A..B-1 ('A:' open-ended)")
@click.option(
    "--budget",
    default=None,
    metavar="TIME",
    help=f"stop after this long, e.g. 60s, 5m [default: {DEFAULT_BUDGET_S:g}s without --seeds]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="worker processes [default: all cores]",
)
@click.option("--backend", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Dask scheduler (tcp://HOST:PORT); without it a LocalCluster",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="seconds to reach the Dask scheduler",
)
@click.option("--out", default=None, help="output folder [default: concsim-out/stress-TIME]")
@click.option("--resume", is_flag=True, help="continue the campaign in --out where it stopped")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object as the last line")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="scenario parameter")
@click.option("--max-steps", type=click.IntRange(min=1), default=None)
@click.option("--depth", type=click.IntRange(min=1), default=None, help="PCT bug depth d")
@click.option("--k", "pct_k", type=click.IntRange(min=1), default=None, help="PCT's k")
@click.option("--preemption-bound", type=click.IntRange(min=0), default=None, help="dfs: at most K")
@click.option(
    "--shrink-runs",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="at the end, shrink the smallest seed of each failure signature with up to this "
    "many runs into failures/<signature>/shrunk.json (0: do not shrink)",
)
@click.option(
    "--replay-first",
    "replay_dir",
    default=None,
    metavar="DIR",
    help="first replay every counterexample saved under DIR against the campaign's variant "
    "(one line each on stderr; one that still fails makes the exit code 1)",
)
@click.option(
    "--db",
    "db_dir",
    default=None,
    metavar="DIR",
    help="keep the smallest seed of each failure signature in this failure database "
    "[default: $CONCSIM_DB, else .concsim; 'off' to skip]",
)
@click.option(
    "--batch-timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_BATCH_TIMEOUT_S,
    show_default=True,
    metavar="SECONDS",
    help="a batch still running after this long has hung (an endless loop in the model or "
    "variant, a stopped worker): its worker is replaced and the seed it was running is "
    "reported as a 'hang' failure with a replay file (local backend)",
)
@click.option(
    "--keep-per-signature",
    type=click.IntRange(min=1),
    default=DEFAULT_KEEP_PER_SIGNATURE,
    show_default=True,
    help="replay files kept per failure signature (its smallest seeds); every failing seed "
    "is still counted in the manifest",
)
@click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    help="import MODULE in every worker (registers your own scenarios)",
)
@click.option(
    "--bench",
    is_flag=True,
    help="measure schedules/s with 1 and 2 workers, local and Dask (--budget each, "
    "median of 3), and exit",
)
@_user_errors
def stress_cmd(
    campaign: str | None,
    scenario: str | None,
    variant: str | None,
    strategy: str | None,
    seeds: str | None,
    budget: str | None,
    workers: int | None,
    backend: str,
    scheduler: str | None,
    connect_timeout: float,
    out: str | None,
    resume: bool,
    as_json: bool,
    params: tuple[str, ...],
    max_steps: int | None,
    depth: int | None,
    pct_k: int | None,
    preemption_bound: int | None,
    shrink_runs: int,
    keep_per_signature: int,
    batch_timeout: float,
    replay_dir: str | None,
    db_dir: str | None,
    imports: tuple[str, ...],
    bench: bool,
) -> None:
    """Run many seeds of a scenario across cores or a Dask cluster.

    Every failure is written to the out folder as a replay file the moment it is found;
    Ctrl-C stops cleanly and --resume continues where the campaign stopped.  Exit code 0:
    no failure, 1: failures (or lost batches), 130: interrupted, 2: bad arguments.
    """
    if bench:
        from concsim.campaign._bench import print_bench, scaling_bench

        r = scaling_bench(
            scenario=scenario or DEFAULT_SCENARIO,
            variant=variant,
            seconds=parse_budget(budget) if budget else 5.0,
            repeats=3,
        )
        print_bench(r, as_json=as_json)
        return
    spec = build_spec(
        campaign=campaign,
        scenario=scenario,
        variant=variant,
        strategy=strategy,
        seeds=seeds,
        budget=budget,
        workers=workers,
        backend=backend,
        scheduler=scheduler,
        connect_timeout=connect_timeout,
        out=out,
        resume=resume,
        params=params,
        max_steps=max_steps,
        imports=imports,
        shrink_runs=shrink_runs,
        settings={"depth": depth, "k": pct_k, "preemption_bound": preemption_bound},
        keep_per_signature=keep_per_signature,
        batch_timeout=batch_timeout,
    )
    first_failing = 0
    if replay_dir is not None:
        # the files keep their own parameters, but for the ones given with --param
        first = replay_first(replay_dir, spec.job.variant, parse_param_args(list(params)), err=True)
        first_failing = sum(v.verdict in ("still fails", "fails differently") for v in first)
    bar = _Bar(spec, enabled=not as_json and sys.stderr.isatty())
    try:
        res = run_campaign(spec, on_progress=bar.update, on_event=bar.event)
    finally:
        bar.stop()
    _save_signatures(res, db_dir)
    if as_json:
        click.echo(json.dumps(res.summary_json()))
    else:
        _print_table(res)
    if res.interrupted:
        sys.exit(130)
    sys.exit(1 if res.tally.new_failures or res.tally.lost or first_failing else 0)
