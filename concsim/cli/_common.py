"""What every ``concsim`` subcommand shares: the error boundary and JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from concsim._errors import ConcsimError, UsageError

if TYPE_CHECKING:
    from concsim.artifacts import ReplayFile

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors(fn: F) -> F:
    """Turn a ConcsimError into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConcsimError as e:
            click.echo(f"concsim: error: {e}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _emit_json(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, sort_keys=False))


def _refuse_adhoc(rf: ReplayFile, file: str) -> None:
    """A replay of a pytest test's own model can only be rerun by that test."""
    if rf.extra.get("adhoc") or rf.scenario.startswith("adhoc:"):
        nodeid = rf.extra.get("pytest_nodeid")
        raise UsageError(
            f"{file} is the replay of the pytest test {nodeid}, whose model lives in the "
            f"test: rerun it with: pytest {nodeid} --concsim-replay {file}"
        )
