"""Robust aggregation rules on an (n, d) matrix of updates, f of which may be Byzantine.

Every rule takes `updates` (never mutated) and `f`, refuses n <= 2f, and returns a float vector
of length d. Distances come from one Gram matrix (`squared_distances`); no Python loop runs over
pairs or coordinates. Memory stays O(n d + n**2).
"""

from __future__ import annotations

import numpy as np

from protocols.robust.validation import check_updates, squared_distances


def mean(updates: np.ndarray, f: int = 0) -> np.ndarray:
    """The average: not robust for f > 0 (one update moves it arbitrarily)."""
    return check_updates(updates, f).mean(axis=0)


def coordinate_median(updates: np.ndarray, f: int) -> np.ndarray:
    """Coordinate-wise median (the mean of the two middle values when n is even)."""
    x = check_updates(updates, f)
    n = x.shape[0]
    ordered = np.sort(x, axis=0)  # numpy sorts along axis 0 column-blocked: ~5x faster than np.median here
    return (ordered[(n - 1) // 2].astype(np.float64) + ordered[n // 2]) / 2


def trimmed_mean(updates: np.ndarray, f: int) -> np.ndarray:
    """Coordinate-wise trimmed mean: in each coordinate drop the f largest and f smallest, average n - 2f."""
    x = check_updates(updates, f)
    n = x.shape[0]
    if f == 0:
        return x.mean(axis=0, dtype=np.float64)
    return np.sort(x, axis=0)[f : n - f].mean(axis=0, dtype=np.float64)


def geometric_median(updates: np.ndarray, f: int, *, tol: float = 1e-7, max_iter: int = 500, eps: float = 1e-12) -> np.ndarray:
    """argmin_z sum_i ||z - x_i|| by smoothed Weiszfeld: z <- sum_i w_i x_i / sum_i w_i, w_i = 1 / max(eps, ||z - x_i||).

    Starts at the mean (a start on an update would pin Weiszfeld there); stops when a step moves z by at most tol times the mean
    distance to the updates, or after max_iter steps. Weiszfeld crawls when the minimum sits on an
    update, so the result is the better of z and the best update (objective from one Gram matrix).
    Each step costs one (n, d) matrix-vector product.
    """
    x = check_updates(updates, f)
    sq_norms = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    z = x.mean(axis=0, dtype=np.float64)
    for _ in range(max_iter):  # products in the updates' dtype (float32 BLAS for float32 updates), the rest in float64
        dist = np.sqrt(np.maximum(sq_norms - 2.0 * (x @ z.astype(x.dtype)) + z @ z, 0.0))
        weights = 1.0 / np.maximum(dist, eps)
        new = (weights.astype(x.dtype) @ x) / weights.sum()
        step = np.linalg.norm(new - z)
        z = new
        if step <= tol * max(dist.mean(), eps):
            break
    objective = np.sqrt(np.maximum(sq_norms - 2.0 * (x @ z.astype(x.dtype)) + z @ z, 0.0)).sum()
    at_updates = np.sqrt(squared_distances(x)).sum(axis=1)
    best = int(np.argmin(at_updates))
    # the minimum need not be unique (an even number of collinear updates): keep z unless an update is clearly better
    return x[best].astype(np.float64) if at_updates[best] < objective * (1 - 1e-9) else z


def krum_scores(updates: np.ndarray, f: int) -> np.ndarray:
    """score_i = sum of squared distances from x_i to its n - f - 1 nearest other updates."""
    return scores_from_distances(squared_distances(check_updates(updates, f, finite=False)), f)


def scores_from_distances(dist: np.ndarray, f: int) -> np.ndarray:
    """Krum scores from an (n, n) matrix of squared distances (not modified)."""
    n = dist.shape[0]
    k = n - f - 1
    if k <= 0:
        return np.zeros(n)
    dist = np.array(dist, dtype=np.float64)
    np.fill_diagonal(dist, np.inf)
    return np.partition(dist, k - 1, axis=1)[:, :k].sum(axis=1)


def krum_select(dist: np.ndarray, f: int, m: int | None = None) -> np.ndarray:
    """Ascending indices of the m updates with the lowest Krum scores (default m = n - f; ties go to
    the lower index), from their squared distances: what Multi-Krum averages.

    Raises:
        ValueError: if n <= 2f or m is outside [1, n].
    """
    n = dist.shape[0]
    if n <= 2 * f:
        raise ValueError(f"robust aggregation needs n > 2f, found n={n}, f={f}")
    m = n - f if m is None else m
    if not 1 <= m <= n:
        raise ValueError(f"m must be in [1, n={n}], found {m}")
    return np.sort(np.argsort(scores_from_distances(dist, f), kind="stable")[:m])


def multi_krum(updates: np.ndarray, f: int, m: int | None = None) -> np.ndarray:
    """Average of the m updates with the lowest Krum scores (default m = n - f; ties go to the lower index)."""
    x = check_updates(updates, f, finite=False)
    selected = krum_select(squared_distances(x), f, m)
    total = x[selected[0]].copy()
    for i in selected[1:]:  # row by row, as x[selected].mean(axis=0) adds them (same bits), without gathering a copy
        total += x[i]
    return total / len(selected)


def krum(updates: np.ndarray, f: int) -> np.ndarray:
    """The update with the lowest Krum score (Blanchard et al., NeurIPS 2017): Multi-Krum with m = 1."""
    return multi_krum(updates, f, m=1)


def centered_clipping(updates: np.ndarray, f: int, *, tau: float = 1.0, iterations: int = 1, start: np.ndarray | None = None) -> np.ndarray:
    """Centered clipping (Karimireddy et al., ICML 2021), stateless:
    v <- v + (1/n) sum_i (x_i - v) min(1, tau / ||x_i - v||), `iterations` times from `start` (default 0).
    """
    x = check_updates(updates, f)
    if tau <= 0 or iterations < 1:
        raise ValueError(f"tau must be > 0 and iterations >= 1, found tau={tau}, iterations={iterations}")
    v = np.zeros(x.shape[1]) if start is None else np.array(start, dtype=np.float64)
    if v.shape != (x.shape[1],):
        raise ValueError(f"start must have shape ({x.shape[1]},), found {v.shape}")
    for _ in range(iterations):
        diff = x - v.astype(x.dtype)  # one (n, d) temporary in the updates' dtype
        v = v + (clipping_weights(np.einsum("ij,ij->i", diff, diff, dtype=np.float64), tau) @ diff) / x.shape[0]
    return v


def clipping_weights(squared_norms: np.ndarray, tau: float) -> np.ndarray:
    """min(1, tau / ||y_i||) from the squared norms ||y_i||**2 (1 where the norm is 0)."""
    norms = np.sqrt(np.maximum(np.asarray(squared_norms, dtype=np.float64), 0.0))
    out = np.ones_like(norms)
    np.divide(tau, norms, out=out, where=norms > tau)
    return out
