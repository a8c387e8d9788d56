"""Checks shared by the robust rules: a finite (n, d) float matrix and n > 2f."""

from __future__ import annotations

import numpy as np


def check_updates(updates: np.ndarray, f: int, *, name: str = "updates") -> np.ndarray:
    """Returns `updates` as a float array (no copy when already float), after checking it.

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
    if not np.all(np.isfinite(updates)):
        raise ValueError(f"{name} contains NaN or infinity")
    n = updates.shape[0]
    if not isinstance(f, (int, np.integer)) or f < 0:
        raise ValueError(f"f must be a non-negative integer, found {f!r}")
    if n <= 2 * f:
        raise ValueError(f"n={n} updates cannot tolerate f={f} Byzantine ones: robust aggregation needs n > 2f")
    return updates


def squared_distances(updates: np.ndarray) -> np.ndarray:
    """(n, n) squared L2 distances from one Gram matrix of the centred updates (float64 result).

    ||x_i - x_j||**2 = G_ii + G_jj - 2 G_ij with G = (X - mean)(X - mean)^T; centring first keeps the
    cancellation small when the updates share a large common component. Cost O(n**2 d), memory O(n d + n**2).
    """
    centred = updates - updates.mean(axis=0, dtype=np.float64).astype(updates.dtype)
    gram = (centred @ centred.T).astype(np.float64)
    norms = np.diag(gram)
    dist = norms[:, None] + norms[None, :] - 2.0 * gram
    np.fill_diagonal(dist, 0.0)
    return np.maximum(dist, 0.0)
