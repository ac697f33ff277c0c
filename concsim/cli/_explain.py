"""``concsim explain FILE [--json]``: why the run in a replay file failed, in words.

Registered on the ``cli`` group in :mod:`concsim.cli._main` (one ``add_command`` line).
Exit codes as everywhere: 1 the replay fails (and is explained), 0 it does not fail
(nothing to explain), 2 a usage or input error.
"""

from __future__ import annotations

import sys

import click

from concsim._errors import UsageError
from concsim.cli._common import _emit_json, _user_errors


@click.command("explain")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="print the explanation as one JSON object")
@_user_errors
def explain_cmd(file: str, as_json: bool) -> None:
    """Explain why the run in a replay file failed: the chain of steps, in words."""
    from concsim._api import replay
    from concsim.artifacts import load_replay
    from concsim.explain import explain

    rf = load_replay(file)
    if rf.extra.get("adhoc") or rf.scenario.startswith("adhoc:"):
        nodeid = rf.extra.get("pytest_nodeid")
        raise UsageError(
            f"{file} is the replay of the pytest test {nodeid}, whose model lives in the "
            f"test: rerun it with: pytest {nodeid} --concsim-replay {file}"
        )
    out = replay(file)
    res = out.result
    if res.failure is None:
        if as_json:
            _emit_json({"ok": True, "replay_command": res.replay_command()})
        else:
            click.echo(f"{file}: the run does not fail, there is nothing to explain")
        sys.exit(0)
    ex = explain(res, reproduced=out.reproduced)
    if as_json:
        _emit_json(ex.to_json())
    else:
        click.echo(ex.text(), nl=False)
    sys.exit(1)
