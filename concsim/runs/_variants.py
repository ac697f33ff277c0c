"""Variants by name: the scenario's own, or a user variant given as ``file.py:Class``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from concsim._errors import ReplayFileError, UsageError
from concsim.runs._config import STRATEGIES, RunConfig
from concsim.scenarios import Scenario

if TYPE_CHECKING:
    from concsim.artifacts import ReplayFile


def resolve_variant(scn: Scenario, variant: str | None) -> tuple[str, Any]:
    """Name and object of the variant; an unknown name is a one-line error.

    A name with a ``:`` is a user variant, ``path/to/file.py:ClassName`` or
    ``package.module:ClassName`` (see docs/variant-api.md), accepted by the scenarios whose
    variants are driver classes; the spec string itself is the variant's name, so replay
    files, stress workers and ``replay_command()`` load it again from it.
    """
    variants = scn.variants()
    name = variant if variant is not None else scn.default_variant
    if name not in variants and ":" in name:
        return name, _load_user_variant(scn, name, variants)
    if name not in variants:
        raise UsageError(
            f"unknown variant {name!r} for scenario {scn.name!r} "
            f"(known: {', '.join(variants)}; see 'concsim variants')"
        )
    return name, variants[name]


def _load_user_variant(scn: Scenario, spec: str, variants: Mapping[str, Any]) -> Any:
    from concsim.driver import MshvDriverBase
    from concsim.driver._loader import load_variant

    default = variants.get(scn.default_variant)
    if not (isinstance(default, type) and issubclass(default, MshvDriverBase)):
        raise UsageError(
            f"scenario {scn.name!r} takes only its own variants ({', '.join(variants)}): "
            f"a user variant like {spec!r} is a driver class, for the mshv scenarios "
            "(default, small)"
        )
    return load_variant(spec)


def replay_variant(rf: ReplayFile) -> str:
    """The variant to load for a replay file: a user variant given by a relative path is
    found from the current directory, else by the absolute path the file also recorded."""
    from concsim._varspec import is_variant_spec, spec_to_load

    if is_variant_spec(rf.variant):
        return spec_to_load(rf.variant, rf.extra.get("variant_absolute"))
    return rf.variant


def config_of_replay(rf: ReplayFile, where: str = "replay file") -> RunConfig:
    """The whole configuration a replay file's run had, with its schedule to replay.

    A version 1 file holds no configuration: its run had every other setting at its
    default.  A malformed ``config`` is a one-line :class:`ReplayFileError`."""
    if rf.config is None:
        base = {
            "scenario": rf.scenario,
            "variant": rf.variant,
            "params": rf.params,
            "seed": rf.seed if rf.seed is not None else 0,
        }
        if rf.strategy in STRATEGIES:
            base["strategy"] = rf.strategy
        data: dict[str, Any] = base
    else:
        data = dict(rf.config)
    try:
        cfg = RunConfig.from_json(data, f"{where}: field 'config'")
    except UsageError as e:
        raise ReplayFileError(str(e)) from None
    # A run that never finished (a stress hang) saved no schedule: rerun its seed.
    schedule = None if rf.extra.get("unfinished") else rf.schedule
    return cfg.replace(variant=replay_variant(rf), schedule=schedule)
