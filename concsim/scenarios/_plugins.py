"""Plug-ins: scenarios (and the drivers and oracles they bring) from outside concsim.

A plug-in is a Python module that registers scenarios on import
(``concsim.scenarios.register(Scenario(...))``); a scenario names its own variants (the
driver classes) and builds its own world, oracles included.  concsim imports plug-ins
from two places, once per process, before the first scenario lookup:

* the entry points of the group ``concsim.plugins`` of every installed distribution
  (``[project.entry-points."concsim.plugins"] mydriver = "mydriver.concsim_plugin"``);
  an entry point naming a callable (``module:function``) is called after the import;
* the modules listed, comma-separated, in the ``CONCSIM_IMPORT`` environment variable,
  which ``concsim --import MODULE`` sets, so stress workers and every other child process
  import them too.

A plug-in that fails to import is a one-line usage error naming it.  See
docs/driver-plugins.md (the dmirror driver as the worked example).
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from concsim._errors import UsageError

ENTRY_POINT_GROUP = "concsim.plugins"
ENV_VAR = "CONCSIM_IMPORT"

_loaded: list[str] = []


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def import_plugin(module: str) -> None:
    """Import one plug-in module (once); a failure is a one-line :class:`UsageError`."""
    if module in _loaded:
        return
    try:
        importlib.import_module(module)
    except UsageError:
        raise
    except Exception as e:
        raise UsageError(f"cannot import plug-in {module!r}: {_one_line(e)}") from None
    _loaded.append(module)


def env_modules() -> list[str]:
    return [m.strip() for m in os.environ.get(ENV_VAR, "").split(",") if m.strip()]


def add_env_modules(modules: list[str]) -> None:
    """Record modules in ``CONCSIM_IMPORT`` (inherited by child processes) and import them."""
    have = env_modules()
    for m in modules:
        if m not in have:
            have.append(m)
    os.environ[ENV_VAR] = ",".join(have)
    for m in modules:
        import_plugin(m)


def load_plugins() -> None:
    """Import every entry-point plug-in and every ``CONCSIM_IMPORT`` module not yet loaded."""
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        key = f"entry point {ep.name}"
        if key in _loaded:
            continue
        _loaded.append(key)
        try:
            obj = ep.load()
        except UsageError:
            raise
        except Exception as e:
            raise UsageError(
                f"cannot load plug-in entry point {ep.name!r} ({ep.value}): {_one_line(e)}"
            ) from None
        if callable(obj):
            obj()
    for m in env_modules():
        import_plugin(m)
