"""S9 bounds: every range or index into a model array is checked, never clipped.

numpy clips an out-of-range slice without a word (``a[5:99]`` of a 10-entry array is 5
entries) and wraps a negative index to the end, so a driver method that indexes past the
end of ``mreg_pfns`` or the SLAT would pass silently or die as a plain ``IndexError``.  The
model arrays (a region's ``mreg_pfns``, the SLAT, the page table, HMM's output pfns) are
indexed only after one of these checks; out of range is the invariant failure ``S9``
naming the array, the range and the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from concsim.engine import Runtime


def bounds_failure(
    rt: Runtime, array: str, lo: int, hi: int, size: int, caller: str
) -> BaseException:
    return rt.fail(
        "safety",
        f"{caller} indexes [{lo},{hi}) of {array}, which has {size} entries",
        invariant="S9",
        where=caller,
        array=array,
        range=[lo, hi],
        size=size,
    )


def check_range(rt: Runtime, array: str, lo: int, hi: int, size: int, caller: str) -> None:
    """[lo, hi) must lie in [0, size) (an empty range anywhere in [0, size] is fine)."""
    if not 0 <= lo <= hi <= size:
        raise bounds_failure(rt, array, lo, hi, size, caller)


def check_indices(
    rt: Runtime, array: str, idx: npt.NDArray[np.int64], size: int, caller: str
) -> None:
    """Every index of ``idx`` must lie in [0, size)."""
    if idx.size == 0:
        return
    lo = int(np.minimum.reduce(idx))  # the ufuncs directly: idx.min() wraps them in Python
    hi = int(np.maximum.reduce(idx)) + 1
    if lo < 0 or hi > size:
        raise bounds_failure(rt, array, lo, hi, size, caller)
