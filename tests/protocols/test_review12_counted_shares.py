"""Review 12 (2): after fdb25aa (`counted_shares` counts at least one share for a sum: the colluders are other clients, so
an honest included client's own share is in the sum). Attack: the colluders (Byzantine clients) add no noise at all
(skip_protection) and clients drop at every stage, after or before their noisy masked input was sent; the observer
subtracts everything the colluders know (their inputs: zero here) and what is left is the honest included clients' noise.
The claimed mechanism must not count more noise than that, whenever an honest client is in the sum to protect."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.deviations import Deviation
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.stack import StackContext, build, parse
from protocols.layers.noise import DistributedNoise
from secagg.ring import Ring

D, VARIANCE = 400, 64.0


def _centered(v: np.ndarray, bits: int) -> np.ndarray:
    v = v.astype(np.int64) % (1 << bits)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v)


@settings(max_examples=25, deadline=None, database=None)
@given(n=st.integers(3, 6), leaf=st.sampled_from(["secagg", "secagg+", "secagg(active=true)", "bfv"]),
       data=st.data())
def test_the_counted_noise_is_in_what_the_colluders_cannot_subtract(n, leaf, data):
    inner = build(parse(leaf), StackContext(dim=D, participants=n), inputs="ring")
    byzantine = data.draw(st.sets(st.integers(0, n - 1), max_size=n), label="byzantine")
    assume = data.draw(st.integers(len(byzantine), n), label="assume_colluding")  # at least the Byzantine ones, as the stack declares
    drops = data.draw(st.dictionaries(st.integers(0, n - 1), st.sampled_from(list(Stage)), max_size=n // 2), label="drops")
    layer = DistributedNoise("skellam", VARIANCE, 1.0, 1.0, inner, assume_colluding=assume)
    try:
        out = secure_sum(np.zeros((n, D), dtype=Ring(inner.bits).dtype), protocol=layer, seed=7, dropouts=DropoutSchedule(drops),
                         deviations={i: Deviation(skip_protection=True) for i in byzantine})
    except protocols.core.errors.ProtocolError:
        return  # too few survivors: nothing revealed
    honest = [i for i in out.included if i not in byzantine]
    if not honest:
        return  # nobody in the sum to protect
    counted = next(r.guarantee.parameters["counted_shares"] for r in out.reports if r.layer == layer.name)
    assert 1 <= counted <= len(honest), (counted, honest, out.included, byzantine, assume)
    if not out.chosen_from_inputs:  # the sum is the honest shares' noise: at least the counted variance is left
        residual = _centered(np.asarray(out.result), inner.bits)
        assert residual.var() >= 0.7 * counted * VARIANCE, (residual.var(), counted, honest)
