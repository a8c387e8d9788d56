"""CKKS headroom (review 14, fix 1): a sum or a hidden model whose decryption would wrap modulo q0 / scale is refused
with a typed error (the client's own check, the layer's build, the key holder's model check), never released wrong."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.errors import Refused
from protocols.core.stack import StackContext, StackError, build, parse
from protocols.he.aggregation import CKKSAggregation
from protocols.he.hidden_state import HiddenStateCKKS
from secagg.he import ckks_headroom
from secagg.he_params import preset
from secagg.randomness import SeededRandomness

LIMIT = ckks_headroom(preset("ckks-8192-sum"))


def test_the_headroom_is_q0_over_twice_the_scale_just_below_2_to_the_19():
    assert 2**19 - 1e-6 < LIMIT < 2**19


@settings(max_examples=12, deadline=None)
@given(n=st.integers(2, 64), fraction=st.floats(1.0001, 50.0))
def test_a_client_whose_share_of_the_headroom_is_exceeded_refuses_to_encrypt(n, fraction):
    """The honest client's own check (`client_role`, as on Flower): n x max |x| at or over the headroom is refused."""
    protocol = CKKSAggregation(min_clients=2)
    row = np.zeros(8)
    row[3] = -fraction * LIMIT / n
    with pytest.raises(Refused, match="headroom") as refused:  # typed: the round aborts, an experiment records it
        protocol.client_role(0, row, {"session": "00" * 8, "d": 8, "n": n}, SeededRandomness(1), {})
    assert refused.value.party == "client 0"


def test_a_hidden_model_that_would_wrap_is_refused_by_the_key_holder_and_nothing_is_released(sum_keys):
    """Each client passes its own check (2 x 0.5 x 3e5 = 3e5 < 2**19) but the model (2.6e5, one encryption holds 2**18)
    plus the sum would wrap: the key holder, which knows its model, refuses before decrypting the new model."""
    d = 16
    protocol = HiddenStateCKKS(initial=np.full(d, 2.6e5), weight=0.5, min_clients=2)
    protocol.use_secret_context(sum_keys.secret)
    with pytest.raises(Refused, match="headroom"):
        secure_sum(np.full((2, d), 3e5), protocol=protocol, seed=1)
    protocol = HiddenStateCKKS(initial=np.full(d, 2.5e5), weight=0.5, min_clients=2)  # 2.5e5 + 2.5e5 fits: within numeric_error
    protocol.use_secret_context(sum_keys.secret)
    out = secure_sum(np.full((2, d), 2.5e5), protocol=protocol, seed=1)
    assert np.max(np.abs(out.result - 5e5)) <= out.reports[0].guarantee.numeric_error


@pytest.mark.parametrize("stack, initial, participants", [
    ("clip(bound=70000) > ckks", None, 8),
    ("clip(bound=1) > hidden-state", 524288.0, 8),
])
def test_a_stack_whose_clipped_sum_reaches_the_headroom_is_refused_at_build(stack, initial, participants):
    ctx = StackContext(dim=4, participants=participants, initial=None if initial is None else np.full(4, initial))
    with pytest.raises(StackError, match="headroom|one encryption"):
        build(parse(stack), ctx)
    build(parse(stack.replace("70000", "60000")), StackContext(dim=4, participants=participants, initial=np.zeros(4)))


def test_the_guarantee_states_what_a_byzantine_client_with_a_huge_value_can_do():
    out = secure_sum(np.full((2, 4), 0.1), protocol=CKKSAggregation(min_clients=2), seed=2)
    notes = out.reports[0].guarantee.notes
    assert "headroom" in notes and "Byzantine client can encrypt any value" in notes
