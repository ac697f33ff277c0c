"""``concsim explain``: why a run failed, as a short chain of steps in words.

:func:`explain` takes a replayed (traced) :class:`concsim.RunResult` and returns an
:class:`Explanation`: the failure, the invariant it breaks (with its meaning from the
catalogue, ``concsim.checks._catalogue``), the steps that matter, and the conclusions.
Nothing is re-run and no model state is inspected: every statement is read off the typed
trace records (op, object, named fields, the scheduling-point mark) and the failure's
details, never off a record's text, so the explanation of a replay file is as
deterministic as its trace and does not change when an event is reworded.

Which explainer tells the story (one module per concern, each with ``explain(ctx)``):

1. the invariant's entry in the catalogue names it (``S1`` -> ``concsim.explain.mshv.
   _stale_access``; a model registering its own invariants names its own module);
2. else the failure's kind, for the engine's and the kernel's model-agnostic kinds
   (:data:`KIND_EXPLAINERS`: deadlock, lock order, sleep in atomic, lock misuse, livelock);
3. else :mod:`concsim.explain._generic`: the failing task's last steps and every step
   touching the objects the failure names.

The model-agnostic explainers live in this package and import nothing of the mshv model;
the mshv ones live in :mod:`concsim.explain.mshv`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from concsim.checks._catalogue import invariant
from concsim.explain._context import Context, Explanation, Link, RunLike

#: Failure kinds (the engine's and the kernel primitives') -> their explainer module.
KIND_EXPLAINERS: dict[str, str] = {
    "deadlock": "concsim.explain._deadlock",
    "lock-order": "concsim.explain._lock_order",
    "sleep-in-atomic": "concsim.explain._sleep_in_atomic",
    "lock-misuse": "concsim.explain._lock_misuse",
    "step-limit": "concsim.explain._livelock",
}
GENERIC = "concsim.explain._generic"

Explainer = Callable[[Context], None]


def explainer_for(kind: str, invariant_id: str | None) -> str:
    """The module that explains a failure of ``kind`` breaking ``invariant_id``."""
    inv = invariant(invariant_id)
    if inv is not None:
        return inv.explainer
    return KIND_EXPLAINERS.get(kind, GENERIC)


def load_explainer(module: str) -> Explainer:
    """The ``explain`` function of an explainer module."""
    mod = importlib.import_module(module)
    fn = getattr(mod, "explain", None)
    if not callable(fn):
        raise TypeError(f"explainer module {module} has no explain(ctx) function")
    return cast(Explainer, fn)


def explain(res: RunLike, *, reproduced: bool | None = None) -> Explanation:
    """Explain the failure of ``res`` (a traced RunResult, e.g. ``concsim.replay(f).result``)."""
    if res.failure is None:
        raise ValueError("the run did not fail: there is nothing to explain")
    if not res.trace:
        raise ValueError("the run has no trace: rerun it with trace=True")
    ctx = Context(res)
    f = ctx.failure
    module = explainer_for(f.kind, f.invariant)
    load_explainer(module)(ctx)
    ctx.link_failure()
    inv = invariant(f.invariant)
    return Explanation(
        kind=f.kind,
        invariant=f.invariant,
        message=f.message,
        step=f.step,
        task=f.task,
        scenario=res.scenario,
        variant=res.variant,
        objects=ctx.objects,
        chain=ctx.chain(),
        notes=ctx.notes,
        replay_command=res.replay_command(),
        reproduced=reproduced,
        invariant_text=f"{inv.name}: {inv.meaning}" if inv is not None else None,
        explainer=module,
    )


__all__ = ["KIND_EXPLAINERS", "Context", "Explanation", "Link", "explain", "explainer_for"]
