"""``concsim db list|show|clear``: the failure database (see :mod:`concsim._db`)."""

from __future__ import annotations

import json
from typing import Any

import click

from concsim._db import DEFAULT_DIR, ENV, Entry, FailureDB, db_root
from concsim._errors import UsageError
from concsim.cli._common import _emit_json, _user_errors

_db_opt = click.option(
    "--db",
    "db_dir",
    default=None,
    metavar="DIR",
    help=f"the database folder [default: ${ENV}, else {DEFAULT_DIR}]",
)


def _open(db_dir: str | None) -> FailureDB:
    root = db_root(db_dir)
    if root is None:
        raise UsageError(f"the failure database is turned off (${ENV}); pass --db DIR")
    return FailureDB(root)


def _describe(e: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"signature": e.signature, "file": str(e.path)}
    try:
        data = json.loads(e.path.read_text(encoding="utf-8"))
        f = data.get("expected", {}).get("failure") or {}
        out["message"] = f.get("message", "")
        out["schedule"] = data.get("schedule")
    except (OSError, ValueError, AttributeError):
        out["message"] = "(unreadable)"
    return out


@click.group("db")
def db_cmd() -> None:
    """The failure database: failures explore, stress and pytest found, replayed first by
    the next run of the same target."""


@db_cmd.command("list")
@_db_opt
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def db_list(db_dir: str | None, as_json: bool) -> None:
    """Every target with saved failures, and their signatures."""
    db = _open(db_dir)
    targets: list[dict[str, Any]] = [
        {"key": k, "failures": [_describe(e) for e in db.entries(k)]} for k in db.targets()
    ]
    if as_json:
        _emit_json({"db": str(db.root), "targets": targets})
        return
    if not targets:
        click.echo(f"no saved failures in {db.root}")
        return
    for t in targets:
        click.echo(f"{t['key']}: {len(t['failures'])} saved failure(s)")
        for f in t["failures"]:
            click.echo(f"  {f['signature']}  {f['file']}")


@db_cmd.command("show")
@click.argument("key")
@_db_opt
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def db_show(key: str, db_dir: str | None, as_json: bool) -> None:
    """The saved failures of one target (its KEY as ``concsim db list`` prints it)."""
    db = _open(db_dir)
    entries = db.entries(key)
    if not entries:
        raise UsageError(f"no saved failures for {key!r} in {db.root} (see 'concsim db list')")
    items = [_describe(e) for e in entries]
    if as_json:
        _emit_json({"key": key, "failures": items})
        return
    for f in items:
        click.echo(f"{f['signature']}: {f['message']}")
        click.echo(f"  schedule: {f['schedule']}")
        click.echo(f"  replay with: concsim replay {f['file']}")


@db_cmd.command("clear")
@click.argument("key", required=False)
@_db_opt
@_user_errors
def db_clear(key: str | None, db_dir: str | None) -> None:
    """Remove the saved failures (of one target, or all)."""
    db = _open(db_dir)
    n = db.clear(key)
    click.echo(f"removed {n} saved failure(s) from {db.root}")
