"""What every ``concsim`` subcommand shares: the error boundary and JSON output."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from concsim._errors import ConcsimError, UsageError

if TYPE_CHECKING:
    from concsim.artifacts import ReplayFile

F = TypeVar("F", bound=Callable[..., Any])


def fail_usage(message: str) -> NoReturn:
    """One line on stderr, exit code 2."""
    click.echo(f"concsim: error: {' '.join(message.split())}", err=True)
    sys.exit(2)


def _user_errors(fn: F) -> F:
    """Turn a ConcsimError (or a file that cannot be written) into one line on stderr and
    exit code 2, and a Ctrl-C that reaches here into exit code 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConcsimError as e:
            fail_usage(str(e))
        except BrokenPipeError:  # stdout closed early (`| head`): not an error of ours
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            fail_usage(f"cannot write or read {where}{e.strerror or type(e).__name__}")
        except KeyboardInterrupt:
            click.echo("concsim: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


class OneLineErrors(click.Group):
    """The ``concsim`` group: click's own usage errors (a bad ``--seed``, a missing argument)
    are one line on stderr and exit code 2, like every other error; a Ctrl-C that no
    command handles is exit code 130 (never click's ``Aborted!`` with exit code 1)."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            hint = ""
            if e.ctx is not None:
                hint = f" (see '{e.ctx.command_path} --help')"
            fail_usage(e.format_message() + hint)
        except click.ClickException as e:
            click.echo(f"concsim: error: {' '.join(e.format_message().split())}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("concsim: interrupted", err=True)
            sys.exit(130)
        sys.exit(0)


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
