"""The saved counterexamples first: ``--replay-first DIR`` of ``explore`` and ``stress``, and
the failure database (:mod:`concsim._db`)."""

from __future__ import annotations

from typing import Any

import click

from concsim._db import FailureDB, db_root
from concsim._errors import UsageError
from concsim._replaycheck import ERROR, PASSES, ReplayVerdict, check_replay, check_replays
from concsim.artifacts import replay_from_result
from concsim.runs import RunResult


def replay_first(
    folder: str, variant: str, params: dict[str, Any], *, err: bool
) -> list[ReplayVerdict]:
    """``--replay-first DIR``: check every saved counterexample under ``folder`` against
    ``variant`` before new schedules run; print one line per file (on stderr if ``err``)."""
    verdicts = check_replays([folder], variant, params)
    for v in verdicts:
        click.echo(f"replay-first: {v.line()}", err=err)
    return verdicts


def open_db(db_dir: str | None) -> FailureDB | None:
    root = db_root(db_dir)
    return FailureDB(root) if root is not None else None


def replay_saved(db: FailureDB, key: str, *, err: bool) -> list[ReplayVerdict]:
    """Replay the saved failures of ``key``: say which are fixed (and forget them); return
    those that still fail."""
    failing: list[ReplayVerdict] = []
    for entry in db.entries(key):
        v = check_replay(str(entry.path))
        if v.verdict == PASSES:
            db.remove(entry)
            click.echo(f"failure database: fixed: {entry.signature} ({entry.path})", err=err)
        elif v.verdict == ERROR:
            db.remove(entry)
            click.echo(
                f"failure database: dropped {entry.path}, it cannot be replayed any more "
                f"({v.message})",
                err=err,
            )
        else:
            click.echo(f"failure database: still fails: {v.line()}", err=err)
            failing.append(v)
    return failing


def save_to_db(
    db: FailureDB, key: str, result: RunResult, original: str | None, *, err: bool
) -> None:
    """Keep a new failure; a database that cannot be written is a warning, not an error."""
    assert result.failure is not None
    rf = replay_from_result(result, original=original)
    try:
        path = db.save(key, rf, result.failure.signature)
    except UsageError as e:
        click.echo(f"concsim: warning: failure database: {e}", err=True)
        return
    if path is not None:
        click.echo(f"failure database: saved {path}", err=err)
