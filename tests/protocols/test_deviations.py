"""The Deviation hook of secure_sum: a client that drops on purpose, skips its protection layers or rewrites
its own frames, attacked against the protocol's guarantees (the hook must not be weaker than the transport's)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import Deviation, InvalidInput, Stage, TwoServerRobust, secure_sum
from protocols.byzantine_shares import ByzantineShares
from protocols.layers import L2Clip
from protocols.robust import PlainRobust
from protocols.testing import rounds
from secagg.ring import Ring


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=rounds(min_n=4, max_n=12, max_d=8), data=st.data())
def test_a_deliberate_drop_is_the_same_round_as_that_dropout(case, data):
    n = case.inputs.shape[0]
    drops = data.draw(st.dictionaries(st.integers(0, n - 1), st.sampled_from(tuple(Stage)), max_size=n // 2))

    def outcome(**kw):
        try:
            out = secure_sum(case.inputs, protocol=case.protocol, seed=case.seed, **kw)
        except Exception as exc:  # noqa: BLE001 (the two runs must fail alike)
            return type(exc).__name__
        return out.included, out.result.tolist()

    deliberate = outcome(dropouts=case.dropouts, deviations={i: Deviation(drop=s) for i, s in drops.items()})
    assert deliberate == outcome(dropouts=case.dropouts.with_drops(drops))
    if not isinstance(deliberate, str):
        assert not set(deliberate[0]) & {i for i, s in drops.items() if s <= Stage.MASKED_INPUT}  # a client that sent no input is not summed


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 8), d=st.integers(1, 6), seed=st.integers(0, 2**31), data=st.data())
def test_skipping_protection_sends_the_raw_row_and_only_for_the_deviating_clients(n, d, seed, data):
    x = np.random.default_rng(seed).normal(0, 5, (n, d))
    rogue = data.draw(st.sets(st.integers(0, n - 1), max_size=n - 1))
    out = secure_sum(x, protocol=L2Clip(1.0, PlainRobust(rule="mean", f=0)), seed=seed,
                     deviations={i: Deviation(skip_protection=True) for i in rogue})
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    sent = np.where(np.isin(np.arange(n), sorted(rogue))[:, None], x, x * np.minimum(1.0, 1.0 / norms))
    np.testing.assert_allclose(out.result, sent.mean(axis=0), rtol=1e-5, atol=1e-5)  # the clear protocol sends float32
    assert out.reports[-1].guarantee.parameters["clipped_clients"] == int(sum(norms[i, 0] > 1.0 for i in range(n) if i not in rogue))


@pytest.mark.parametrize("validate", [True, False])
def test_wrapped_shares_through_the_hook_are_rejected_by_name_and_selected_without_validation(validate):
    bits, n, d = 16, 8, 8
    x = np.random.default_rng(3).normal(0, 30, (n, d)).round().astype(np.int64)
    x[2] = -(2**15)  # the poison whose wrapped shares look close to everyone
    ring = Ring(bits)
    attacker = ByzantineShares(2, "wrapped", position=(40 - bits) << 8, bits=bits)
    out = secure_sum(ring.reduce(x.astype(np.uint64).astype(ring.dtype)), protocol=TwoServerRobust(rule="krum", f=2, bits=bits, validate=validate),
                     seed=5, deviations={2: Deviation(tamper=attacker.tamper)})
    if validate:
        assert [e.party for e in out.rejected if isinstance(e, InvalidInput)] == ["client 2"]
        assert 2 not in out.included and len(out.included) == 1
    else:
        assert out.included == (2,)


def test_a_deviation_drop_must_be_a_stage():
    with pytest.raises(TypeError, match="drop must be a Stage"):
        Deviation(drop=2)
