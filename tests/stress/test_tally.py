"""The order-free bookkeeping: seed intervals, percentiles, signatures, ratios."""

from __future__ import annotations

import random

import numpy as np
import pytest

from concsim.campaign import hist_summary
from concsim.campaign._spec import parse_budget, parse_seeds
from concsim.campaign._tally import Tally, add_interval, subtract
from concsim.campaign._worker import BatchResult, FailureRecord


def test_intervals_coalesce_in_any_order_and_refuse_overlap() -> None:
    iv = [(i * 7, i * 7 + 7) for i in range(40)]
    random.Random(1).shuffle(iv)
    done: list[list[int]] = []
    for a, b in iv:
        add_interval(done, a, b)
    assert done == [[0, 280]]
    with pytest.raises(AssertionError):
        add_interval(done, 279, 281)
    assert subtract(0, 300, [[0, 10], [20, 30]]) == [[10, 20], [30, 300]]
    assert subtract(5, None, [[0, 10], [20, 30]]) == [[10, 20], [30, None]]


@pytest.mark.parametrize("seed", range(5))
def test_histogram_percentiles_equal_numpy_on_the_raw_values(seed: int) -> None:
    rnd = random.Random(seed)
    h = {rnd.randint(0, 50): rnd.randint(1, 30) for _ in range(rnd.randint(1, 12))}
    raw = np.repeat(np.array(list(h), dtype=float), list(h.values()))
    got = hist_summary(h)
    for q in (50, 90, 99):
        assert got[f"p{q}"] == pytest.approx(np.percentile(raw, q))
    assert got["mean"] == pytest.approx(raw.mean())


def _batch(start: int, stop: int, **stats: dict[int, int]) -> BatchResult:
    return BatchResult(start, stop, schedules=stop - start, hist=dict(stats))


def test_tally_is_the_same_whatever_the_batch_order() -> None:
    def fail(seed: int, sig: str) -> FailureRecord:
        return FailureRecord(seed, sig, sig.split("/")[0], None, "", f"m{seed}", {})

    batches = []
    for i in range(10):
        b = _batch(i * 10, i * 10 + 10, steps={i: 10})
        b.failures = [fail(i * 10 + 3, "assertion/-/"), fail(i * 10 + 5, f"deadlock/-/{i % 2}")]
        b.digest = i * 12345
        batches.append(b)
    tallies = []
    for order in range(3):
        bs = list(batches)
        random.Random(order).shuffle(bs)
        t = Tally()
        for b in bs:
            t.add(b)
        tallies.append(t.to_json())
    assert tallies[0] == tallies[1] == tallies[2]
    t = Tally.from_json(tallies[0])
    assert t.to_json() == tallies[0]
    assert t.signatures["assertion/-/"].seeds == [3, 13, 23, 33, 43]
    assert t.signatures["assertion/-/"].count == 10
    assert t.signatures["assertion/-/"].message == "m3"


def test_counters_missing_from_a_schedule_count_as_zero_and_ratios() -> None:
    t = Tally()
    b = _batch(0, 4, faults_handled={2: 2, 4: 1}, ebusy_retries={1: 2, 8: 1})
    b.ratios = {"ebusy_retries_per_faults_handled": {(1, 2): 2, (8, 4): 1}}
    t.add(b)
    s = t.stats()
    assert s["faults_handled"]["mean"] == pytest.approx((2 + 2 + 4 + 0) / 4)
    assert s["ebusy_retries_per_faults_handled"]["p50"] == pytest.approx(0.5)
    assert s["ebusy_retries_per_faults_handled"]["mean"] == pytest.approx(3 / 3)


def test_worker_histograms_and_ratios_match_single_runs() -> None:
    import concsim
    from concsim.campaign import Job, run_batch

    from . import counting  # noqa: F401  registers the scenario

    r = run_batch(Job("counting", "-", {}, "random"), 0, 60)
    want_ratio: dict[tuple[int, int], int] = {}
    want_faults: dict[int, int] = {}
    for seed in range(60):
        st = concsim.run("counting", seed=seed, trace=False).stats
        want_faults[st["faults_handled"]] = want_faults.get(st["faults_handled"], 0) + 1
        key = (st.get("ebusy_retries", 0), st["faults_handled"])
        if "ebusy_retries" in st:
            want_ratio[key] = want_ratio.get(key, 0) + 1
    assert r.hist["faults_handled"] == want_faults
    assert r.ratios["ebusy_retries_per_faults_handled"] == want_ratio
    assert len(want_ratio) > 1


def test_seed_and_budget_parsers() -> None:
    assert (parse_seeds("3:10").lo, parse_seeds("3:10").hi) == (3, 10)
    assert parse_seeds("7:").hi is None
    assert parse_budget("60s") == 60
    assert parse_budget("2m") == 120
    assert parse_budget("1.5h") == 5400
    assert parse_budget("45") == 45


def test_scaling_bench_reports_a_rate_per_configuration() -> None:
    from concsim.campaign._bench import scaling_bench

    r = scaling_bench("counter", seconds=0.5, configs=(("local", 1),))
    (row,) = r["runs"]
    assert len(row["rates"]) == 1
    assert row["schedules_per_s"] == row["rates"][0] > 0
    assert row["speedup_vs_1"] == 1.0
