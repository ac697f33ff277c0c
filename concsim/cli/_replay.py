"""``--replay-first DIR`` of ``explore`` and ``stress``: the saved counterexamples first."""

from __future__ import annotations

from typing import Any

import click

from concsim._replaycheck import ReplayVerdict, check_replays


def replay_first(
    folder: str, variant: str, params: dict[str, Any], *, err: bool
) -> list[ReplayVerdict]:
    """``--replay-first DIR``: check every saved counterexample under ``folder`` against
    ``variant`` before new schedules run; print one line per file (on stderr if ``err``)."""
    verdicts = check_replays([folder], variant, params)
    for v in verdicts:
        click.echo(f"replay-first: {v.line()}", err=err)
    return verdicts
