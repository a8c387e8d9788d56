"""Writes `ill_conditioned.npz` (run `python -m fl.data.make_ill_conditioned`): a generated binary task whose only
signal lies in a direction of low curvature, so plain averaging needs many rounds and an attack that slows it shows.

4000 samples x 20 features, from numpy's PCG64 seeded 2026: labels y uniform in {0, 1}, s = 2y - 1; features 2..19
and u are N(0, 1); x0 = u + 0.15 s + 0.03 N(0, 1), x1 = u. After standardization x0 and x1 are nearly equal, and the
label is in their difference (a Hessian eigenvalue of about 0.15**2 / 2 against 1 elsewhere): gradient steps learn it
slowly, linearly in the rounds, and a 20% sign-flipping attack (which scales the mean update by 0.6) delays it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED, SAMPLES, FEATURES, GAP = 2026, 4000, 20, 0.15


def generate() -> tuple[np.ndarray, np.ndarray]:
    """(x float32 (4000, 20), y int64 (4000,)), the same on every machine (PCG64 and float64 normals)."""
    rng = np.random.default_rng(SEED)
    y = rng.integers(0, 2, SAMPLES)
    s = 2 * y - 1
    x = rng.normal(0, 1, (SAMPLES, FEATURES))
    u = rng.normal(0, 1, SAMPLES)
    x[:, 0] = u + GAP * s + 0.2 * GAP * rng.normal(size=SAMPLES)
    x[:, 1] = u
    return x.astype(np.float32), y.astype(np.int64)


if __name__ == "__main__":
    x, y = generate()
    np.savez_compressed(Path(__file__).with_name("ill_conditioned.npz"), x=x, y=y)
