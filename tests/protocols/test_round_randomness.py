"""Per-round randomness is drawn afresh each round and is reproducible from what the round publishes: the
bucketing permutation (from the seed in the report), rand-k's kept coordinates and the rotation signs (from
the seed in the public parameters)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import secure_sum
from protocols.layers import RandK, RandomizedHadamard
from protocols.robust import PlainRobust, bucketing, coordinate_median
from secagg import SeededRandomness


def _bucketed(f: int = 1, s: int = 2) -> PlainRobust:
    return PlainRobust(rule="coordinate_median", f=f, pre="bucketing", pre_params={"s": s})


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 12), d=st.integers(1, 6), s=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_bucketing_uses_the_permutation_of_the_seed_its_report_publishes(n, d, s, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    f = (n - 1) // 2 // s  # the rule faces ceil(n / s) bucket means, at most f of them spoiled
    out = secure_sum(x, protocol=_bucketed(f, s), seed=seed)
    published = out.reports[-1].guarantee.parameters["bucketing_seed"]
    perm = SeededRandomness(bytes.fromhex(published)).permutation(n)
    assert np.array_equal(out.result, coordinate_median(bucketing(x.astype(np.float64), f, s=s, perm=perm), f))


def test_bucketing_permutations_differ_across_rounds_and_repeat_with_the_seed():
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    layer = _bucketed()
    seeds = [secure_sum(x, protocol=layer, seed=r).reports[-1].guarantee.parameters["bucketing_seed"] for r in range(6)]
    perms = {tuple(SeededRandomness(bytes.fromhex(h)).permutation(9)) for h in seeds}
    assert len(perms) == 6  # one permutation every round (a repeat has probability < 15 / 9!)
    again = [secure_sum(x, protocol=layer, seed=r).reports[-1].guarantee.parameters["bucketing_seed"] for r in range(6)]
    assert again == seeds


def test_no_client_learns_the_bucketing_seed_before_it_sends():
    layer = _bucketed()
    opened = layer.open_round(9, 4, SeededRandomness(5))
    seen = repr(opened.public).encode() + b"".join(opened.server.requests().values())
    x = np.zeros((9, 4), dtype=np.float32)
    published = secure_sum(x, protocol=layer, seed=5).reports[-1].guarantee.parameters["bucketing_seed"]
    assert bytes.fromhex(published) not in seen and published.encode() not in seen


def test_a_fixed_bucketing_permutation_is_refused():
    for fixed in ({"s": 2, "seed": 0}, {"s": 2, "perm": list(range(9))}):
        with pytest.raises(ValueError, match="drawn afresh"):
            PlainRobust(rule="krum", f=1, pre="bucketing", pre_params=fixed)


def test_rand_k_coordinates_and_rotation_signs_are_fresh_each_round_and_follow_the_public_seed():
    for layer, draw in ((RandK(4, PlainRobust(rule="mean", f=0)), lambda lay: tuple(lay._keep)),
                        (RandomizedHadamard(PlainRobust(rule="mean", f=0)), lambda lay: tuple(lay._signs))):
        drawn = []
        for r in range(5):
            public = layer.open_round(3, 16, SeededRandomness(r)).public
            chosen = draw(layer)
            layer.prepare(3, 16, SeededRandomness(bytes.fromhex(public["seed"])))  # what any client recomputes
            assert draw(layer) == chosen
            drawn.append(chosen)
        assert len(set(drawn)) == 5, type(layer).__name__
