"""Input checks shared by the markets scores and backtests: numeric arrays of the expected rank, with no gaps."""

from __future__ import annotations

import numpy as np

from shared.errors import DataError


def finite_array(x, name: str, ndims: tuple[int, ...] = (1,)) -> np.ndarray:
    """`x` (numpy, pandas or CPU torch) as a float64 array of one of the ranks `ndims`, non-empty and finite."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim not in ndims:
        want = " or ".join(map(str, ndims))
        raise DataError(f"{name} has shape {arr.shape}; pass an array with {want} dimension(s) (one row per day)")
    if arr.size == 0:
        raise DataError(f"{name} is empty; pass at least one day of data")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or inf; drop or fill those days first")
    return arr
