"""Krum and Multi-Krum over CKKS: the rule's selection on well-separated inputs, the sum of the
selected within the stated bound, and a key holder that refuses any other selection."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import DropoutSchedule, Stage, secure_sum
from protocols.core.errors import Refused
from protocols.core.messages import Kind
from protocols.core.wire import KEY_HOLDER, Frame, Reader, decode_frame, encode_frame
from protocols.he.messages import DecryptRequest, Target
from protocols.he.robust import CKKSRobust
from protocols.robust.rules import krum_select, scores_from_distances
from protocols.robust.validation import squared_distances

PROTOCOLS = {rule: CKKSRobust(rule=rule, f=1, norm_bound=2.0, min_clients=1) for rule in ("krum", "multi_krum")}


@st.composite
def clustered(draw):
    """n updates around one centre (spread 0.01), f of them far away (distance >= 0.5)."""
    n = draw(st.integers(3, 7))
    f = draw(st.integers(0, (n - 1) // 2))
    d = draw(st.integers(1, 5000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    centre = rng.normal(0, 0.3 / np.sqrt(d), d)
    x = centre + rng.normal(0, 0.01 / np.sqrt(d), (n, d))
    for i in rng.choice(n, f, replace=False):
        x[i] += rng.choice([-1, 1], d) * 0.8 / np.sqrt(d)
    return x, f


@settings(max_examples=6, suppress_health_check=[HealthCheck.too_slow])
@given(case=clustered(), rule=st.sampled_from(["krum", "multi_krum"]), seed=st.integers(0, 2**31))
def test_selection_and_sum_match_the_plaintext_rule(case, rule, seed):
    x, f = case
    protocol = PROTOCOLS[rule]
    protocol.f = f
    out = secure_sum(x, protocol=protocol, seed=seed)
    g = out.reports[0].guarantee
    n, chosen = len(x), list(out.included)
    # Released distances differ from the true ones by the CKKS error plus the release noise, so the
    # selection may differ from the plaintext rule's only between updates whose true scores are that close.
    slack = 2 * (n - f - 1) * (g.parameters["distance_error_bound"] + 7 * g.parameters["distance_release_noise_std"])
    dist = squared_distances(x)
    scores = scores_from_distances(dist, f)
    m = 1 if rule == "krum" else n - f
    assert len(chosen) == m and np.max(scores[chosen]) <= np.sort(scores)[m - 1] + slack
    if f and rule == "multi_krum":
        assert chosen == [int(i) for i in krum_select(dist, f)]  # honest set versus outliers: a wide gap
    assert np.max(np.abs(out.result - x[chosen].sum(axis=0))) <= g.numeric_error
    assert g.parameters["rule"] == rule and "distances" in g.server_learns


def test_dropped_clients_are_left_out_of_the_distances():
    x = np.random.default_rng(3).normal(0, 0.01, (5, 300))
    protocol = PROTOCOLS["multi_krum"]
    protocol.f = 1
    out = secure_sum(x, protocol=protocol, seed=2, dropouts=DropoutSchedule({4: Stage.MASKED_INPUT}))
    assert 4 not in out.included and len(out.included) == 3
    assert out.reports[0].guarantee.parameters["inputs"] == 4


def test_key_holder_refuses_a_selection_the_rule_did_not_make():
    x = np.random.default_rng(4).normal(0, 0.01, (5, 200))
    x[0] += 0.5  # the outlier Krum must drop

    def tamper(src, dst, frame):
        if dst == KEY_HOLDER and frame[3] == Kind.DECRYPT_REQUEST:
            f = decode_frame(frame, party="test", stage="test")
            request = DecryptRequest.parse(Reader(f.payload, party="test", stage="test"), n=5, max_bytes=1 << 31)
            if request.target == Target.SELECTED_SUM:  # a curious aggregator asks for the outlier alone
                first = {0: request.manifest.get(0, next(iter(request.manifest.values())))}
                request = DecryptRequest(request.target, first, request.payload, None, request.extra)
                return [encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, request.encode()))]
        return [frame]

    protocol = PROTOCOLS["krum"]
    protocol.f = 1
    with pytest.raises(Refused):
        secure_sum(x, protocol=protocol, seed=5, tamper=tamper)
