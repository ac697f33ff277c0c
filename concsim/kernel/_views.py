"""Scalar views of model arrays: one-entry reads and writes with plain ints.

The model keeps its tables (page table, SLAT, page allocator) in numpy arrays, so that bulk
work (creating a 1 GiB region, invalidating it) is a handful of vectorised calls.  Most
steps of a scenario touch one entry, and a numpy scalar access (``int(a[i])``, ``a[i] = v``)
costs several times what a list's does.  A :func:`scalar_view` is a ``memoryview`` of the
same memory: ``v[i]`` is a plain int (a bool for a bool array) and ``v[i] = x`` writes the
array, at about the cost of a list access, with no copy to keep in step.  The array must
never be replaced or resized while the view lives (the model's arrays never are).
"""

from __future__ import annotations

from typing import Any

import numpy.typing as npt


def scalar_view(a: npt.NDArray[Any]) -> memoryview:
    """A memoryview of the 1-D array ``a`` for one-entry accesses with plain ints."""
    view = memoryview(a)  # type: ignore[arg-type]  # numpy's stubs lack __buffer__ on 3.11
    assert view.ndim == 1
    assert view.c_contiguous
    return view
