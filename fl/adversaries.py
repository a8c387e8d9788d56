"""Byzantine and mistaken clients.

Update attacks take the honest updates of the round, an (h, d) matrix (omniscient: they see all of
them), and return the f Byzantine updates, an (f, d) matrix; they need no model. Data attacks
(label flipping, mistaken clients) rewrite a client's labels before it trains: the client then
runs the honest training code on wrong data. `draw_round` samples a round's participants with an exact
number of attackers among them.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def _honest(honest: np.ndarray, f: int) -> np.ndarray:
    if not isinstance(honest, np.ndarray) or honest.ndim != 2 or honest.shape[0] < 1:
        raise ValueError(f"honest updates must be an (h, d) array with h >= 1, found {getattr(honest, 'shape', honest)}")
    if f < 0:
        raise ValueError(f"f must be >= 0, found {f}")
    return honest.astype(np.float64, copy=False)


def sign_flipping(honest: np.ndarray, f: int) -> np.ndarray:
    """Each Byzantine client sends minus the mean honest update."""
    x = _honest(honest, f)
    return np.repeat(-x.mean(axis=0, keepdims=True), f, axis=0)


def gaussian(honest: np.ndarray, f: int, *, sigma: float = 200.0, rng: np.random.Generator) -> np.ndarray:
    """Each Byzantine client sends N(0, sigma**2 I) noise."""
    x = _honest(honest, f)
    return rng.normal(0.0, sigma, size=(f, x.shape[1]))


def inner_product_manipulation(honest: np.ndarray, f: int, *, epsilon: float = 0.1) -> np.ndarray:
    """IPM (Xie et al., UAI 2019): -epsilon times the mean honest update, so that the aggregate's inner
    product with the true gradient turns negative when the rule lets it through."""
    x = _honest(honest, f)
    return np.repeat(-epsilon * x.mean(axis=0, keepdims=True), f, axis=0)


def alie_z(n: int, f: int) -> float:
    """z of A Little Is Enough (Baruch et al., NeurIPS 2019): s = floor(n/2 + 1) - f supporters are needed,
    and z = Phi^-1((n - s) / n) keeps the attack inside the honest spread."""
    s = n // 2 + 1 - f
    if not 0 < s < n:
        raise ValueError(f"ALIE needs 0 < floor(n/2 + 1) - f < n, found n={n}, f={f}")
    return NormalDist().inv_cdf((n - s) / n)


def a_little_is_enough(honest: np.ndarray, f: int, *, n: int, z: float | None = None) -> np.ndarray:
    """ALIE: mean - z * std of the honest updates, coordinate-wise (z from n and f unless given)."""
    x = _honest(honest, f)
    z = alie_z(n, f) if z is None else z
    return np.repeat((x.mean(axis=0) - z * x.std(axis=0))[None, :], f, axis=0)


def mimic(honest: np.ndarray, f: int, *, target: int = 0) -> np.ndarray:
    """Every Byzantine client copies honest client `target`, over-weighting it (Karimireddy et al., ICLR 2022)."""
    x = _honest(honest, f)
    if not 0 <= target < x.shape[0]:
        raise ValueError(f"target must index an honest update in [0, {x.shape[0]}), found {target}")
    return np.repeat(x[target : target + 1], f, axis=0)


UPDATE_ATTACKS = {
    "sign_flipping": sign_flipping,
    "gaussian": gaussian,
    "ipm": inner_product_manipulation,
    "alie": a_little_is_enough,
    "mimic": mimic,
}
DATA_ATTACKS = ("label_flipping",)  # the Byzantine client trains honestly on flipped labels (`flip_labels`)
ATTACKS = (*UPDATE_ATTACKS, *DATA_ATTACKS)
MISLABEL_KINDS = ("uniform", "class_pair", "per_class")


def attack(name: str, honest: np.ndarray, f: int, *, n: int, rng: np.random.Generator, alie_z: float | None = None,
           ipm_epsilon: float = 0.1, gaussian_sigma: float = 200.0) -> np.ndarray:
    """The f Byzantine updates of update attack `name`, with its parameters (ALIE's z, None: from n and f;
    IPM's epsilon; the Gaussian sigma, in update units). Raises ValueError naming an unknown attack."""
    if name not in UPDATE_ATTACKS:
        raise ValueError(f"attack must be one of {sorted(UPDATE_ATTACKS)} to replace updates, found {name!r}")
    kwargs = {"alie": {"n": n, "z": alie_z}, "gaussian": {"rng": rng, "sigma": gaussian_sigma}, "ipm": {"epsilon": ipm_epsilon}}
    return UPDATE_ATTACKS[name](honest, f, **kwargs.get(name, {}))


def byzantine_counts(clients: int, participants: int, byzantine: float, attackers: int | None) -> tuple[int, int]:
    """(Byzantine clients in the population, attackers among each round's participants).

    A fraction `byzantine` gives floor(byzantine * clients) and floor(byzantine * participants); a count
    `attackers` a round gives a population of round(attackers * clients / participants), at least
    `attackers`, and small enough that every round also finds participants - attackers honest clients.
    """
    if attackers is None:
        return math.floor(byzantine * clients + 1e-9), math.floor(byzantine * participants + 1e-9)
    population = max(attackers, round(attackers * clients / participants))
    return min(population, clients - participants + attackers), attackers


def draw_round(rng: np.random.Generator, clients: int, participants: int, byzantine: np.ndarray, attackers: int) -> np.ndarray:
    """Sorted ids of `participants` distinct clients, exactly `attackers` of them from `byzantine` (ids).
    Without Byzantine clients, or when every client takes part, this is rng.choice(clients, participants, replace=False).

    Raises:
        ValueError: if the population cannot supply that many attackers or honest participants.
    """
    byzantine = np.asarray(byzantine, dtype=np.int64)
    honest = np.setdiff1d(np.arange(clients), byzantine)
    if not 0 <= attackers <= len(byzantine) or participants - attackers > len(honest) or attackers > participants:
        raise ValueError(f"cannot draw {participants} participants with {attackers} attackers from {len(byzantine)} Byzantine "
                         f"and {len(honest)} honest clients")
    if len(byzantine) == 0 or participants == clients:
        return np.sort(rng.choice(clients, size=participants, replace=False))
    chosen = np.concatenate([rng.choice(byzantine, size=attackers, replace=False), rng.choice(honest, size=participants - attackers, replace=False)])
    return np.sort(chosen)


def flip_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Label flipping: y -> num_classes - 1 - y, for every sample of a Byzantine client."""
    labels = _labels(labels, num_classes)
    return (num_classes - 1 - labels).astype(labels.dtype)


def mislabel(labels: np.ndarray, fraction: float, num_classes: int, *, rng: np.random.Generator, kind: str = "uniform") -> np.ndarray:
    """A mistaken client (honest by intention, e.g. a hospital with mis-coded records). Returns a new array.

    kind "uniform": a random `fraction` of its samples get a uniformly drawn *wrong* label.
    "class_pair" (systematic, pair flipping): a random `fraction` of the samples of each class c get label
    (c + 1) mod num_classes. "per_class": class c has its own rate r_c ~ U[0, min(1, 2 fraction)] (mean
    `fraction` when fraction <= 1/2), and round(r_c * its samples) of them get a uniformly drawn wrong label.
    """
    labels = _labels(labels, num_classes)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], found {fraction}")
    if num_classes < 2:
        raise ValueError(f"mislabelling needs at least 2 classes, found {num_classes}")
    if kind not in MISLABEL_KINDS:
        raise ValueError(f"kind must be one of {MISLABEL_KINDS}, found {kind!r}")
    out = labels.copy()
    if kind == "uniform":
        wrong = rng.choice(len(labels), size=int(round(fraction * len(labels))), replace=False)
        out[wrong] = (labels[wrong] + rng.integers(1, num_classes, size=len(wrong))) % num_classes
        return out
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        rate = fraction if kind == "class_pair" else rng.uniform(0.0, min(1.0, 2 * fraction))
        wrong = rng.choice(members, size=int(round(rate * len(members))), replace=False)
        shift = 1 if kind == "class_pair" else rng.integers(1, num_classes, size=len(wrong))
        out[wrong] = (c + shift) % num_classes
    return out


def _labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
        raise ValueError(f"labels must be a 1-D integer array in [0, {num_classes})")
    return labels
