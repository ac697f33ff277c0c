"""The end of a campaign: one shrunk counterexample per failure signature.

A campaign writes every failing seed as it comes, so those files hold whatever schedule the
strategy drew: many needless switches.  When the seeds are done (not after a Ctrl-C), the
parent shrinks the smallest seed of each signature into ``failures/<slug>/shrunk.json``,
keeping the *signature* (kind, invariant and where it was detected), so the shrunk file
belongs in its folder.  The workers are gone by then; the parent runs the model itself,
with the campaign's own scenario, variant, parameters and step limit.

A resumed campaign keeps the shrunk files it has (it reads their figures back).  A Ctrl-C
during this phase stops it at once (the campaign's handler raises :class:`ShrinkInterrupted`,
a BaseException, so no model code can swallow it): a shrunk file is written atomically at
the end of its shrinking or not at all, and the failures themselves were all on disk before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from concsim._errors import ConcsimError, Interrupted
from concsim.campaign._tally import SignatureTally
from concsim.campaign._worker import Job, _world
from concsim.exploration._minimize import same_signature, shrink_replay_file

#: The file each signature's folder gets.
SHRUNK = "shrunk.json"


class ShrinkInterrupted(Interrupted):
    """Ctrl-C while shrinking: raised by the campaign's SIGINT handler (an
    :class:`~concsim._errors.Interrupted`, so the engine lets it through rather than
    reporting it as the running model task's own exception)."""


def _figures(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data.get("extra", {}).get("shrink", {}), file=str(path))


def shrink_signatures(
    job: Job,
    out: Path,
    signatures: list[SignatureTally],
    *,
    max_runs: int,
    stop: Callable[[], bool],
    event: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Shrink the smallest seed of each signature; return signature -> figures (``file``,
    ``preemptions``, ``steps``, ``runs``, or ``error``)."""
    # A sweep's seeds each have their own point: the file's own configuration is the target.
    target = _world(job, 0) if job.sweep is None else None
    done: dict[str, dict[str, Any]] = {}
    todo = []
    for s in signatures:
        dest = out / s.folder / SHRUNK
        if dest.exists():
            try:
                done[s.signature] = _figures(dest)
                continue
            except (OSError, ValueError):
                pass  # unreadable: shrink it again
        todo.append((s, dest))
    if todo:
        event(f"shrinking the smallest seed of {len(todo)} failure signature(s)")
    for s, dest in todo:
        src = out / s.folder / f"seed-{s.seeds[0]}.json"
        try:
            if stop():
                raise ShrinkInterrupted
            got = shrink_replay_file(
                str(src), out=str(dest), same=same_signature, max_runs=max_runs, target=target
            )
        except ShrinkInterrupted:
            event("shrinking interrupted: the seeds' own replay files are all on disk")
            break
        except ConcsimError as e:
            done[s.signature] = {"error": str(e)}
            event(f"could not shrink {s.signature}: {e}")
            continue
        done[s.signature] = _figures(Path(got.out))
    return done
