"""Distributed DP noise: each client adds an integer noise share in Z_{2^b} before protection.

The shares are sized so that `expected_clients` of them sum to the target noise. Dropped clients add
nothing, and the shares of colluding or Byzantine clients (`assume_colluding`: the server may know them,
or they were never added) do not count, so the guarantee accounts with the noise that actually reached the
aggregate: (included - assume_colluding) shares. Under a rule that chose its inputs or their weights from the
noisy inputs (a robust rule over shares or ciphertexts, `Output.chosen_from_inputs`) it accounts with one share,
each client's own (`counted_shares`). A layer states one round; composing rounds, per observer, is the
experiment's job (`fl.privacy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from protocols.accounting import DistributedDiscreteGaussian, Skellam, epsilon
from protocols.core.protocol import RingProtocol
from protocols.core.report import Guarantee, Output, ThreatModel
from protocols.dp.samplers import discrete_gaussian, skellam
from protocols.layers.transform import TransformLayer
from secagg.randomness import Randomness
from secagg.ring import Ring

MECHANISMS = ("skellam", "ddg")


def noise_mechanism(kind: str, local_variance: float, clients: int, dim: int, l2: float, l1: float) -> Skellam | DistributedDiscreteGaussian:
    """The accounting mechanism of `clients` shares of variance `local_variance` each (integer units)."""
    common = {"clients": clients, "dim": dim, "l2_sensitivity": l2, "l1_sensitivity": l1}
    if kind == "skellam":
        return Skellam(local_mu=local_variance / 2, **common)
    return DistributedDiscreteGaussian(local_stddev=math.sqrt(local_variance), **common)


@dataclass(eq=False)
class DistributedNoise(TransformLayer):
    """Adds Sk(local_variance / 2) or N_Z(0, local_variance) per coordinate (integer units) to each client's
    ring vector. `l2_sensitivity` and `l1_sensitivity` are those of one client's integer vector."""

    mechanism: str
    local_variance: float
    l2_sensitivity: float
    l1_sensitivity: float
    inner: RingProtocol
    delta: float = 1e-5
    assume_colluding: int = 0
    name: str = "noise"

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS}, found {self.mechanism!r}")
        if not self.local_variance > 0 or self.assume_colluding < 0:
            raise ValueError(f"need local_variance > 0 and assume_colluding >= 0; found {self.local_variance}, {self.assume_colluding}")

    @property
    def bits(self) -> int:
        """The ring of the inner protocol, which this layer's noise lives in."""
        return self.inner.bits

    def prepare(self, n: int, d: int, rng: Randomness) -> None:
        self._d, self._n = d, n

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        ring = Ring(self.bits)
        if self.mechanism == "skellam":
            noise = skellam(rng, len(row), self.local_variance / 2)
        else:
            noise = discrete_gaussian(rng, len(row), math.sqrt(self.local_variance))
        return ring.add(row, noise.astype(ring.dtype))

    def unprotected(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        return row  # no noise

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        return aggregate

    def share_mechanism(self) -> Skellam | DistributedDiscreteGaussian:
        """One client's own share alone (its local-DP view, for observers that see individual noisy inputs)."""
        return noise_mechanism(self.mechanism, self.local_variance, 1, self._d, self.l2_sensitivity, self.l1_sensitivity)

    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        whole, counted = counted_shares(out, self.assume_colluding)
        mechanism = noise_mechanism(self.mechanism, self.local_variance, counted, self._d, self.l2_sensitivity, self.l1_sensitivity) if counted > 0 else None
        return shares_guarantee(
            self, mechanism, whole, counted, self._n, out.chosen_from_inputs,
            {"mechanism": self.mechanism, "local_variance": round(self.local_variance, 3),
             "noise_stddev_integer_units": round(math.sqrt(len(out.included) * self.local_variance), 3)},
            notes="epsilon uses the noise that reached the output: dropped clients added none, colluding or Byzantine ones are not counted",
        )


def counted_shares(out: Output, assume_colluding: int) -> tuple[int, int]:
    """(the honest noise shares that reached the output whole, the shares a round's epsilon counts). A sum over a set
    fixed apart from the inputs counts the first, `out.whole_inputs` - `assume_colluding`, and at least one: the
    colluders are other clients, so an honest client's own share is in the sum whenever its input is. A rule that chose the
    included set or the weights from the inputs (`out.chosen_from_inputs`: Krum, Multi-Krum, clipping, the order rules)
    counts one: the output and the selection are a function of y_i = x_i + N_i, each x_i only in its own y_i, so
    client k's own share N_k bounds what anyone learns about x_k (post-processing); the selected shares' sum does not
    (review 8: Multi-Krum, n = 3, against an observer who knows the selected set, delta 3.3e-4 at the epsilon of m' shares)."""
    whole = max(out.whole_inputs - assume_colluding, 0)
    if out.chosen_from_inputs:
        return whole, 1 if out.included else 0
    return whole, max(whole, 1) if out.whole_inputs else 0  # an honest included client's own share is always in the sum (review 11)


def shares_guarantee(layer, mechanism, whole: int, counted: int, n: int, chosen: bool, parameters: dict, *, notes: str) -> Guarantee:
    """The guarantee of a layer whose clients add noise shares (`DistributedNoise`, `GaussianShares`): this round's
    epsilon at `layer.delta` for `mechanism`, the noise of the `counted` shares of `counted_shares` (None if none:
    epsilon is then infinite); `whole` honest shares reached the output; `chosen`: the inner rule chose its inputs."""
    eps = epsilon(mechanism, steps=1, delta=layer.delta) if mechanism is not None else math.inf
    against = ("each client's own noise share only: the inner rule chose the included inputs and their weights from the noisy "
               "inputs themselves, so this round's epsilon holds against anyone who sees the output, the selection or the values "
               "opened to compute it" if chosen else "this round only, against an observer of the aggregate who knows who took part")
    return Guarantee(
        threat_model=ThreatModel.HONEST_BUT_CURIOUS_SERVER,
        server_learns=("what the inner rule opens to choose its inputs (distances, norms, comparisons of the individually noised "
                       "inputs; an active two-server S0 every noisy input, see the inner layer) and the noisy output" if chosen
                       else "the noisy aggregate only (through the inner protection layer)"),
        collusion=f"accounted with {layer.assume_colluding} colluding or Byzantine clients whose noise does not count",
        dropout_tolerance=n,
        exact=False,
        parameters={**parameters, "noise_shares_in_output": whole, "counted_shares": counted, "uncounted_shares": layer.assume_colluding},
        dp_mechanism=mechanism,
        epsilon=eps,
        delta=layer.delta,
        notes=f"{notes}; {against}",
    )
