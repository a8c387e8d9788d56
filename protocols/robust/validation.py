"""Checks shared by the robust rules: a finite (n, d) float matrix and n > 2f."""

from __future__ import annotations

import numpy as np


def check_updates(updates: np.ndarray, f: int, *, name: str = "updates", finite: bool = True) -> np.ndarray:
    """Returns `updates` as a float array (no copy when already float), after checking it (`finite=False`: all but
    finiteness, for a caller that passes it straight to `squared_distances`, which checks it in its one pass).

    Raises:
        TypeError: if updates is not a numpy array.
        ValueError: unless it is 2-D with n >= 1 rows and d >= 1 columns, finite, and 0 <= 2f < n.
    """
    if not isinstance(updates, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of shape (n, d), found {type(updates).__name__}")
    if updates.ndim != 2 or updates.shape[0] < 1 or updates.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, d) with n, d >= 1, found {updates.shape}")
    if not np.issubdtype(updates.dtype, np.floating):
        updates = updates.astype(np.float64)
    # a finite sum has finite terms (one pass, no temporary); a sum that overflowed is checked entry by entry
    if finite and not np.isfinite(updates.sum()) and not np.all(np.isfinite(updates)):
        raise ValueError(f"{name} contains NaN or infinity")
    n = updates.shape[0]
    if not isinstance(f, (int, np.integer)) or f < 0:
        raise ValueError(f"f must be a non-negative integer, found {f!r}")
    if n <= 2 * f:
        raise ValueError(f"n={n} updates cannot tolerate f={f} Byzantine ones: robust aggregation needs n > 2f")
    return updates


BLOCK_BYTES = 1 << 21  # columns per block: one block of the input's rows is about 2 MiB (it stays in cache)


def squared_distances(updates: np.ndarray) -> np.ndarray:
    """(n, n) squared L2 distances ||x_i - x_j||**2 = G_ii + G_jj - 2 G_ij (float64 result), G the Gram matrix of the
    updates minus a centre c near their mean (distances do not depend on c; the cancellation when the updates share a
    large common component does: rows are stored as x - c, where they are small).

    Taken over blocks of columns: each block is centred on its own mean (computed in the input's dtype) into a
    cache-sized buffer and multiplied by BLAS in the input's dtype; the block Gram matrices are summed in float64.
    No centred copy of the input: extra memory O(n**2 + n * block). Cost O(n**2 d), one pass over the input.

    Raises:
        ValueError: if the updates contain NaN or infinity (seen in the block means).
    """
    if not np.issubdtype(updates.dtype, np.floating):
        updates = updates.astype(np.float64)
    n, d = updates.shape
    width = max(1, min(d, BLOCK_BYTES // (n * updates.itemsize)))
    buffer = np.empty((n, width), dtype=updates.dtype)
    centre = np.empty(width, dtype=updates.dtype)
    gram = np.zeros((n, n))
    for start in range(0, d, width):
        view = updates[:, start : start + width]
        block, c = buffer[:, : view.shape[1]], centre[: view.shape[1]]
        np.add.reduce(view, axis=0, out=c)
        if not np.all(np.isfinite(c)) and not np.all(np.isfinite(view)):  # a non-finite mean: NaN, inf, or an overflow
            raise ValueError("updates contains NaN or infinity")
        c /= n
        np.subtract(view, c, out=block)
        gram += block @ block.T
    norms = np.diag(gram).copy()
    dist = norms[:, None] + norms[None, :] - 2.0 * gram
    np.fill_diagonal(dist, 0.0)
    return np.maximum(dist, 0.0)
