"""Adversarial review of the two-server narrow distances (Krum rules: off-diagonal Gram entries and distances in
Z_2^44 when validation proves every opened distance below 2^43, the diagonal exact in Z_2^64).

Checked here beyond tests/protocols/test_two_server_narrow.py:
1. Byzantine clients at the range's (or the norm bound's) far extreme, with the honest ones at the other: the
   largest distance the validation allows, d (2^b - 1)^2 or ~4 B (times (m - f)^2 for NNM rows), just below
   2^43, is opened exactly, and Krum selects what it selects on the exact integer distances.
2. A remote S1 whose own norm bound differs from S0's but has the same slack width L (all it can check in the
   public parameters) decides narrow vs wide alike: the split round equals the in-process one.
3. S0's symmetric product with P = a + plus formed block by block, with P at the limb extremes and d at the
   float64 chunk edges.
4. (fixed: regression test) S0 keeps each sealed share as a view of the bundle it received: a mutable receive buffer
   reused after `receive` changes the share S0 relays.
5. (fixed: regression test) S1 checks bits, validate and the slack width in the public parameters, not rule, f, pre or m: a remote
   S1 with another f decides narrow vs wide (and NNM, Krum) otherwise, and the round returns a wrong aggregate.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.core.errors import InvalidInput, ProtocolError
from protocols.core.messages import Kind
from protocols.core.secure_sum import secure_sum
from protocols.core.wire import SERVER, Frame, encode_frame
from protocols.robust.preaggregators import nnm_neighbours
from protocols.robust.rules import krum_select
from protocols.testing import ByzantineShares
from protocols.two_server import TwoServerRobust
from protocols.two_server.channel import Channel
from protocols.two_server.client import ShareCollector, bundle
from secagg.beaver import to_signed
from secagg.int_gram import CHUNK, LIMB_BITS, NARROW_BITS, _limbs, symmetric_gram
from secagg.ring import Ring
from tests.protocols.split_round import split_round


def _ring_inputs(x: np.ndarray, bits: int) -> np.ndarray:
    ring = Ring(bits)
    return ring.reduce(np.asarray(x, dtype=np.int64).astype(np.uint64).astype(ring.dtype))


def _exact_distances(rows: list[list[int]]) -> np.ndarray:
    return np.array([[sum((a - b) ** 2 for a, b in zip(u, v)) for v in rows] for u in rows], dtype=object)


@pytest.fixture
def openings(monkeypatch):
    """Every square additive opening of the round (the distance matrices), as exact Python integers, with its ring."""
    seen = []
    real = Channel.exchange

    def recording(self, kind, mine, shape, combine=np.add):
        out = real(self, kind, mine, shape, combine)
        if combine is not np.bitwise_xor and shape[0] == shape[1] and shape[0] > 1:
            seen.append((to_signed(out).astype(object), combine is np.add))
        return out

    monkeypatch.setattr(Channel, "exchange", recording)
    return seen


# (protocol keywords, n, d, the honest cluster's coordinate, the Byzantine one): the bound each gives is just below 2^43
EDGES = {
    "range b=20 d=8": (dict(rule="krum", f=1, bits=20), 5, 8, -(2**19), 2**19 - 1),
    "range b=21 d=2": (dict(rule="multi_krum", f=1, bits=21), 5, 2, -(2**20), 2**20 - 1),
    "range b=16 d=CHUNK": (dict(rule="krum", f=1, bits=16), 5, CHUNK, -(2**15), 2**15 - 1),
    "nnm range b=19 d=2": (dict(rule="krum", f=1, bits=19, pre="nnm"), 4, 2, -(2**18), 2**18 - 1),
    "norm L=41": (dict(rule="multi_krum", f=1, bits=22, norm_bound=math.sqrt(2**41 - 1)), 5, 2, None, None),
}


@pytest.mark.parametrize("case", sorted(EDGES))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), jitter=st.integers(0, 3))
def test_byzantine_inputs_at_the_validated_extreme_are_measured_exactly_in_z_2_44(openings, case, seed, jitter):
    """The attack: f Byzantine clients put every coordinate at the far end of what validation lets through (the
    range's top, or a norm of sqrt(B) opposite the honest cluster), so their distances to the honest inputs are
    the largest the narrow bound admits. A wrap (mod 2^44) or a signed misreading would make them look close.
    The opened distances must be the exact integers, and Krum's choice the one on those."""
    openings.clear()
    kw, n, d, low, high = EDGES[case]
    protocol = TwoServerRobust(**kw)
    f = protocol.f
    if low is None:  # the norm bound's extreme: (+-a, 0) with a^2 <= B
        a = math.isqrt(protocol.squared_bound)
        low, high = -a, a
    rng = np.random.default_rng(seed)
    x = np.full((n, d), low, dtype=np.int64)
    x[: n - f] += rng.integers(0, jitter + 1, (n - f, d))  # honest: near the low end (still in range / under the bound)
    x[n - f :] = high  # Byzantine: every coordinate at the high end
    if protocol.squared_bound is not None:
        x[:, 1:] = 0
        assert max(int(v) ** 2 for v in x[:, 0]) <= protocol.squared_bound
    assert protocol._narrow(n, d)
    bound = protocol._distance_bound(n, d)
    out = secure_sum(_ring_inputs(x, protocol.bits), protocol=protocol, seed=seed)
    assert not out.rejected  # every input is valid: the attack is within the rules
    g = out.reports[0].guarantee
    assert g.parameters["distance_ring_bits"] == NARROW_BITS and f"at most {bound} < 2^{NARROW_BITS - 1}" in g.notes
    rows = [[int(v) for v in r] for r in x]
    exact = _exact_distances(rows)
    assert all(not wide for _, wide in openings)  # opened mod 2^44
    first = openings[0][0]
    assert (first == exact).all()
    rows_squared = (n - f) ** 2 if protocol.pre == "nnm" else 1  # the bound's factor for NNM rows
    assert exact.max() * rows_squared <= bound < 2 ** (NARROW_BITS - 1) and exact.max() * rows_squared > 2 ** (NARROW_BITS - 3)  # at the edge
    if protocol.pre == "nnm":
        w = nnm_neighbours(exact.astype(np.float64), f).astype(object)
        mixed = [[sum(w[i][k] * rows[k][c] for k in range(n)) for c in range(d)] for i in range(n)]
        exact_mixed = _exact_distances(mixed)
        assert (openings[1][0] == exact_mixed).all() and exact_mixed.max() <= bound
        chosen = krum_select(exact_mixed.astype(np.float64), f, 1)
        expected = sorted({k for i in chosen for k in range(n) if w[i][k]})
    else:
        chosen = krum_select(exact.astype(np.float64), f, 1 if protocol.rule == "krum" else protocol.m)
        expected = [int(i) for i in chosen]
        assert not set(expected) & set(range(n - f, n))  # the far-away Byzantine clients are not selected
        assert np.array_equal(out.result, _ring_inputs(x[expected].sum(axis=0), protocol.bits))
    assert list(out.included) == expected


@pytest.mark.parametrize("b0, b1", [(2**37, 2**38 - 1), (2**38 - 1, 2**37), (2**36, 2**37 - 1)])
def test_a_remote_s1_with_another_norm_bound_of_the_same_width_refuses(b0, b1):
    """Was: S1 checked only the slack width L = bit_length(B), so its own B could differ from S0's, and with NNM
    (m - f = 3) the rule 9 * 4 B < 2^43 would split the pairs above (S0 narrow, S1 wide, or the reverse): S1 would add
    S0's Z_2^44 distance shares to its Z_2^64 ones. Now the public parameters carry B itself (review 6): S1 refuses
    another B, and with the same B the split round is the in-process round exactly."""
    bits, n, d = 20, 4, 4
    x = _ring_inputs(np.random.default_rng(1).integers(-3000, 3000, (n, d)), bits)
    make = lambda b: TwoServerRobust(rule="krum", f=1, bits=bits, pre="nnm", norm_bound=math.sqrt(b))
    assert make(b0)._slack_bits() == make(b1)._slack_bits() and make(b0).squared_bound != make(b1).squared_bound
    with pytest.raises(ProtocolError, match="squared_bound"):
        split_round(make(b0), x, 4, s1=make(b1))
    split = split_round(make(b0), x, 4, s1=make(b0))
    local = secure_sum(x, protocol=make(b0), seed=4)
    assert np.array_equal(split.result, local.result) and split.included == local.included
    assert split.reports[0].guarantee.parameters["distance_ring_bits"] == local.reports[0].guarantee.parameters["distance_ring_bits"]


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.sampled_from([CHUNK, 2 * CHUNK]), n=st.integers(2, 4))
def test_s0s_blockwise_p_at_the_limb_extremes_is_exact(seed, d, n):
    """S0 forms P = (X_0) + (X_1 - A_1) a chunk at a time (`symmetric_gram(a, plus, narrow=True)`): with P's limbs
    at -2^21 and 2^21 - 1 (each chunk's limb products sum to +-2^53) and d at the chunk edges, off the diagonal
    mod 2^44 and on it mod 2^64 equal Python's integers."""
    rng = np.random.default_rng(seed)
    low, high = (2**64 - 2**21 - 2**43) % 2**64, (2**44 - 1 - 2**21 - 2**43) % 2**64  # both limbs -2^21, both 2^21 - 1
    p = np.full((n, d), low, dtype=np.uint64)
    p[rng.random((n, d)) < 0.5] = np.uint64(high)
    p[0] = low  # a row at the lower extreme throughout: its own limb products sum to exactly 2^53 a chunk
    assert np.abs(_limbs(p, None, LIMB_BITS, 2)).max() == 2 ** (LIMB_BITS - 1)
    a = rng.integers(0, 2**64, (n, d), dtype=np.uint64, endpoint=False)
    plus = p - a
    got = symmetric_gram(a, plus, narrow=True)
    exact = p.astype(object) @ p.astype(object).T
    off = ~np.eye(n, dtype=bool)
    assert (got[off].astype(object) == (exact % 2**NARROW_BITS)[off]).all()
    assert (np.diagonal(got).astype(object) == np.diagonal(exact) % 2**64).all()


def test_the_relayed_sealed_share_is_what_arrived_even_if_the_receive_buffer_is_reused():
    session = bytes(8)
    collector = ShareCollector(3, session)
    seed_frame = encode_frame(Frame(Kind.SHARE_SEED, session, 1, SERVER, bytes(range(32))))
    sealed = bytes(range(100, 200))
    buffer = bytearray(encode_frame(Frame(Kind.SEALED_SHARE, session, 1, SERVER, bundle(seed_frame, sealed, bytes(64)))))
    collector.receive(buffer, 1)
    buffer[-len(sealed):] = bytes(len(sealed))  # the buffer refilled (same size) for the next message
    assert bytes(collector.sealed[1]) == sealed


def test_a_remote_s1_with_another_f_refuses_the_round_or_gives_s0s_round():
    bits, n, d = 19, 6, 2
    x = _ring_inputs(np.random.default_rng(2).integers(-(2**18), 2**18, (n, d)), bits)
    make = lambda f: TwoServerRobust(rule="krum", f=f, bits=bits, pre="nnm")
    assert not make(1)._narrow(n, d) and make(2)._narrow(n, d)  # (m - f)^2 2 (2^19 - 1)^2: 25 of them >= 2^43, 16 below
    local = secure_sum(x, protocol=make(1), seed=3)
    try:
        split = split_round(make(1), x, 3, s1=make(2))
    except ProtocolError:
        return  # refused: what the guarantee needs
    assert np.array_equal(split.result, local.result) and split.included == local.included


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bits=st.integers(20, 23), k=st.integers(1, 3), seed=st.integers(0, 2**16), rule=st.sampled_from(["krum", "multi_krum"]))
def test_every_norm_that_wraps_mod_2_44_to_zero_is_rejected(bits, k, seed, rule):
    """The existing attack (||X||^2 = 2^44 at b = 20, d = 64) generalised: every coordinate -2^(b-1) at
    d = k 2^(46 - 2b) gives ||X||^2 = k 2^44, residue 0 mod 2^44, and slack digits that prove ||X||^2 <= B in
    Z_2^44; the norm bound (B = 2^26) makes the round narrow. The exact diagonal must reject it."""
    d, n, f, attacker = k << (46 - 2 * bits), 7, 2, 4
    x = np.random.default_rng(seed).integers(-200, 200, (n, d))
    protocol = TwoServerRobust(rule=rule, f=f, bits=bits, norm_bound=2.0**13)
    assert protocol._narrow(n, d) and (x.astype(object) ** 2).sum(axis=1).max() <= protocol.squared_bound
    spy = ByzantineShares(attacker, "norm-wrap", position=0, bound=protocol.squared_bound, bits=bits)
    out = secure_sum(_ring_inputs(x, bits), protocol=protocol, seed=seed, tamper=spy.tamper)
    forged = [int(v) for v in to_signed(spy.effective)]
    assert sum(v * v for v in forged) == k * 2**NARROW_BITS  # the attack ran as described
    assert out.reports[0].guarantee.parameters["distance_ring_bits"] == NARROW_BITS
    assert {e.party for e in out.rejected if isinstance(e, InvalidInput)} == {f"client {attacker}"}
    honest = [u for u in range(n) if u != attacker]
    exact = _exact_distances([[int(v) for v in x[u]] for u in honest]).astype(np.float64)
    assert out.included == tuple(honest[i] for i in krum_select(exact, f, 1 if rule == "krum" else None))
