"""``concsim mutants``: the table/JSON contract and the exit code both ways."""

from __future__ import annotations

import json

from concsim.exploration._catalog import run_catalog

from ..conftest import run_cli


def test_mutants_json_fields_and_exit_0_when_all_caught() -> None:
    p = run_cli(
        "mutants",
        "--only",
        "no-read-retry",
        "--only",
        "gfn-overlap-overflow",
        "--budget",
        "200",
        "--no-clean",
        "--json",
    )
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout.strip().splitlines()[-1])
    names = [m["name"] for m in d["mutants"]]
    assert names == ["no-read-retry", "gfn-overlap-overflow"]
    for m in d["mutants"]:
        for k in ("name", "caught", "kind", "invariant", "schedules_to_failure"):
            assert k in m
        assert m["caught"] is True
    assert d["clean_variants"] == []


def test_a_mutant_not_caught_within_the_budget_fails_the_run() -> None:
    # mutex-init-after-insert needs hundreds of schedules; one is not enough.
    res = run_catalog(budget=1, strategy="pct", only=["mutex-init-after-insert"], clean=False)
    assert not res.ok
    assert res.mutants[0].caught is False
    p = run_cli(
        "mutants", "--only", "mutex-init-after-insert", "--budget", "1", "--no-clean", "--json"
    )
    assert p.returncode == 1


def test_correct_variants_are_reported_clean() -> None:
    res = run_catalog(budget=20, strategy="random", only=["no-read-retry"])
    assert {(c.name, c.scenario) for c in res.clean_variants} >= {("after-patch", "default")}
    assert all(c.ok and c.schedules == 20 for c in res.clean_variants)


def test_bad_arguments_exit_2() -> None:
    for args in (("--budget", "0"), ("--strategy", "dfs"), ("--only", "nope")):
        p = run_cli("mutants", *args)
        assert p.returncode == 2, p.stdout
        assert len(p.stderr.strip().splitlines()) == 1
