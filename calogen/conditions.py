"""Per-shower conditions (energy, angle) given as one number or one value per shower."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["as_condition_array"]


def as_condition_array(value: float | npt.ArrayLike, n: int | None, name: str) -> npt.NDArray[np.float64]:
    """``value`` as a float64 (n,) array: a number is repeated ``n`` times, an array must have n entries.

    With ``n=None`` the array keeps its own length. Raises ValueError naming ``name`` on a shape mismatch.
    """
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a number or a 1-d array, got shape {arr.shape}")
    if n is not None:
        if arr.size == 1:
            arr = np.full(n, arr[0])
        elif arr.size != n:
            raise ValueError(f"{name} has {arr.size} values but n={n}; pass one value or n values")
    return arr
