"""Does a fix survive a counterexample?  Replaying a saved failure against another variant.

A replay file's schedule is a list of choice *indices* ("the k-th other runnable task"),
which mean something only in the run that made them.  To replay it against another variant
(the fix under review) the schedule is first replayed against the variant that found it,
recording what each choice meant (the runtime records it in the result): the id of the task
that ran at each task choice, and each environment outcome.  The new variant is then run by
task identity (:class:`~concsim.strategies.PreferTasks`, the shrinker's plans):

* at its ``i``-th task choice it runs the task the original run ran at its ``i``-th task
  choice, when that task can run there;
* where it cannot (the fix blocks it, or has it finished, or the new variant makes more task
  choices than the file has), the *fallback* keeps the current task running (the first
  runnable task by id when the current one cannot run): the schedule the fix would take
  with no further preemption;
* the ``i``-th environment choice (a hypercall's outcome, an allocation failure) keeps the
  ``i``-th outcome of the original run (clamped to the options offered), 0 past the end.

Task ids are assigned in spawn order by the scenario, not by the variant, so the same id
names the same task (``vp0``, ``migrate``...) in both runs.  The verdict per file:

* ``still fails``: the new variant fails with the same signature (kind, invariant, where);
* ``fails differently``: it fails with another signature;
* ``passes``: no failure: the fix survives this counterexample.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concsim._errors import ConcsimError, UsageError
from concsim.artifacts import ReplayFile, load_replay
from concsim.engine import decode_schedule
from concsim.runs import (
    RunResult,
    config_of_replay,
    replay_variant,
    resolve_variant,
    run_world,
)
from concsim.scenarios import get_scenario
from concsim.strategies import PreferTasks, Replay

STILL_FAILS = "still fails"
FAILS_DIFFERENTLY = "fails differently"
PASSES = "passes"
ERROR = "error"


@dataclass
class ReplayVerdict:
    """One replay file checked against a variant."""

    file: str
    verdict: str  # STILL_FAILS, FAILS_DIFFERENTLY, PASSES or ERROR
    variant: str = ""
    #: the signature the file's failure has (from its own variant's rerun, else the file)
    expected_signature: str | None = None
    signature: str | None = None
    message: str = ""
    result: RunResult | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "verdict": self.verdict,
            "variant": self.variant,
            "expected_signature": self.expected_signature,
            "signature": self.signature,
            "message": self.message,
        }
        if self.result is not None:
            out["schedule"] = self.result.schedule
            out["steps"] = self.result.steps
        return out

    def line(self) -> str:
        """One line for the terminal."""
        if self.verdict == PASSES:
            return f"passes             {self.file}  (the fix survives this counterexample)"
        if self.verdict == STILL_FAILS:
            return f"still fails        {self.file}  ({self.signature}: {self.message})"
        if self.verdict == FAILS_DIFFERENTLY:
            return (
                f"fails differently  {self.file}  ({self.expected_signature} -> "
                f"{self.signature}: {self.message})"
            )
        return f"error              {self.file}  ({self.message})"


def _expected_signature(rf: ReplayFile) -> str | None:
    f = rf.expected.get("failure")
    if not isinstance(f, dict):
        return None
    details = f.get("details") or {}
    where = details.get("where", "") if isinstance(details, dict) else ""
    return f"{f.get('kind')}/{f.get('invariant') or '-'}/{where}"


def replay_files(paths: Iterable[str]) -> list[str]:
    """Every replay file among ``paths``: files as given, folders searched (``*.json``,
    recursively, in sorted order; hidden and temporary files skipped)."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(
                q
                for q in path.rglob("*.json")
                if q.is_file()
                and not any(part.startswith(".") for part in q.relative_to(path).parts)
            )
            found = [q for q in found if q.name not in ("manifest.json", "summary.json")]
            if not found:
                raise UsageError(f"{p}: no replay files (*.json) in this folder")
            out.extend(str(q) for q in found)
        elif path.exists():
            out.append(str(path))
        else:
            raise UsageError(f"{p}: no such replay file or folder")
    return out


def check_replay(
    path: str,
    variant: str | None = None,
    params: Mapping[str, object] | None = None,
    *,
    trace: bool = True,
) -> ReplayVerdict:
    """Replay one file against ``variant`` (default: its own) and say what became of it."""
    try:
        rf = load_replay(path)
        if rf.extra.get("adhoc") or rf.scenario.startswith("adhoc:"):
            raise UsageError(
                f"the replay of the pytest test {rf.extra.get('pytest_nodeid')}: rerun it "
                "with pytest --concsim-replay"
            )
        return _check(path, rf, variant, params, trace)
    except ConcsimError as e:
        return ReplayVerdict(path, ERROR, variant or "", message=" ".join(str(e).split()))


def _check(
    path: str,
    rf: ReplayFile,
    variant: str | None,
    params: Mapping[str, object] | None,
    trace: bool,
) -> ReplayVerdict:
    scn = get_scenario(rf.scenario)
    own_name, own_obj = resolve_variant(scn, replay_variant(rf))
    own_params = scn.resolve_params(rf.params)
    # 1. what the file's choices meant, in the run that made them
    # (the runtime records the task each task choice ran and each environment outcome)
    replay = Replay(decode_schedule(rf.schedule), strict=False)
    # the file's own step limit (a version 2 file stores its whole run configuration)
    max_steps = config_of_replay(rf, path).max_steps
    own = run_world(scn, own_name, own_obj, own_params, replay, "replay", rf.seed, False, max_steps)
    expected = own.failure.signature if own.failure is not None else _expected_signature(rf)
    # 2. the variant under review, by task identity
    want = variant if variant is not None else rf.variant
    vname, vobj = resolve_variant(scn, replay_variant(rf) if variant is None else variant)
    new_params = scn.resolve_params({**rf.params, **dict(params or {})})
    plan = PreferTasks(list(own.tasks), list(own.envs))
    res = run_world(scn, vname, vobj, new_params, plan, "replay", rf.seed, trace, max_steps)
    res.replay_file = path
    f = res.failure
    if f is None:
        verdict = PASSES
    elif f.signature == expected:
        verdict = STILL_FAILS
    else:
        verdict = FAILS_DIFFERENTLY
    return ReplayVerdict(
        path,
        verdict,
        want,
        expected,
        f.signature if f is not None else None,
        f.message if f is not None else "",
        res,
    )


def check_replays(
    paths: Iterable[str],
    variant: str | None = None,
    params: Mapping[str, object] | None = None,
    *,
    trace: bool = False,
) -> list[ReplayVerdict]:
    """:func:`check_replay` for every replay file among ``paths`` (files and folders)."""
    return [check_replay(p, variant, params, trace=trace) for p in replay_files(paths)]


def is_single_file(paths: list[str]) -> bool:
    return len(paths) == 1 and not os.path.isdir(paths[0])
