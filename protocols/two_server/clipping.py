"""Centered clipping and norm bounding over additive shares (public weights, SecureML truncation):

    m v_{l+1} = sum_i w_i x_i + (m - sum_i w_i) v_l = m v_l + sum_i w_i (x_i - v_l),   w_i = min(1, tau / ||x_i - v_l||),

the weights applied as f_i = round(w_i 2**k) / 2**k, in the sum and in the carry alike (sum_i f_i x_i + (m - sum_i f_i) v_l,
so the weights' rounding moves m v_{l+1} by sum_i (f_i - w_i)(x_i - v_l), at most sum_i |f_i - w_i| ||x_i - v_l||), and the
shares truncated by 2**k (`secagg.beaver.truncate`)."""

from __future__ import annotations

import numpy as np

from protocols.core.messages import Kind
from protocols.robust.rules import clipping_weights
from protocols.two_server.channel import S0, Channel
from protocols.two_server.gates import PARTIES
from secagg.beaver import to_signed, truncate

TRUNCATION_BITS = 12


def clip_on_shares(ch: Channel, x: dict, norms: dict, d: int, tau: float, iterations: int) -> tuple[np.ndarray, np.ndarray, dict, float]:
    """Centered clipping from v = 0 over the shares x (m, d) with shares `norms` (m,) of ||x_i||**2 (a norm triple's, or
    a Gram matrix's diagonal); returns each input's coefficient c_i in m v_L (c = f_l + (1 - F_l / m) c over the
    iterations, f_l = round(w_i 2**k) / 2**k the applied weights, F_l their sum; it may exceed 1 after several), which inputs
    had a positive applied weight at some iteration (exactly those have c_i > 0: a carry m - F_l is 0 only when every f_i is 1),
    the shares of m v_L and an L2 bound on its error (integer units).
    Opens ||x_i - v_l||**2 = ||x_i||**2 - 2 <x_i, v_l> + ||v_l||**2 and v_1..v_(L-1)."""
    m = x[S0].shape[0]
    v = np.zeros(d, dtype=np.int64)  # public iterate, integer units
    scale = np.uint64(1 << TRUNCATION_BITS)
    error = 0.0
    contributes, coefficients = np.zeros(m, dtype=bool), np.zeros(m)
    for it in range(iterations):
        sq = {}
        for p, idx in PARTIES:
            with ch.timer(p):
                cross = x[p] @ v.astype(np.uint64)  # <x_i, v> shares
                sq[p] = norms[p] - np.uint64(2) * cross + (np.uint64(int(v @ v) % 2**64) if idx == 0 else np.uint64(0))
        distances = to_signed(ch.exchange(Kind.MATRIX, {p: sq[p][None, :] for p in sq}, (1, m))[0]).astype(np.float64)  # ||x_i - v||^2
        w = clipping_weights(distances, tau)
        fixed = np.round(w * float(scale)).astype(np.uint64)
        applied = fixed / float(scale)
        contributes |= fixed > 0  # w_i < 2**-(k+1) rounds to 0: that input is not in this iteration's sum
        coefficients = applied + (1.0 - applied.sum() / m) * coefficients
        # error of m v_(it+1), L2 (the map v -> v + mean_i clip(x_i - v) is 1-Lipschitz, so errors add):
        # +-1 a coordinate from truncation, 1/2 from S0's carry round((m - F) v) once v != 0, the weights' rounding times
        # ||x_i - v||, v rounded to integers
        error += np.sqrt(d) * (1.5 if it else 1.0) + float(np.abs(w - applied) @ np.sqrt(np.maximum(distances, 0)))
        if it + 1 < iterations:
            error += m * 0.5 * np.sqrt(d)
        out = {}
        for p, idx in PARTIES:
            with ch.timer(p):
                out[p] = truncate(fixed @ x[p], TRUNCATION_BITS, idx)
                if idx == 0:
                    out[p] = out[p] + np.round((m - applied.sum()) * v).astype(np.int64).astype(np.uint64)
        if it + 1 < iterations:
            total = to_signed(ch.exchange(Kind.MATRIX, {p: out[p][None, :] for p in out}, (1, d))[0])
            v = np.round(total / m).astype(np.int64)
    return coefficients, contributes, out, error
