"""Robust reconstruction of a masking secret: Gao decoding up to (m - t)/2 bad shares, subset search
beyond it, and None only without t good shares."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.masking import recovery as masking_recovery
from protocols.masking.recovery import robust_reconstruct
from secagg import SeededRandomness, shamir

SECRET = bytes(range(32))


def _shares(m, t, bad, seed):
    shares = shamir.share(shamir.bytes_to_field(SECRET), [w + 1 for w in range(m)], t, rng=SeededRandomness(seed)).copy()
    noise = np.random.default_rng(seed)
    for w in bad:  # every field element of a bad share is off (Gao decodes column by column, so fewer would be easier)
        shares[w] ^= np.uint64(1) + noise.integers(0, 2**40, size=shares.shape[1], dtype=np.uint64)
    return shares


@settings(max_examples=60, deadline=None)
@given(m=st.integers(3, 40), data=st.data())
def test_gao_corrects_up_to_half_the_spare_shares(m, data):
    t = data.draw(st.integers(1, m - 2))
    bad = data.draw(st.sets(st.integers(0, m - 1), min_size=1, max_size=(m - t) // 2))
    decoded = masking_recovery._gao([w + 1 for w in range(m)], _shares(m, t, bad, data.draw(st.integers(0, 2**32))), t)
    assert decoded is not None and decoded[0] == SECRET and set(decoded[1]) == bad


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 12), data=st.data())
def test_the_secret_comes_back_exactly_when_t_good_shares_remain(m, data):
    """m <= 12: every subset fits in the search limit, so the outcome depends only on the good-share count."""
    t = data.draw(st.integers(1, m))
    bad = data.draw(st.sets(st.integers(0, m - 1), max_size=m))
    secret, named = robust_reconstruct(list(range(m)), _shares(m, t, bad, data.draw(st.integers(0, 2**32))), t, lambda s: s == SECRET)
    if m - len(bad) >= t:
        assert secret == SECRET and set(named) <= bad
    else:
        assert secret is None and named == []


def test_many_bad_shares_beyond_gao_and_the_search_limit_are_reported_not_guessed():
    """40 shares, t = 21, 10 bad: beyond Gao's 9 and C(40, 10) subsets: the decoder gives up (None), it never guesses."""
    assert robust_reconstruct(list(range(40)), _shares(40, 21, set(range(10)), 1), 21, lambda s: s == SECRET) == (None, [])
