"""Review attacks on robust reconstruction (protocols.masking.recovery, MaskingServer._reconstruct).

Claims attacked (masking_recovery docstring): "Gao's decoder on all m ... corrects up to
floor((m - t) / 2) bad shares"; "The secret is None only when every step failed: fewer than t good
shares, or more than (m - t) / 2 bad ones with C(m, t) above the search limit." README: "the round
goes on while t good ones remain". And: reconstruction never outputs a wrong secret.
"""

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import SecAgg, secure_sum
from protocols.core.messages import Kind
from protocols.core.wire import SERVER, Reader, Writer, decode_frame, encode_frame
from protocols.masking.messages import SECRET_BYTES, parse_unmask_shares
from protocols.masking.recovery import robust_reconstruct
from protocols.testing import check_sum, share_blame
from secagg import SeededRandomness, field, shamir

OUT_OF_RANGE = np.uint64(2**64 - 1)  # a u64 the wire accepts but that is no element of GF(2**61 - 1)


def _dealt(m: int, t: int, seed: int):
    rng = SeededRandomness(seed.to_bytes(8, "big"))
    secret = rng.bytes(SECRET_BYTES)
    holders = list(range(m))
    shares = shamir.share(shamir.bytes_to_field(secret), [w + 1 for w in holders], t, rng=rng)
    return secret, holders, shares.astype(np.uint64)


def _check(secret):
    digest = hashlib.sha256(secret).digest()
    return lambda s: hashlib.sha256(s).digest() == digest


def test_gao_corrects_in_range_bad_shares_control():
    """Control: 6 in-range bad shares among m=29, t=15 (capacity 7), placed where the subset search cannot reach."""
    m, t = 29, 15
    secret, holders, shares = _dealt(m, t, 1)
    bad = list(range(9, 15))
    for j in bad:
        shares[j] = (shares[j] + np.uint64(1)) % np.uint64(field.P)
    got, named = robust_reconstruct(holders, shares, t, _check(secret))
    assert got == secret and sorted(named) == bad


def test_one_out_of_range_share_does_not_disable_error_correction():
    """Same 6 bad shares, one of them out of range (>= p): still within (m - t)/2, so the secret must be found.
    A Byzantine holder sends 0xff..ff; `_gao` returns None on any share >= p, and the subset search stops at
    SEARCH_LIMIT before it leaves out the 6, so robust_reconstruct gives up."""
    m, t = 29, 15
    secret, holders, shares = _dealt(m, t, 1)
    bad = list(range(9, 15))
    for j in bad:
        shares[j] = (shares[j] + np.uint64(1)) % np.uint64(field.P)
    shares[bad[0]] = OUT_OF_RANGE
    got, named = robust_reconstruct(holders, shares, t, _check(secret))
    assert got == secret, "one out-of-range share made a correctable set of bad shares uncorrectable"
    assert sorted(named) == bad


def _corrupt_unmask_shares(owner: int, bad_holders: set[int], out_of_range: int | None, n: int):
    def tamper(src, dst, frame):
        if src in bad_holders and dst == SERVER and frame[3] == Kind.UNMASK_SHARES:
            f = decode_frame(frame, party="t", stage="t")
            shares = parse_unmask_shares(Reader(f.payload, party="t", stage="t"), n)
            kind, share = shares[owner]
            share = np.full_like(share, OUT_OF_RANGE) if src == out_of_range else (share + np.uint64(1)) % np.uint64(field.P)
            shares[owner] = (kind, share)
            payload = Writer().entries({v: bytes([k]) + s.astype(">u8").tobytes() for v, (k, s) in shares.items()}).getvalue()
            return [encode_frame(type(f)(f.kind, f.session, f.sender, f.recipient, payload))]
        return [frame]

    return tamper


@pytest.mark.parametrize("out_of_range", [None, 10], ids=["in-range-control", "one-out-of-range"])
def test_the_round_goes_on_while_t_good_unmasking_shares_remain(out_of_range):
    """SecAgg n=30, t=15: 6 Byzantine clients (10..15) send bad unmasking shares of client 0's self-mask seed;
    23 good shares remain (>= t) and 6 <= (29 - 15)/2. The round must complete with the right sum and name them: the
    holder of an out-of-field share alone, the others as pairs 0 -> holder (client 0 may have sealed them so)."""
    n = 30
    inputs = np.arange(2 * n, dtype=np.uint32).reshape(n, 2)
    bad = set(range(10, 16))
    out = secure_sum(inputs, protocol=SecAgg(t=15), seed=4, tamper=_corrupt_unmask_shares(0, bad, out_of_range, n))
    check_sum(inputs, out, 32)
    assert out.included == tuple(range(n))
    assert _named(out) == bad, f"report names {sorted(_named(out))} as bad share holders; the bad ones are {sorted(bad)}"
    alone, pairs = share_blame(out)  # out of the field: the holder alone (an honest one refuses such a share); else the pair
    assert alone == ({out_of_range} if out_of_range else set()) and pairs == {(0, w) for w in bad - alone}, (alone, pairs)


def _named(out) -> set[int]:
    """The holders the report names for bad shares: alone (out of the field) or as a pair's holder (off the polynomial)."""
    alone, pairs = share_blame(out)
    return alone | {w for _, w in pairs}


def _lagrange_at_zero(points: list[int]) -> dict[int, int]:
    p = field.P
    out = {}
    for i in points:
        num = den = 1
        for m in points:
            if m != i:
                num, den = num * (p - m) % p, den * (i - m) % p
        out[i] = num * pow(den, p - 2, p) % p
    return out


def test_bad_shares_crafted_to_cancel_at_zero_do_not_get_honest_holders_named():
    """Byzantine holders frame honest ones. SecAgg n=12, t=6: holders of client 0's seed are 1..11 (m=11).
    Client 1 sends an out-of-range share (step 1 fails, Gao is skipped); clients 2 and 3 add errors e2, e3 with
    lambda_3 e2 + lambda_4 e3 = 0 for the points {3..8} of the first subset the search tries (holders 2..7).
    That wrong polynomial still gives the right seed at 0, passes the commitment, and every honest holder
    off it (8..11) is reported as a bad share holder, while 2 and 3 are not."""
    n, t = 12, 6
    lam = _lagrange_at_zero([3, 4, 5, 6, 7, 8])
    e2 = 1
    e3 = (field.P - lam[3] * e2 % field.P) * pow(lam[4], field.P - 2, field.P) % field.P
    errors = {2: e2, 3: e3}

    def tamper(src, dst, frame):
        if src in (1, 2, 3) and dst == SERVER and frame[3] == Kind.UNMASK_SHARES:
            f = decode_frame(frame, party="t", stage="t")
            shares = parse_unmask_shares(Reader(f.payload, party="t", stage="t"), n)
            kind, share = shares[0]
            if src == 1:
                share = np.full_like(share, OUT_OF_RANGE)
            else:
                share = np.array([(int(v) + errors[src]) % field.P for v in share], dtype=np.uint64)
            shares[0] = (kind, share)
            payload = Writer().entries({v: bytes([k]) + s.astype(">u8").tobytes() for v, (k, s) in shares.items()}).getvalue()
            return [encode_frame(type(f)(f.kind, f.session, f.sender, f.recipient, payload))]
        return [frame]

    inputs = np.arange(2 * n, dtype=np.uint32).reshape(n, 2)
    out = secure_sum(inputs, protocol=SecAgg(t=t), seed=7, tamper=tamper)
    check_sum(inputs, out, 32)
    assert _named(out) <= {1, 2, 3}, f"honest clients {sorted(_named(out) - {1, 2, 3})} named as holders of bad shares"


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_robust_reconstruction_never_returns_a_wrong_secret(data):
    """Byzantine holders choose any u64 shares (also >= p), and a Byzantine dealer may deal shares of several
    secrets: whatever comes out passes the check, and for an honest dealer it is the dealt secret."""
    m = data.draw(st.integers(2, 14))
    t = data.draw(st.integers(1, m))
    secret, holders, shares = _dealt(m, t, data.draw(st.integers(0, 2**32)))
    bad = data.draw(st.sets(st.integers(0, m - 1), max_size=m))
    for j in bad:
        shares[j] = np.array(data.draw(st.lists(st.integers(0, 2**64 - 1), min_size=shares.shape[1], max_size=shares.shape[1])), dtype=np.uint64)
    got, named = robust_reconstruct(holders, shares, t, _check(secret))
    assert got is None or got == secret
    if got is not None:
        assert set(named) <= bad
    good = m - len(bad)
    if len(bad) <= (m - t) // 2 and good >= t:
        assert got == secret, f"{len(bad)} bad of m={m}, t={t} is within the decoding radius"


def test_a_dealer_whose_shares_match_no_commitment_aborts_the_round_typed_naming_it():
    """Corrupt client 3 commits to a seed it did not share (its SHARES frame carries another commitment): no honest
    fix exists (its holders revealed seed shares; a key request would be refused), so the round must abort with a
    typed error naming client 3, and release no aggregate; it must not blame the honest holders."""
    from protocols.core.errors import Aborted

    n = 8

    def tamper(src, dst, frame):
        if src == 3 and dst == SERVER and frame[3] == Kind.SHARES:
            f = decode_frame(frame, party="t", stage="t")
            payload = bytes([f.payload[0] ^ 1]) + f.payload[1:]
            return [encode_frame(type(f)(f.kind, f.session, f.sender, f.recipient, payload))]
        return [frame]

    with pytest.raises(Aborted, match="client 3's SELF_MASK_SEED"):
        secure_sum(np.ones((n, 2), dtype=np.uint32), protocol=SecAgg(t=4), seed=2, tamper=tamper)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_gao_alone_corrects_in_range_errors_beyond_the_subset_search(data):
    """m=29, t=15 (C(29, 15) >> SEARCH_LIMIT): any <= 7 in-range bad shares anywhere, with any values, are corrected
    (and exactly those holders named) - the decoding-radius claim, where only Gao can do it."""
    m, t = 29, 15
    secret, holders, shares = _dealt(m, t, data.draw(st.integers(0, 2**32)))
    bad = data.draw(st.sets(st.integers(0, t - 1), min_size=1, max_size=(m - t) // 2))  # in the first t: step 1 fails
    for j in bad:
        row = data.draw(st.lists(st.integers(0, field.P - 1), min_size=shares.shape[1], max_size=shares.shape[1]))
        shares[j] = np.array(row, dtype=np.uint64)
    got, named = robust_reconstruct(holders, shares, t, _check(secret))
    assert got == secret
    assert set(named) <= bad  # a 'bad' draw may equal the true share; it is then not named


def test_beyond_the_decoding_radius_a_polynomial_crafted_through_the_secret_names_nobody():
    """Unit version of the framing attack on the subset search: m=9, t=6 (radius 1), 3 Byzantine holders. Holder 0
    sends noise (the first t fail), holders 1 and 2 add errors that cancel at 0 on points {2..7} (the first subset
    the search tries). That polynomial passes the check but agrees with only 6 < (9 + 6)/2 shares: it is not
    uniquely decoded, so the honest holders 7 and 8 off it must not be named (before the fix they were)."""
    m, t = 9, 6
    secret, holders, shares = _dealt(m, t, 5)
    lam = _lagrange_at_zero([2, 3, 4, 5, 6, 7])
    e1 = 1
    e2 = (field.P - lam[2] * e1 % field.P) * pow(lam[3], field.P - 2, field.P) % field.P
    shares[0] = (shares[0] + np.uint64(12345)) % np.uint64(field.P)
    shares[1] = np.array([(int(v) + e1) % field.P for v in shares[1]], dtype=np.uint64)
    shares[2] = np.array([(int(v) + e2) % field.P for v in shares[2]], dtype=np.uint64)
    got, named = robust_reconstruct(holders, shares, t, _check(secret))
    assert got == secret
    assert set(named) <= {0, 1, 2}, f"honest holders {sorted(set(named) - {0, 1, 2})} named"
