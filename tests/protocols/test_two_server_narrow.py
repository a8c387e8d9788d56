"""Narrow distances (Z_2^44) in the two-server Krum rules: the attack is a Byzantine client whose squared norm
is 2^44 (every coordinate -2^19 at d = 64): its residue mod 2^44 is 0, so its slack digits are a valid proof
of ||x||^2 <= B in Z_2^44 and its wrapped distances would make Krum select it; the norm check reads the
exact Z_2^64 diagonal and rejects it. Wherever the narrow ring applies the round's outputs are those of the
Z_2^64 round for the same seeds."""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import secure_sum
from protocols.core.errors import InvalidInput
from protocols.robust.rules import krum_select
from protocols.testing import ByzantineShares
from protocols.two_server import TwoServerRobust
from secagg.beaver import to_signed
from secagg.int_gram import NARROW_BITS
from secagg.ring import Ring


def _inputs(x: np.ndarray, bits: int) -> np.ndarray:
    ring = Ring(bits)
    return ring.reduce(x.astype(np.int64).astype(np.uint64).astype(ring.dtype))


def test_a_norm_that_wraps_mod_2_44_is_rejected_and_would_be_selected_otherwise():
    bits, n, d, f, attacker = 20, 11, 64, 2, 3
    rng = np.random.default_rng(5)
    x = rng.normal(0, 300, (n, d)).round().astype(np.int64)
    x -= x.sum(axis=1, keepdims=True) // d  # near zero-sum rows: <X, x_j> ~ 0 for the attacker's X = -2^19 (1, ..., 1)
    x[:, 0] -= x.sum(axis=1)
    protocol = TwoServerRobust(rule="krum", f=f, bits=bits, norm_bound=2.0**13)
    bound = protocol.squared_bound
    assert (x.astype(np.float64) ** 2).sum(axis=1).max() <= bound
    spy = ByzantineShares(attacker, "norm-wrap", position=0, bound=bound, bits=bits)
    out = secure_sum(_inputs(x, bits), protocol=protocol, seed=7, tamper=spy.tamper)
    forged = to_signed(spy.effective).astype(object)
    norm = sum(v * v for v in forged)
    assert norm == 2**NARROW_BITS and norm % 2**NARROW_BITS <= bound  # the attack: a valid Z_2^44 norm proof
    honest = [u for u in range(n) if u != attacker]
    rows = {u: [int(v) for v in x[u]] for u in honest} | {attacker: list(forged)}
    wrapped = np.array([[sum((a - b) ** 2 for a, b in zip(rows[i], rows[j])) % 2**NARROW_BITS for j in range(n)] for i in range(n)], dtype=np.float64)
    assert krum_select(wrapped, f, 1).tolist() == [attacker]  # Krum on the wrapped distances picks it
    g = out.reports[0].guarantee
    assert g.parameters["distance_ring_bits"] == NARROW_BITS and f"Z_2^{NARROW_BITS}" in g.notes
    assert {int(e.party.split()[1]) for e in out.rejected if isinstance(e, InvalidInput)} == {attacker}
    exact = np.array([[sum((a - b) ** 2 for a, b in zip(rows[i], rows[j])) for j in honest] for i in honest], dtype=np.float64)
    assert out.included == tuple(honest[i] for i in krum_select(exact, f, 1))
    assert np.array_equal(out.result, _inputs(x[list(out.included)].sum(axis=0), bits))


def test_the_narrow_ring_is_used_only_where_its_distances_cannot_wrap():
    d = 10**5  # the range alone bounds the distances by d (2^20 - 1)^2 > 2^43
    krum = TwoServerRobust(rule="multi_krum", f=1, bits=20, norm_bound=2.0**20)  # 4 B = 2^42 < 2^43
    assert krum._narrow(10, d)
    assert not TwoServerRobust(rule="multi_krum", f=1, bits=20, norm_bound=2.0**20.5)._narrow(10, d)  # 4 B = 2^43
    assert not TwoServerRobust(rule="multi_krum", f=1, bits=20, norm_bound=2.0**20, validate=False)._narrow(10, d)
    assert not TwoServerRobust(rule="multi_krum", f=1, bits=20)._narrow(10, d)  # no bound: Z_2^64
    assert not TwoServerRobust(rule="centered_clipping", f=1, bits=20, norm_bound=2.0**10)._narrow(10, d)
    nnm = TwoServerRobust(rule="krum", f=1, bits=20, norm_bound=2.0**18, pre="nnm")  # B = 2^36, L = 37: (m - 1)^2 4 (2^37 - 1) < 2^43 iff m <= 5
    assert nnm._narrow(5, d) and not nnm._narrow(6, d)
    ranged = TwoServerRobust(rule="krum", f=1, bits=12)  # no norm bound: d (2^12 - 1)^2 < 2^43 iff d <= 524,544
    assert ranged._narrow(10, 524_544) and not ranged._narrow(10, 524_545)
    assert not TwoServerRobust(rule="krum", f=1, bits=12, validate=False)._narrow(10, 1)  # unvalidated: nothing is proven


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(5, 9), d=st.integers(1, 30), bits=st.integers(3, 24), rule=st.sampled_from(["krum", "multi_krum"]),
       pre=st.sampled_from([None, "nnm"]), seed=st.integers(0, 2**31))
def test_narrow_rounds_equal_the_z_2_64_rounds_at_the_bounds_edge(data, n, d, bits, rule, pre, seed):
    """Inputs at the norm bound's edge (one exactly at B, one just over, the rest anywhere in range): the narrow
    round and the same round forced into Z_2^64 give the same result, included and rejected clients."""
    f = (n - 1) // 3 if pre is None else 1
    rng = np.random.default_rng(seed)
    top = 2 ** (bits - 1)
    x = rng.integers(-top, top, (n, d))
    norms = (x.astype(object) ** 2).sum(axis=1)
    bound = data.draw(st.sampled_from([max(norms), sorted(norms)[n // 2], min(norms) + 1, None]))  # None: the range alone
    norm_bound = None if bound is None else math.sqrt(bound)
    protocol = TwoServerRobust(rule=rule, f=f, bits=bits, norm_bound=norm_bound, pre=pre)
    squared = protocol.squared_bound if bound is not None else d * top * top
    passing = sum(1 for v in norms if v <= squared)
    rounds = []
    for narrow in (True, False):
        wide = TwoServerRobust(rule=rule, f=f, bits=bits, norm_bound=norm_bound, pre=pre)
        if not narrow:
            wide._narrow = lambda m, d: False
        try:
            rounds.append(secure_sum(_inputs(x, bits), protocol=protocol if narrow else wide, seed=seed))
        except Exception as exc:  # too few pass the check: both paths must refuse alike
            rounds.append(type(exc).__name__)
    if isinstance(rounds[0], str) or isinstance(rounds[1], str):
        assert rounds[0] == rounds[1] == "BelowThreshold" and passing < 2 * f + 1
        return
    a, b = rounds
    assert np.array_equal(a.result, b.result) and a.included == b.included
    assert [(type(e), e.party) for e in a.rejected] == [(type(e), e.party) for e in b.rejected]
    assert set(a.included) <= {u for u in range(n) if norms[u] <= squared}
    expected_bits = NARROW_BITS if protocol._narrow(n, d) else 64  # m = n at the Gram matrix: every input is in range
    assert a.reports[0].guarantee.parameters["distance_ring_bits"] == expected_bits
    assert b.reports[0].guarantee.parameters["distance_ring_bits"] == 64
    if pre is None:  # the sum of the selected inputs, exact in the ring
        assert np.array_equal(a.result, _inputs(sum(x[u] for u in a.included), bits))
