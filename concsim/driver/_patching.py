"""Write a mutant as a patch of one method of a correct variant.

``patched(Base.method, ("old line", "new line"), ...)`` takes the method's source, applies
each replacement (each ``old`` must occur exactly once, so a mutant whose context no longer
exists fails loudly instead of silently testing nothing) and compiles the result in the
method's own module.  A mutant's definition is then literally the diff that introduces the
bug, as a kernel patch would be read, and there is one copy of the correct code.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class PatchDoesNotApply(Exception):
    """A mutant's replacement text is not (exactly once) in the method it patches."""


def patched(fn: F, *edits: tuple[str, str]) -> F:
    src = textwrap.dedent(inspect.getsource(fn))
    for old, new in edits:
        n = src.count(old)
        if n != 1:
            raise PatchDoesNotApply(
                f"patching {fn.__qualname__}: {old!r} occurs {n} times (expected exactly once)"
            )
        src = src.replace(old, new)
    module = inspect.getmodule(fn)
    assert module is not None
    namespace: dict[str, Any] = {}
    code = compile(src, f"<mutant of {fn.__qualname__}>", "exec")
    exec(code, dict(vars(module)), namespace)
    out = namespace[fn.__name__]
    out.__qualname__ = fn.__qualname__
    out.__doc__ = fn.__doc__
    out.__concsim_patch__ = edits
    return out  # type: ignore[no-any-return]
