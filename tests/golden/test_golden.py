"""The model reproduces the recorded seeds exactly (the first seeds of every golden world).

The full check (every recorded seed, about two minutes) is
``python -m tests.golden.golden check``; re-recording is ``... record`` (see golden.py).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from . import golden


def test_first_seeds_of_every_world_reproduce_the_golden_digests() -> None:
    bad = golden.mismatches(ci=True)
    assert not bad, "\n".join(bad[:20])


def test_a_changed_digest_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    data: dict[str, Any] = copy.deepcopy(golden.load())
    digests = data["worlds"]["small"]["digests"]["after-patch"].split()
    digests[1] = "0" * 16
    data["worlds"]["small"]["digests"]["after-patch"] = " ".join(digests)
    monkeypatch.setattr(golden, "load", lambda: data)
    monkeypatch.setattr(golden, "WORLDS", [w for w in golden.WORLDS if w[0] == "small"])
    bad = golden.mismatches(2)
    assert len(bad) == 1
    assert bad[0].startswith("small/after-patch seed 1: digest ")


def test_the_digest_tells_seeds_and_variants_apart() -> None:
    d = {
        (scn, v, s): golden.seed_digest(scn, v, {}, s)
        for scn in ("small", "default")
        for v in ("after-patch", "before-patch")
        for s in (0, 1)
    }
    assert len(set(d.values())) == 8
