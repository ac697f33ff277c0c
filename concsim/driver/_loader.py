"""Load a driver variant written by the user: ``path/to/file.py:ClassName`` or
``package.module:ClassName``.

A user variant is a subclass of a shipped variant (:class:`~concsim.driver.AfterPatch`,
``BeforePatch``, ``V3``, ``Stateless``) or of :class:`~concsim.driver.MshvDriverBase` that
overrides driver methods (see docs/variant-api.md).  The spec string is the variant's name
everywhere: in run results, replay files and stress jobs, so a worker process or a later
``concsim replay`` loads the same class again from the same string.

A file is imported with ``importlib.util.spec_from_file_location`` under a module name made
from its absolute path (``concsim_user_variant_<hash>_<stem>``), so two files called
``variant.py`` in different folders never collide and nothing shadows an importable module.
The module is registered in ``sys.modules`` under that name (``inspect.getsource`` and
:func:`concsim.driver._patching.patched` need it).  A relative path is stored as given and
resolved against the current directory when loaded.

Every problem (no such file, a module that raises while importing, no such class, a class
that is not a driver) is a one-line :class:`~concsim._errors.UsageError`; so is a module
that calls ``sys.exit()`` or raises ``KeyboardInterrupt`` while it is imported.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from concsim._errors import Interrupted, UsageError
from concsim._varspec import is_path
from concsim.driver._driver import MshvDriverBase

#: (absolute path, mtime_ns, size) of a loaded file -> its module, so loading a spec twice in
#: one process gives the same class (a changed file is loaded afresh).
_FILE_MODULES: dict[tuple[str, int, int], ModuleType] = {}


def split_spec(spec: str) -> tuple[str, str]:
    """``"dir/file.py:Cls"`` -> ``("dir/file.py", "Cls")``; a malformed spec is an error."""
    where, _, cls_name = spec.rpartition(":")
    if not where or not cls_name.isidentifier():
        raise UsageError(
            f"variant {spec!r} is not a user variant spec: write path/to/file.py:ClassName "
            "or package.module:ClassName"
        )
    return where, cls_name


def module_name_for(path: Path) -> str:
    """The deterministic, collision-free module name of the variant file at ``path``."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"concsim_user_variant_{digest}_{stem}"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if isinstance(e, SystemExit):
        text = f"exit status {e.code!r}"

    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _load_file(where: str) -> ModuleType:
    path = Path(where).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path = path.resolve()
    if not path.is_file():
        raise UsageError(f"variant file {where!r} not found (looked for {path})")
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    module = _FILE_MODULES.get(key)
    if module is not None:
        return module
    name = module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"variant file {where!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (GeneratorExit, Interrupted):
        del sys.modules[name]
        raise
    except BaseException as e:  # SystemExit(0) too: never a silent exit that reads as a pass
        del sys.modules[name]
        raise UsageError(f"cannot import variant file {where!r}: {_one_line(e)}") from None
    _FILE_MODULES[key] = module
    return module


def _load_module(where: str) -> ModuleType:
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as e:
        if e.name is not None and (where == e.name or where.startswith(e.name + ".")):
            raise UsageError(
                f"variant module {where!r} not found (is it on sys.path / PYTHONPATH?)"
            ) from None
        raise UsageError(f"cannot import variant module {where!r}: {_one_line(e)}") from None
    except (GeneratorExit, Interrupted):
        raise
    except BaseException as e:
        raise UsageError(f"cannot import variant module {where!r}: {_one_line(e)}") from None


def load_variant(spec: str) -> type[MshvDriverBase]:
    """The driver class ``spec`` names (``file.py:Cls`` or ``package.module:Cls``).

    Its ``name`` attribute becomes ``spec`` unless the class sets its own.
    """
    where, cls_name = split_spec(spec)
    module = _load_file(where) if is_path(where) else _load_module(where)
    obj = getattr(module, cls_name, None)
    if obj is None:
        found = sorted(
            k
            for k, v in vars(module).items()
            if isinstance(v, type)
            and issubclass(v, MshvDriverBase)
            and v.__module__ == module.__name__
        )
        hint = f" (its driver classes: {', '.join(found)})" if found else ""
        raise UsageError(f"{where!r} has no class {cls_name!r}{hint}")
    if not (isinstance(obj, type) and issubclass(obj, MshvDriverBase)):
        raise UsageError(
            f"{spec!r} is not a driver variant: {cls_name} must be a subclass of "
            "concsim.driver.MshvDriverBase (e.g. of AfterPatch or BeforePatch)"
        )
    if "name" not in vars(obj):
        obj.name = spec
    return obj
