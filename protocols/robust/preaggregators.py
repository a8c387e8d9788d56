"""Pre-aggregators: maps from n updates to n' updates, applied before a robust rule."""

from __future__ import annotations

import numpy as np

from protocols.robust.validation import check_updates, squared_distances
from secagg.randomness import SeededRandomness


def nnm(updates: np.ndarray, f: int) -> np.ndarray:
    """Nearest-neighbour mixing (Allouah et al., AISTATS 2023): row i becomes the mean of the n - f updates
    nearest to x_i, itself included. Computed as W @ X with a sparse-by-construction (n, n) mixing matrix,
    so memory is O(n d + n**2), never O(n (n-f) d). Ties in distance go to the lower index.
    """
    x = check_updates(updates, f, finite=False)
    return (nnm_neighbours(squared_distances(x), f) / (x.shape[0] - f)).astype(x.dtype) @ x


def nnm_neighbours(dist: np.ndarray, f: int) -> np.ndarray:
    """The (n, n) 0/1 int64 matrix of NNM: row i marks the n - f rows nearest to i by `dist` (squared
    distances), itself included; ties go to the lower index."""
    n = dist.shape[0]
    order = np.argsort(dist, axis=1, kind="stable")[:, : n - f]
    mixing = np.zeros((n, n), dtype=np.int64)
    np.put_along_axis(mixing, order, 1, axis=1)
    return mixing


def bucketing(updates: np.ndarray, f: int, *, s: int, perm: np.ndarray | None = None, seed: int | None = None) -> np.ndarray:
    """Bucketing (Karimireddy et al., ICLR 2022): permute the rows (`perm`, or a uniform permutation from
    `seed`), split them into ceil(n/s) buckets of s (the last may be smaller) and return the bucket means.
    A Byzantine update spoils at most one bucket, so the following rule still faces f bad rows.
    """
    x = check_updates(updates, f)
    n = x.shape[0]
    if s < 1:
        raise ValueError(f"bucket size s must be >= 1, found {s}")
    if perm is None:
        if seed is None:
            raise ValueError("bucketing needs an explicit permutation `perm` or a `seed`")
        perm = SeededRandomness(seed).permutation(n)
    perm = np.asarray(perm)
    if sorted(perm.tolist()) != list(range(n)):
        raise ValueError(f"perm must be a permutation of range({n})")
    shuffled = x[perm]
    starts = np.arange(0, n, s)
    return np.add.reduceat(shuffled, starts, axis=0) / np.diff(np.append(starts, n))[:, None]
