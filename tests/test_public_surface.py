"""The public surface is deliberate: adding or removing a name is an announced change."""

from __future__ import annotations

import concsim

PUBLIC = {
    "CheckResult",
    "Comparison",
    "compare",
    "ConcsimError",
    "DEFAULT_SCENARIO",
    "ExploreResult",
    "Failure",
    "ReplayFileError",
    "ReplayOutcome",
    "RunResult",
    "Runtime",
    "ScheduleMismatch",
    "UsageError",
    "__version__",
    "check",
    "check_async",
    "decode_schedule",
    "encode_schedule",
    "explore",
    "explore_async",
    "replay",
    "run",
    "run_async",
    "save_failure",
}


def test_public_names_are_exactly_the_announced_ones() -> None:
    assert set(concsim.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(concsim, name), name


def test_user_errors_inherit_the_builtin_they_resemble() -> None:
    assert issubclass(concsim.UsageError, ValueError)
    assert issubclass(concsim.ReplayFileError, concsim.UsageError)
    assert issubclass(concsim.ScheduleMismatch, concsim.UsageError)
    assert issubclass(concsim.UsageError, concsim.ConcsimError)
