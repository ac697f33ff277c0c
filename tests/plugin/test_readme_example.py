"""The README's concurrency test works as the README says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_racy_test_fails_with_a_replay_command(pytester: pytest.Pytester) -> None:
    text = README.read_text()
    section = text[text.index("## Writing concurrency tests") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    assert len(code.group(1).strip().splitlines()) <= 16
    pytester.makepyfile(test_race=code.group(1))
    r = pytester.runpytest("-q")
    r.assert_outcomes(failed=1)
    out = r.stdout.str()
    assert "lost update: n=1" in out
    assert (
        "replay with: pytest test_race.py::test_two_increments_do_not_lose_an_update "
        "--concsim-replay "
    ) in out
