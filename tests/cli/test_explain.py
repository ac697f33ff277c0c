"""``concsim explain FILE``: every catalog mutant's counterexample, explained.

The seeds are found once per session (the first failing seed of each mutant on its catch
scenario) and saved as replay files; each test then runs the command in-process through
click's runner (one test runs the real ``python -m concsim`` entry point).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import concsim
from concsim.cli import cli
from concsim.driver import MUTANTS
from concsim.explain import explain
from concsim.explain.mshv._layout import flag_names, hva_of

from ..conftest import run_cli


@pytest.fixture(scope="session")
def mutant_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> replay file of the first failing seed (< 3000) of every catalog mutant."""
    d = tmp_path_factory.mktemp("explain")
    out: dict[str, Path] = {}
    for name, cls in MUTANTS.items():
        for seed in range(3000):
            res = concsim.run(
                cls.catch_scenario, variant=name, params=cls.catch_params, seed=seed, trace=False
            )
            if res.failure is not None:
                out[name] = Path(concsim.save_failure(res, str(d)))
                break
        else:  # pragma: no cover - the catalog test would fail first
            pytest.fail(f"no failing seed below 3000 for {name}")
    return out


def _explain(path: Path, *extra: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["explain", str(path), *extra])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r.exit_code, r.output


def _doc(path: Path) -> dict[str, Any]:
    code, out = _explain(path, "--json")
    assert code == 1, out
    doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return doc


def _roles(doc: dict[str, Any]) -> set[str]:
    return {ln["role"] for ln in doc["chain"]}


def _before_failure(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [ln for ln in doc["chain"] if ln["step"] < doc["step"]]


def _covers(fields: dict[str, Any], n: int, pattern: str) -> bool:
    """Does a record's ``gfn``/``count`` run, ``[start, end)`` range or ``vpn..last`` PTE
    span contain ``n``?"""
    if pattern == "gfn":
        g, c = fields.get("gfn"), fields.get("count")
        return isinstance(g, int) and isinstance(c, int) and g <= n < g + c
    a, b = fields.get("start"), fields.get("end")
    if isinstance(a, int) and isinstance(b, int):
        return a <= n < b
    v, last = fields.get("vpn"), fields.get("last", fields.get("vpn"))
    return isinstance(v, int) and isinstance(last, int) and v <= n <= last


# What each mutant's explanation must contain beyond the invariant and the failing step:
# chain roles, and words in the text.
EXPECT: dict[str, tuple[set[str], list[str]]] = {
    "no-read-retry": ({"read", "invalidate", "callback", "pte", "lock"}, ["set_seq", "B3.7"]),
    "retry-before-lock": ({"read", "invalidate", "callback", "pte", "lock"}, ["B3.7"]),
    "process-pfns-tail-drop": (set(), []),
    "map-fail-vfree": ({"insert", "region", "error"}, ["never removed"]),
    "no-intercept-access-check": ({"access"}, []),
    "always-req-write": ({"access"}, []),
    "remap-fail-no-unlock": ({"lock", "exit", "why"}, ["without mutex_unlock", "remap failed"]),
    "create-maps-cow-writable": ({"read", "lock"}, ["zero page", "WRITABLE"]),
    "skip-keeps-stale-pfn": ({"map", "invalidate", "remap"}, ["remap failed", "B5.5"]),
    "nonblock-mutex-lock": ({"context"}, ["non-blockable"]),
    "mutex-init-after-insert": ({"insert"}, ["mutex_init"]),
    "gfn-overlap-overflow": ({"region"}, ["wrapped"]),
    "pinned-unpin-before-unmap": ({"map", "region"}, ["vfree", "still granted"]),
}


def test_every_catalog_mutant_has_an_expectation() -> None:
    assert set(EXPECT) == set(MUTANTS)


@pytest.mark.parametrize("name", list(MUTANTS))
def test_explain_names_the_invariant_and_the_steps_that_matter(
    name: str, mutant_files: dict[str, Path]
) -> None:
    path = mutant_files[name]
    expected = json.loads(path.read_text())["expected"]["failure"]
    code, text = _explain(path)
    assert code == 1, text
    lines = text.splitlines()
    inv = expected.get("invariant")
    assert inv in MUTANTS[name].expect_invariants
    # The invariant, on the first line and spelled out.
    assert f"[{inv}]" in lines[0]
    assert f"at step {expected['step']}" in lines[0]
    assert any(ln.startswith(f"invariant {inv}: ") for ln in lines)
    # The failing step is in the chain, and at least one earlier step explains it.
    assert f">>{expected['step']:6d}" in text
    doc = _doc(path)
    assert doc["invariant"] == inv
    assert doc["step"] == expected["step"]
    # Beyond the failing operation itself, some step explains it (possibly within the
    # failing step: a creation whose whole error path is one step).
    assert [ln for ln in doc["chain"] if ln["role"] != "failure"], "nothing explains it"
    assert doc["steps"] == sorted(doc["steps"])
    # It ends with the replay command.
    assert lines[-1] == f"replay: concsim replay {path}"
    assert doc["replay_command"] == f"concsim replay {path}"
    assert doc["reproduced"] is True
    # The objects the failure names are named, and an earlier step touched them.
    details = expected.get("details", {})
    for key in ("gfn", "pfn", "hva", "region", "lock"):
        v = details.get(key)
        if v is not None:
            word = {"hva": "hva page"}.get(key, key)
            assert (f"{word} {v}" if key != "region" and key != "lock" else str(v)) in text
    gfn = details.get("gfn")
    if isinstance(gfn, int):
        hva = details.get("hva", doc["objects"].get("hva page"))
        touched = [
            ln
            for ln in _before_failure(doc)
            if _covers(ln["fields"], gfn, "gfn")
            or ln["obj"] == f"gfn{gfn}"
            or (isinstance(hva, int) and _covers(ln["fields"], hva, "vpn"))
        ]
        if doc["invariant"] != "S2" or doc["kind"] == "assertion":
            assert touched, f"no step before the failure touches gfn {gfn}"
    roles, words = EXPECT[name]
    assert roles <= _roles(doc), (roles - _roles(doc), text)
    for w in words:
        assert w in text, (w, text)


def test_s1_explanation_follows_the_stale_pfn(mutant_files: dict[str, Path]) -> None:
    """no-read-retry: the read (seq), the callback's set_seq with the new value, the PTE
    change of the hva page, the map of the gfn, in that order."""
    doc = _doc(mutant_files["no-read-retry"])
    d = json.loads(mutant_files["no-read-retry"].read_text())["expected"]["failure"]["details"]
    chain = doc["chain"]
    first = {}
    for ln in chain:
        first.setdefault(ln["role"], ln)
    read = next(ln for ln in chain if ln["op"] == "read_begin")
    seq = read["fields"]["seq"]
    bump = next(ln for ln in chain if ln["op"] == "seq" and ln["fields"]["what"] == "set_seq")
    assert bump["fields"]["seq"] != seq
    pte = next(ln for ln in chain if ln["role"] == "pte")
    assert pte["fields"]["vpn"] <= d["hva"] <= pte["fields"]["last"]
    assert read["step"] < bump["step"] < doc["step"]
    assert pte["step"] < doc["step"]
    assert read["task"] == doc["task"] != bump["task"]
    assert any(f"seq changed from {seq}" in n for n in doc["notes"])


def test_deadlock_explanation_names_holds_and_waits(tmp_path: Path) -> None:
    res = concsim.run("abba", seed=0)
    path = Path(concsim.save_failure(res, str(tmp_path)))
    code, text = _explain(path)
    assert code == 1
    assert "task t_ab holds lock_a and waits for lock_b, which t_ba holds" in text
    assert "task t_ba holds lock_b and waits for lock_a, which t_ab holds" in text
    doc = _doc(path)
    assert {ln["step"] for ln in doc["chain"] if ln["role"] == "lock"} == {3, 5}
    assert {ln["step"] for ln in doc["chain"] if ln["role"] == "wait"} == {7, 8}


def test_generic_fallback_shows_the_failing_task(tmp_path: Path) -> None:
    res = concsim.run("counter", variant="racy", seed=3)
    assert res.failure is not None
    assert res.failure.kind == "assertion"
    ex = explain(res)
    assert ex.steps
    assert ex.steps[-1] <= res.failure.step
    assert ex.text().splitlines()[-1] == f"replay: {res.replay_command()}"
    assert ex.to_json()["chain"]


def test_explain_refuses_a_run_without_failure_or_trace() -> None:
    ok = concsim.run("counter", variant="locked", seed=0)
    assert ok.failure is None
    with pytest.raises(ValueError, match="did not fail"):
        explain(ok)
    bad = concsim.run("abba", seed=0, trace=False)
    with pytest.raises(ValueError, match="no trace"):
        explain(bad)


def test_explain_of_a_passing_replay_exits_0(tmp_path: Path) -> None:
    from concsim.artifacts import replay_from_result, save_replay

    ok = concsim.run("counter", variant="locked", seed=0)
    path = save_replay(tmp_path / "ok.json", replay_from_result(ok))
    code, out = _explain(path)
    assert code == 0
    assert "nothing to explain" in out


def test_explain_cli_entry_point_and_errors(mutant_files: dict[str, Path], tmp_path: Path) -> None:
    p = run_cli("explain", str(mutant_files["nonblock-mutex-lock"]))
    assert p.returncode == 1, p.stderr
    assert "[S6]" in p.stdout.splitlines()[0]
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    p = run_cli("explain", str(bad))
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1


def test_hva_layout_agrees_with_failures_that_name_both(mutant_files: dict[str, Path]) -> None:
    """The explanation derives an hva page from a gfn with the world's layout; check the
    formula against every failure that reports both."""
    from concsim.explain import Context

    checked = 0
    for name in ("no-read-retry", "retry-before-lock"):
        out = concsim.replay(str(mutant_files[name]))
        f = out.result.failure
        assert f is not None
        assert "hva" in f.details
        ctx = Context(out.result)
        ctx.failure = type(f)(f.kind, f.message, f.step, f.task, f.invariant, {})  # hide hva
        assert hva_of(ctx, int(f.details["gfn"])) == f.details["hva"]
        checked += 1
    assert checked == 2


def test_flag_names() -> None:
    assert flag_names(0x8003) == "READABLE|WRITABLE|ADJUSTABLE"
    assert flag_names(0x10000) == "NO_ACCESS"
    assert flag_names(0) == "0"


def test_rewording_the_trace_text_does_not_change_any_explanation(
    mutant_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Explain reads the records' fields: give every event kind another text and every
    explanation (text and JSON) stays the same, while the text view of the trace changes."""
    from concsim.artifacts import to_text

    from ..engine.test_trace_records import _reword_every_kind

    abba = Path(concsim.save_failure(concsim.run("abba", seed=0), str(tmp_path)))
    files = [*mutant_files.values(), abba]
    outs = [concsim.replay(str(p)).result for p in files]
    before = [(explain(r).text(), explain(r).to_json()) for r in outs]
    views = [to_text(r.trace, r.failure) for r in outs]
    _reword_every_kind(monkeypatch)
    assert [to_text(r.trace, r.failure) for r in outs] != views
    after = [(explain(r).text(), explain(r).to_json()) for r in outs]
    for p, b, a in zip(files, before, after, strict=True):
        assert a == b, p.name
