"""Known-answer tests and properties of the PRG, key agreement, AEAD, signatures and randomness."""

import hashlib
import hmac

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import (
    AesCtrPrg,
    AuthenticatedCipher,
    InvalidTag,
    Ring,
    SeededRandomness,
    Signer,
    SystemRandomness,
    X25519Agreement,
    derive,
    verify,
)
from secagg.agreement import is_low_order
from secagg.prg import _BLOCK_BYTES
from tests.vectors import load


def _hkdf_reference(ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 written out with hmac, independent of `cryptography`'s HKDF."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def test_hkdf_matches_rfc5869():
    v = load("rfc5869-hkdf-sha256-case3.txt")
    assert derive(v["ikm"], v["info"], len(v["okm"])) == v["okm"]


@given(seed=st.binary(min_size=32, max_size=32), d=st.integers(0, 300), bits=st.sampled_from([1, 8, 13, 16, 32, 40, 64]))
def test_prg_is_the_aes_ctr_keystream_under_the_hkdf_key(seed, d, bits):
    ring = Ring(bits)
    material = _hkdf_reference(seed, b"domain", 32)
    stream = Cipher(algorithms.AES(material[:16]), modes.CTR(material[16:])).encryptor().update(bytes(d * ring.dtype.itemsize))
    expected = ring.reduce(np.frombuffer(stream, dtype=ring.dtype).copy())
    assert np.array_equal(AesCtrPrg(ring).expand(seed, d, b"domain"), expected)


def test_prg_domains_and_seeds_separate():
    prg = AesCtrPrg(Ring(32))
    a = prg.expand(b"\x01" * 32, 64, b"a")
    assert not np.array_equal(a, prg.expand(b"\x01" * 32, 64, b"b"))
    assert not np.array_equal(a, prg.expand(b"\x02" * 32, 64, b"a"))
    assert np.array_equal(a, prg.expand(b"\x01" * 32, 64, b"a"))


@given(d=st.integers(1, 200), sign=st.sampled_from([1, -1]), bits=st.sampled_from([5, 16, 32, 64]))
def test_add_into_matches_expand(d, sign, bits):
    ring, prg = Ring(bits), AesCtrPrg(Ring(bits))
    acc = ring.reduce(np.arange(d, dtype=ring.dtype))
    expected = ring.add(acc, prg.expand(b"\x07" * 32, d, b"x")) if sign == 1 else ring.sub(acc, prg.expand(b"\x07" * 32, d, b"x"))
    prg.add_into(acc, b"\x07" * 32, b"x", sign=sign)
    assert np.array_equal(acc, expected)


@settings(max_examples=30, deadline=None)
@given(edge=st.sampled_from([(0, 1), (0, 7), (1, -1), (1, 0), (1, 1), (2, 3)]), signs=st.lists(st.sampled_from([1, -1]), min_size=0, max_size=5),
       bits=st.sampled_from([5, 16, 32, 64]), data=st.data())
def test_add_streams_is_one_add_into_a_stream(edge, signs, bits, data):
    """The blocked walk (lengths of `blocks` blocks of _BLOCK_BYTES plus `offset` elements, so across block edges at
    every width) adds exactly each stream's whole keystream: the same vector as one `add_into` a stream, in any order
    of signs and domains."""
    ring, prg = Ring(bits), AesCtrPrg(Ring(bits))
    blocks, offset = edge
    d = blocks * (_BLOCK_BYTES // ring.dtype.itemsize) + offset
    streams = [(bytes([i + 1]) * 32, data.draw(st.sampled_from([b"x", b"y"])), sign) for i, sign in enumerate(signs)]
    acc = ring.reduce((np.arange(d, dtype=np.uint64) * np.uint64(2654435761)).astype(ring.dtype))
    expected = acc.copy()
    for seed, domain, sign in streams:
        prg.add_into(expected, seed, domain, sign=sign)
        assert np.array_equal(AesCtrPrg(ring).expand(seed, d, domain), prg.expand(seed, d, domain))
    reference = acc.copy()
    for seed, domain, sign in streams:  # the definition: + or - the expanded mask, mod 2**b
        mask = prg.expand(seed, d, domain)
        reference = ring.add(reference, mask) if sign == 1 else ring.sub(reference, mask)
    start, out = acc.copy(), np.full_like(acc, 3)  # start: out's contents are ignored, start is left as it was
    prg.add_streams(out, streams, start=start)
    prg.add_streams(acc, streams)
    assert np.array_equal(acc, reference) and np.array_equal(expected, reference) and np.array_equal(out, reference)
    assert np.array_equal(start, ring.reduce((np.arange(d, dtype=np.uint64) * np.uint64(2654435761)).astype(ring.dtype)))


def test_add_streams_rejects_a_bad_sign_or_seed_before_any_work():
    acc = np.zeros(10, dtype=np.uint32)
    with pytest.raises(ValueError, match="sign"):
        AesCtrPrg(Ring(32)).add_streams(acc, [(b"\x01" * 32, b"x", 1), (b"\x01" * 32, b"x", 2)])
    with pytest.raises(ValueError, match="32 bytes"):
        AesCtrPrg(Ring(32)).add_streams(acc, [(b"\x01" * 32, b"x", 1), (b"short", b"x", 1)])
    assert not acc.any()


def test_prg_output_is_uniform():
    x = AesCtrPrg(Ring(4)).expand(b"\x03" * 32, 160000, b"u")
    counts = np.bincount(x, minlength=16)
    chi2 = float(((counts - 10000) ** 2 / 10000).sum())
    assert chi2 < 50  # 15 degrees of freedom: P[chi2 > 50] < 1e-5


def test_prg_rejects_bad_seed():
    with pytest.raises(ValueError, match="32 bytes"):
        AesCtrPrg(Ring(8)).expand(b"short", 4, b"x")


def test_x25519_matches_rfc7748():
    v = load("rfc7748-x25519.txt")
    alice = X25519Agreement.from_private_bytes(v["alice_private"])
    bob = X25519Agreement.from_private_bytes(v["bob_private"])
    assert alice.public_bytes() == v["alice_public"] and bob.public_bytes() == v["bob_public"]
    assert alice.shared_seed(v["bob_public"], b"ctx") == _hkdf_reference(v["shared"], b"secagg/x25519/ctx", 32)
    assert bob.shared_seed(v["alice_public"], b"ctx") == alice.shared_seed(v["bob_public"], b"ctx")


def test_x25519_rejects_low_order_and_short_keys():
    key = X25519Agreement.generate(SeededRandomness(1))
    with pytest.raises(InvalidTag, match="low-order"):
        key.shared_seed(bytes(32), b"")
    with pytest.raises(InvalidTag, match="32 bytes"):
        key.shared_seed(bytes(31), b"")


_P25519 = 2**255 - 19
LOW_ORDER_POINTS = [u.to_bytes(32, "little") for u in (0, 1, _P25519 - 1, _P25519, _P25519 + 1, 2**255)] + [bytes.fromhex(h) for h in (
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  # the two points of order 8
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157")]  # (p, p + 1, 2**255: encodings of 0, 1, 0)


@settings(max_examples=200, deadline=None)
@given(public=st.one_of(st.sampled_from(LOW_ORDER_POINTS), st.binary(min_size=32, max_size=32)))
def test_is_low_order_is_exactly_the_keys_an_agreement_refuses(public):
    """The small-subgroup points (each order dividing 8, canonical or not) are low order; on any 32 bytes, is_low_order
    says whether a fresh key's agreement with them refuses (the all-zero secret), for the probe's scalar and any other."""
    key = X25519Agreement.generate(SeededRandomness(int.from_bytes(public[:4], "big")))
    try:
        key.shared_seed(public, b"")
        refused = False
    except InvalidTag:
        refused = True
    assert is_low_order(public) == refused
    assert is_low_order(public) or public not in LOW_ORDER_POINTS


def test_ed25519_matches_rfc8032():
    v = load("rfc8032-ed25519-test1.txt")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signer = Signer(Ed25519PrivateKey.from_private_bytes(v["secret"]))
    assert signer.public_bytes() == v["public"]
    assert signer.sign(v["message"]) == v["signature"]
    verify(v["public"], v["signature"], v["message"])
    with pytest.raises(InvalidTag):
        verify(v["public"], v["signature"], b"other message")


@given(plaintext=st.binary(max_size=200), ad=st.binary(max_size=40), flip=st.integers(0, 10**6))
def test_aead_roundtrip_and_any_bit_flip_fails(plaintext, ad, flip):
    cipher = AuthenticatedCipher(b"\x11" * 32)
    ct = cipher.encrypt(plaintext, ad, rng=SeededRandomness(0))
    assert cipher.decrypt(ct, ad) == plaintext
    bit = flip % (8 * len(ct))
    tampered = bytearray(ct)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(InvalidTag):
        cipher.decrypt(bytes(tampered), ad)
    with pytest.raises(InvalidTag):
        cipher.decrypt(ct, ad + b"x")
    with pytest.raises(InvalidTag):
        cipher.decrypt(ct[:-1], ad)


def test_seeded_randomness_is_reproducible_and_system_randomness_is_not():
    assert SeededRandomness(4).bytes(32) == SeededRandomness(4).bytes(32)
    assert SeededRandomness(4).bytes(32) != SeededRandomness(5).bytes(32)
    assert SystemRandomness().bytes(32) != SystemRandomness().bytes(32)


def test_system_randomness_reads_the_os_csprng(monkeypatch):
    calls = []
    monkeypatch.setattr("os.urandom", lambda n: calls.append(n) or b"\x00" * n)
    SystemRandomness().bytes(16)
    assert calls == [16]


@given(bound=st.integers(1, 10**12), seed=st.integers(0, 2**32))
def test_below_stays_in_range(bound, seed):
    assert 0 <= SeededRandomness(seed).below(bound) < bound


def test_permutation_is_a_permutation():
    perm = SeededRandomness(3).permutation(50)
    assert sorted(perm.tolist()) == list(range(50))
