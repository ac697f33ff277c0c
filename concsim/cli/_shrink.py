"""``concsim shrink FILE``: make a replay file's failing schedule as small as it goes.

Any replay file: one ``concsim stress`` wrote for a seed, one ``run --save`` wrote, or one
edited by hand.  The result is a new replay file (``x.json`` -> ``x.shrunk.json`` unless
``-o`` says otherwise) holding the shrunk schedule and, as ``original_schedule``, the file's.
Exit codes: 0 written, 2 bad input (one line on stderr), including a file whose schedule
does not fail when replayed.
"""

from __future__ import annotations

import click

from concsim.cli._common import _emit_json, _refuse_adhoc, _user_errors


@click.command("shrink")
@click.argument("file")
@click.option("-o", "--output", default=None, help="where to write (default: <name>.shrunk.json)")
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="runs of the model the shrinker may spend",
)
@click.option(
    "--same",
    type=click.Choice(["invariant", "signature"]),
    default="invariant",
    show_default=True,
    help="what 'fails the same way' means: the same kind and invariant, or also the same "
    "place of detection (a stress campaign's signature)",
)
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def shrink_cmd(file: str, output: str | None, max_runs: int, same: str, as_json: bool) -> None:
    """Shrink the failing schedule of a replay file: fewer preemptions, fewer steps."""
    from concsim.artifacts import load_replay
    from concsim.exploration._minimize import same_signature, shrink_replay_file
    from concsim.exploration._shrink import same_failure

    _refuse_adhoc(load_replay(file), file)
    done = shrink_replay_file(
        file,
        out=output,
        max_runs=max_runs,
        same=same_signature if same == "signature" else same_failure,
    )
    if as_json:
        _emit_json(done.to_json())
        return
    s = done.shrunk
    f = s.result.failure
    assert f is not None
    inv = f" [{f.invariant}]" if f.invariant else ""
    click.echo(f"FAILURE {f.kind}{inv}: {f.message}")
    click.echo(
        f"preemptions: {s.original.preemptions} -> {s.best.preemptions}, "
        f"steps: {s.original.steps} -> {s.best.steps} ({s.runs} shrink runs)"
    )
    click.echo(f"schedule: {s.shrunk_schedule}   (original {s.schedule})")
    click.echo(f"replay with: concsim replay {done.out}")
