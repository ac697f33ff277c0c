"""The ported HMM selftests (hmm-tests.c) pass on the model, a broken driver fails them,
and ``concsim conformance`` reports both with the right exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from concsim.cli import cli
from concsim.driver.dmirror import MUTANTS
from concsim.exploration._conformance import run_case
from concsim.exploration._hmm_selftests import CASES, NOT_PORTED

DOC = Path(__file__).resolve().parents[2] / "docs" / "hmm-conformance.md"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_ported_case_passes(case) -> None:  # type: ignore[no-untyped-def]
    out = run_case(case, schedules=16)
    assert out.passed, out.failure
    assert out.schedules == (16 if case.concurrent else 1)


def test_a_case_asserts_what_the_selftest_asserts() -> None:
    """anon_write_prot writes through read-only device entries under the mutant: the D2
    oracle stops it, where the selftest itself would see the buffer change."""
    case = next(c for c in CASES if c.name == "anon_write_prot")
    out = run_case(case, driver_cls=MUTANTS["dmirror-write-ignores-tag"])
    assert not out.passed
    assert "[D2]" in out.failure


def test_the_concurrent_teardown_catches_a_missing_read_retry() -> None:
    case = next(c for c in CASES if c.name == "anon_teardown")
    # 600: with every release a scheduling point, the window is rarer (60 found it before).
    out = run_case(case, schedules=600, driver_cls=MUTANTS["dmirror-no-read-retry"])
    assert not out.passed
    assert "[D1]" in out.failure


def test_cli_json_and_exit_codes() -> None:
    r = CliRunner().invoke(cli, ["conformance", "--only", "anon_read", "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.output.strip().splitlines()[-1])
    assert obj["ok"] is True
    assert [c["case"] for c in obj["cases"]] == ["anon_read"]
    assert obj["cases"][0]["status"] == "pass"
    r = CliRunner().invoke(
        cli,
        ["conformance", "--only", "anon_write_prot", "--variant", "dmirror-write-ignores-tag"],
    )
    assert r.exit_code == 1
    assert "1 undocumented failure" in r.output
    r = CliRunner().invoke(cli, ["conformance", "--only", "nope"])
    assert r.exit_code == 2
    assert "unknown case 'nope'" in r.output


def test_the_doc_lists_every_case_and_every_case_left_out() -> None:
    text = DOC.read_text()
    for c in CASES:
        assert f"| `{c.name}` |" in text, c.name
    for name in NOT_PORTED:
        assert f"| `{name}` |" in text, name
    assert "FAIL" not in text
