"""The text of a user variant spec, ``path/to/file.py:ClassName`` or
``package.module:ClassName`` (no imports of concsim: every layer may use it).

Loading the class is :func:`concsim.driver._loader.load_variant`; here is only what the
artifacts (replay files) and the front ends need to know about the string.
"""

from __future__ import annotations

from pathlib import Path


def is_variant_spec(name: str) -> bool:
    """True if ``name`` names a user variant (``where:ClassName``) rather than a shipped one."""
    return ":" in name


def is_path(where: str) -> bool:
    """Whether the part before the ``:`` is a file path (else a module name)."""
    return where.endswith(".py") or "/" in where or "\\" in where


def absolute_file_spec(spec: str) -> str | None:
    """For a file spec with a relative path: the same spec with the path made absolute
    (against the current directory), else None.  Replay files keep it beside the spec as
    given, so a replay run from another folder still finds the file."""
    where, _, cls_name = spec.rpartition(":")
    if not where or not is_path(where) or Path(where).expanduser().is_absolute():
        return None
    return f"{(Path.cwd() / where).resolve()}:{cls_name}"


def spec_to_load(spec: str, absolute: str | None) -> str:
    """``spec`` if its file is found from the current directory, else ``absolute``."""
    where, _, _ = spec.rpartition(":")
    if absolute and is_path(where) and not (Path.cwd() / where).expanduser().is_file():
        return absolute
    return spec
