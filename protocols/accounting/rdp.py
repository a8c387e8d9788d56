"""Renyi-DP curves of the mechanisms, client sampling, composition and conversion to (epsilon, delta).

Every curve is an array over ORDERS (integer orders 2..128 and 256). A mechanism's curve is computed once
per (mechanism, sampling rate, sampling kind) and cached (mechanisms are frozen, hashable data), so
composing T rounds is a sum of T cached arrays. Two kinds of client sampling:

- "poisson": each client joins a round independently with probability q (add/remove-one relation): the
  Gaussian's exact subsampled RDP, and for Skellam and DDG a bound on both directions of the mixture
  divergence (see `_subsampled`), never above Zhu and Wang's (ICML 2019, Theorem 6);
- "without_replacement": exactly m of n clients a round, q = m / n (replace-one relation: one client's
  data is substituted, so the sensitivities of the mechanism are doubled before subsampling), bounded by
  Wang, Balle and Kasiviswanathan (AISTATS 2019, Theorem 9).
Amplification by sampling holds only against an observer that does not learn who took part: pass
sampling_rate=1.0 for the party that samples or sees the participants. For noise added by the clients
themselves (Skellam, DDG, Gaussian shares), Poisson sampling also changes how many noise shares reach the
sum, which these curves (noise of a fixed `clients` shares) do not model; with a fixed m of n a round the
share count is fixed, so "without_replacement" is the relation that matches distributed noise.

`epsilon` of a Gaussian under Poisson sampling goes through Google's `dp_accounting` RDP accountant (its
finer orders); its warnings, and those of every dp_accounting call here, go to the `logging` logger of
this module at DEBUG instead of the user's output.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import dp_accounting
import numpy as np
from dp_accounting import rdp as dp_rdp
from scipy import special

from protocols.accounting.mechanisms import DistributedDiscreteGaussian, Gaussian, Mechanism, Skellam

ORDERS = tuple(range(2, 129)) + (256,)  # integer orders: the subsampling bounds below need them
SAMPLINGS = ("poisson", "without_replacement")
_ORDERS = np.array(ORDERS)
_BASE = np.arange(2, ORDERS[-1] + 1)  # every integer order a subsampled curve at ORDERS draws on
_LOG = logging.getLogger(__name__)


def ddg_rdp(m: DistributedDiscreteGaussian, order):
    """Kairouz et al. 2021, Proposition 14, with l2 = Delta_2 / (sqrt(n) sigma), l1 = Delta_1 / (sqrt(n) sigma):
    min(a/2 l2**2 + tau d, a/2 (l2**2 + 2 l1 tau + tau**2 d), a/2 (l2 + sqrt(d) tau)**2). `order`: int or array."""
    central = math.sqrt(m.clients) * m.local_stddev
    l2, l1, tau, d = m.l2_sensitivity / central, m.l1_sensitivity / central, m.tau, m.dim
    a = np.asarray(order, dtype=float)
    out = np.minimum(np.minimum(a / 2 * l2**2 + tau * d, a / 2 * (l2**2 + 2 * l1 * tau + tau**2 * d)), a / 2 * (l2 + math.sqrt(d) * tau) ** 2)
    return float(out) if out.ndim == 0 else out


def skellam_rdp(m: Skellam, order):
    """Agarwal et al. 2021 (Skellam mechanism), for aggregate noise Sk(mu, mu), mu = n * local_mu:
    a Delta_2**2 / (4 mu) + min(((2a - 1) Delta_2**2 + 6 Delta_1) / (16 mu**2), 3 Delta_1 / (4 mu)). `order`: int or array."""
    mu = m.clients * m.local_mu
    d2, d1 = m.l2_sensitivity**2, m.l1_sensitivity
    a = np.asarray(order, dtype=float)
    out = a * d2 / (4 * mu) + np.minimum(((2 * a - 1) * d2 + 6 * d1) / (16 * mu**2), 3 * d1 / (4 * mu))
    return float(out) if out.ndim == 0 else out


def base_rdp(mechanism: Mechanism, orders: np.ndarray) -> np.ndarray:
    """RDP of one unsampled round at each of `orders` (Gaussian: a / (2 z**2))."""
    if isinstance(mechanism, Gaussian):
        return orders / (2 * mechanism.noise_multiplier**2)
    if isinstance(mechanism, DistributedDiscreteGaussian):
        return ddg_rdp(mechanism, orders)
    if isinstance(mechanism, Skellam):
        return skellam_rdp(mechanism, orders)
    raise TypeError(f"no RDP curve for {type(mechanism).__name__}")


def _log_comb(a: np.ndarray, ell: np.ndarray) -> np.ndarray:
    return special.gammaln(a + 1) - special.gammaln(ell + 1) - special.gammaln(a - ell + 1)


def _subsampled(base: np.ndarray, q: float, sampling: str, *, gaussian: bool = False) -> np.ndarray:
    """Subsampled RDP at ORDERS from `base` = the unsampled RDP at orders 2..256 (index l - 2), all orders at
    once (log-sum-exp over a matrix of terms l = 0..a; impossible terms l > a are -inf), capped by eps(a).

    Poisson, add/remove: with P the output without the client, Q with it, the neighbours are
    M = (1-q) P + q Q and P, and both directions are bounded.
    - D_a(M || P) = (1/(a-1)) log E_P[(1 - q + q Q/P)**a] = (1/(a-1)) log sum_l C(a,l) (1-q)**(a-l) q**l E_P[(Q/P)**l]
      (binomial expansion, integer a), and E_P[(Q/P)**l] = e**((l-1) D_l(Q || P)) <= e**((l-1) eps(l)):
      `_expansion`. For the Gaussian this direction is the larger one and the expansion is its exact RDP
      (Mironov, Talwar, Zhang 2019; what dp_accounting computes).
    - D_a(P || M), for Skellam and DDG: `_remove_direction`.
    Their max, and Zhu-Wang's Theorem 6 (the same expansion with a factor 3 on l >= 3, which covers both
    directions) are both upper bounds: the smaller is kept.
    Without replacement, Wang-Balle-Kasiviswanathan Theorem 9 (eps(inf) = inf for these mechanisms):
      (1/(a-1)) log[1 + q**2 C(a,2) min(4 (e**eps(2) - 1), 2 e**eps(2)) + 2 sum_{l=3}^a q**l C(a,l) e**((l-1) eps(l))]."""
    unsampled = base[_ORDERS - 2]
    if sampling == "poisson":
        exact, zhu_wang = _expansion(base, q)
        tight = exact if gaussian else np.minimum(np.maximum(exact, _remove_direction(base[0], q)), zhu_wang)
        return np.minimum(unsampled, tight)
    a, ell, valid, lc = _matrix()
    eps2 = base[0]
    terms = lc + ell * math.log(q) + (ell - 1) * base[None, :] + math.log(2)
    terms[:, 0] = lc[:, 0] + 2 * math.log(q) + min(math.log(4) + eps2 + math.log(-math.expm1(-eps2)), math.log(2) + eps2)
    total = np.logaddexp(0.0, _logsumexp_rows(np.where(valid, terms, -np.inf)))
    return np.minimum(unsampled, total / (_ORDERS - 1))


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """log sum exp along each row (-inf for a row of -inf); scipy's is 5x slower on these small matrices."""
    top = x.max(axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return top + np.log(np.exp(x - top[:, None]).sum(axis=1))


@functools.cache
def _matrix() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Orders a (column), terms l (row), l <= a, and log C(a, l) (-inf where l > a)."""
    a, ell = _ORDERS[:, None].astype(float), _BASE[None, :].astype(float)
    valid = ell <= a
    with np.errstate(invalid="ignore"):
        lc = np.where(valid, _log_comb(a, ell), -np.inf)
    for arr in (a, ell, valid, lc):
        arr.setflags(write=False)
    return a, ell, valid, lc


def _expansion(base: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """(1/(a-1)) log[(1-q)**(a-1) (a q - q + 1) + sum_{l=2}^a k_l C(a,l) (1-q)**(a-l) q**l e**((l-1) eps(l))]
    with k_l = 1 (the binomial expansion) and with k_l = 3 for l >= 3 (Zhu-Wang), from one matrix of terms
    (the terms l = 0, 1 summed in closed form)."""
    a, ell, valid, lc = _matrix()
    log1mq = math.log1p(-q)
    with np.errstate(invalid="ignore"):
        terms = np.where(valid, lc + (a - ell) * log1mq + ell * math.log(q) + (ell - 1) * base[None, :], -np.inf)
    first = (_ORDERS - 1) * log1mq + np.log1p(q * (_ORDERS - 1))
    two, rest = terms[:, 0], _logsumexp_rows(terms[:, 1:])
    head = np.logaddexp(first, two)
    return np.logaddexp(head, rest) / (_ORDERS - 1), np.logaddexp(head, math.log(3) + rest) / (_ORDERS - 1)


@functools.cache
def _series_coefficients() -> np.ndarray:
    """log C(a+k-2, k) for a in ORDERS (rows), k = 2..399 (columns): the series of c_a in `_remove_direction`."""
    a, k = _ORDERS[:, None].astype(float), np.arange(2, 400, dtype=float)[None, :]
    out = special.gammaln(a + k - 1) - special.gammaln(k + 1) - special.gammaln(a - 1)
    out.setflags(write=False)
    return out


def _remove_direction(eps2: float, q: float) -> np.ndarray:
    """D_a(P || (1-q) P + q Q) <= min(-log(1-q), (1/(a-1)) log(1 + c_a (e**eps(2) - 1))), at every order a of ORDERS,
    c_a = (1-q)**(1-a) - 1 - (a-1) q = sum_{k>=2} C(a+k-2, k) q**k.

    Why: D_a(P || M) = (1/(a-1)) log E_P[g(L)], L = Q/P, g(L) = (1 - q + q L)**(1-a). By Taylor at L = 1,
    g(L) = 1 + (1-a) q (L-1) + h(L) (L-1)**2 with h(L) = int_0^1 (1-t) g''(1 + t (L-1)) dt, which decreases in L
    because g'' does; so h(L) <= h(0) = c_a for L >= 0. E_P[L] = 1 and E_P[L**2] = e**D_2(Q || P) <= e**eps(2),
    hence E_P[g(L)] <= 1 + c_a (e**eps(2) - 1). And P / M <= 1 / (1-q) everywhere gives the first term."""
    a = _ORDERS.astype(float)
    x = -(a - 1) * math.log1p(-q)
    small = (a - 1) * q < 0.5  # the series, free of cancellation; elsewhere the closed form is accurate
    series = _logsumexp_rows(_series_coefficients() + np.arange(2, 400) * math.log(q))
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = x + np.log(-np.expm1(-x) - (a - 1) * q * np.exp(-x))
    log_c = np.where(small, series, closed)
    return np.minimum(-math.log1p(-q), np.logaddexp(0.0, log_c + math.log(math.expm1(eps2))) / (a - 1))


@functools.lru_cache(maxsize=4096)
def _curve(mechanism: Mechanism, q: float, sampling: str) -> np.ndarray:
    """The cached one-round curve at ORDERS (read-only: it is shared by every caller)."""
    if sampling == "without_replacement":
        mechanism = _replace_one(mechanism)
    if q == 1.0:
        curve = base_rdp(mechanism, _ORDERS.astype(float))
    else:
        curve = _subsampled(base_rdp(mechanism, _BASE.astype(float)), q, sampling, gaussian=isinstance(mechanism, Gaussian))
    curve.setflags(write=False)
    return curve


def _replace_one(mechanism: Mechanism) -> Mechanism:
    """The same noise against the replace-one relation: one client's clipped update substituted moves the
    sum by at most twice the add/remove sensitivity."""
    if isinstance(mechanism, Gaussian):
        return Gaussian(noise_multiplier=mechanism.noise_multiplier / 2)
    fields = {name: getattr(mechanism, name) for name in mechanism.__dataclass_fields__}
    fields.update(l2_sensitivity=2 * mechanism.l2_sensitivity, l1_sensitivity=2 * mechanism.l1_sensitivity)
    return type(mechanism)(**fields)


def _check(sampling_rate: float, sampling: str, delta: float | None = None) -> None:
    if not 0.0 < sampling_rate <= 1.0:
        raise ValueError(f"sampling_rate must be in (0, 1], found {sampling_rate}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, found {sampling!r}")
    if delta is not None and not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), found {delta}")


def subsampled_rdp(rdp_at: Callable[[int], float], order: int, q: float, *, sampling: str = "poisson") -> float:
    """The subsampled RDP at one integer `order` of ORDERS of a mechanism whose unsampled RDP (for the relation of
    `sampling`: add/remove for Poisson, replace-one without replacement) is `rdp_at(l)`, by the general bounds
    of `_subsampled`. Slow path for an arbitrary curve; mechanisms use `rdp_curve`."""
    _check(q, sampling)
    if order not in ORDERS:
        raise ValueError(f"order must be one of ORDERS, found {order}")
    base = np.array([rdp_at(int(ell)) for ell in _BASE[: order - 1]] + [0.0] * (len(_BASE) - order + 1))  # padding: unused at `order`
    if q == 1.0:
        return float(rdp_at(order))
    return float(_subsampled(base, q, sampling)[ORDERS.index(order)])


def rdp_curve(mechanism: Mechanism, *, steps: int, sampling_rate: float, sampling: str = "poisson") -> np.ndarray:
    """RDP at each of ORDERS after `steps` rounds, each sampling clients at `sampling_rate` (see the module doc)."""
    _check(sampling_rate, sampling)
    return steps * _curve(mechanism, float(sampling_rate), sampling)


@contextlib.contextmanager
def _dp_accounting_logs() -> Iterator[None]:
    """Re-emit dp_accounting's absl warnings ("failed to converge", ...) on this module's logger at DEBUG,
    so that they do not reach the user's terminal."""

    def forward(record: logging.LogRecord) -> bool:
        _LOG.debug("dp_accounting: %s", record.getMessage())
        return False

    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(forward)
    try:
        yield
    finally:
        absl_logger.removeFilter(forward)


def to_epsilon(curve: np.ndarray, delta: float) -> float:
    """(epsilon, delta) from an RDP curve at ORDERS (Canonne-Kamath-Steinke conversion, via dp_accounting)."""
    with _dp_accounting_logs():
        return float(dp_rdp.compute_epsilon(ORDERS, curve, delta)[0])


def gaussian_epsilon(mechanism: Gaussian, *, steps: int, sampling_rate: float, delta: float, accountant: str = "rdp") -> float:
    """dp_accounting on (Poisson-sampled) Gaussian events composed `steps` times: its RDP accountant (its default,
    finer orders) or, with accountant="pld", its privacy-loss-distribution accountant (tighter, slower)."""
    event = dp_accounting.GaussianDpEvent(mechanism.noise_multiplier)
    if sampling_rate < 1.0:
        event = dp_accounting.PoissonSampledDpEvent(sampling_rate, event)
    with _dp_accounting_logs():
        if accountant == "pld":
            return float(dp_accounting.pld.PLDAccountant().compose(event, steps).get_epsilon(delta))
        if accountant != "rdp":
            raise ValueError(f"accountant must be 'rdp' or 'pld', found {accountant!r}")
        return float(dp_rdp.RdpAccountant().compose(event, steps).get_epsilon(delta))


def epsilon(mechanism: Mechanism, *, steps: int, sampling_rate: float = 1.0, delta: float, sampling: str = "poisson") -> float:
    """(epsilon, delta)-DP of `steps` rounds of `mechanism`, each sampling clients at `sampling_rate`.

    Raises:
        ValueError: for steps < 1, sampling_rate outside (0, 1], delta outside (0, 1) or an unknown sampling.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, found {steps}")
    _check(sampling_rate, sampling, delta)
    if isinstance(mechanism, Gaussian) and sampling == "poisson":
        return gaussian_epsilon(mechanism, steps=steps, sampling_rate=sampling_rate, delta=delta)
    return to_epsilon(rdp_curve(mechanism, steps=steps, sampling_rate=sampling_rate, sampling=sampling), delta)


def composed_rdp(mechanisms: Iterable[Mechanism], *, sampling_rate: float = 1.0, sampling: str = "poisson") -> np.ndarray:
    """Sum of the cached one-round curves at ORDERS: O(T) for T rounds, one curve computed per distinct mechanism."""
    _check(sampling_rate, sampling)
    total = np.zeros(len(ORDERS))
    for m, count in Counter(mechanisms).items():
        total += count * _curve(m, float(sampling_rate), sampling)
    return total


def compose_epsilon(mechanisms: list[Mechanism], *, sampling_rate: float = 1.0, delta: float, sampling: str = "poisson") -> float:
    """(epsilon, delta) of running the given per-round mechanisms one after another (their RDP curves add
    up at every order). Rounds may differ, e.g. in how many clients' noise reached the output.
    Gaussian rounds use their exact (subsampled) RDP at ORDERS here, so that all curves share ORDERS."""
    _check(sampling_rate, sampling, delta)
    if not mechanisms:
        return 0.0
    return to_epsilon(composed_rdp(mechanisms, sampling_rate=sampling_rate, sampling=sampling), delta)


def calibrate(make, target_epsilon: float, *, steps: int, sampling_rate: float = 1.0, delta: float, low: float = 1e-3, high: float = 1e6,
              sampling: str = "poisson") -> float:
    """Smallest noise parameter p in [low, high] (to 0.1%) with epsilon(make(p), ...) <= target_epsilon.

    `make(p)` builds the mechanism for noise parameter p (noise multiplier, local stddev, local mu);
    epsilon decreases as p grows.

    Raises:
        ValueError: if even `high` does not reach the target.
    """
    eps = lambda p: epsilon(make(p), steps=steps, sampling_rate=sampling_rate, delta=delta, sampling=sampling)  # noqa: E731
    if eps(high) > target_epsilon:
        raise ValueError(f"epsilon {target_epsilon} is out of reach even with noise parameter {high}")
    while high / low > 1.001:
        mid = math.sqrt(low * high)
        if eps(mid) <= target_epsilon:
            high = mid
        else:
            low = mid
    return high
