"""CKKS/BFV wrappers: sums within the stated bound (exact for BFV), products, encrypted distances,
and defensive parsing of untrusted ciphertext bytes."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secagg.errors import MalformedCiphertext
from secagg.he import EncryptedVector, HeContext, fresh_error_bound, total
from secagg.he_distances import EncryptedScalars, all_pairs, error_bound, pairwise
from secagg.he_params import MAX_LOG_Q, PRESETS, HeParameters, preset

SLOW_FIXTURE = settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def ckks_sum():
    return HeContext.generate(preset("ckks-8192-sum"))


@pytest.fixture(scope="module")
def ckks_deep():
    return HeContext.generate(preset("ckks-8192"), galois=True)


@pytest.fixture(scope="module")
def bfv():
    return HeContext.generate(preset("bfv-8192"))


def test_presets_meet_the_standard_and_report_their_level():
    for name, p in PRESETS.items():
        assert p.log_q <= MAX_LOG_Q[128][p.poly_modulus_degree], name
        assert p.security_bits in (128, 192, 256)
    assert preset("ckks-8192").security_bits == 128 and preset("ckks-8192").depth == 2
    with pytest.raises(ValueError, match="exceeds"):
        HeParameters("ckks", 4096, (60, 60), scale_bits=40)
    with pytest.raises(ValueError, match="unknown HE preset"):
        preset("ckks-3")


@SLOW_FIXTURE
@given(n=st.integers(1, 6), d=st.integers(1, 9000), magnitude=st.floats(1e-3, 10.0), seed=st.integers(0, 2**32 - 1))
def test_ckks_sum_within_bound(ckks_sum, n, d, magnitude, seed):
    x = np.random.default_rng(seed).uniform(-magnitude, magnitude, (n, d))
    public = HeContext.from_bytes(ckks_sum.params, ckks_sum.public().to_bytes())
    wire = [public.encrypt(row).to_bytes() for row in x]
    s = total([EncryptedVector.from_bytes(public, w, length=d) for w in wire])
    got = ckks_sum.decrypt(s)
    assert got.shape == (d,)
    assert np.max(np.abs(got - x.sum(0))) <= n * fresh_error_bound(ckks_sum.params)


@SLOW_FIXTURE
@given(n=st.integers(1, 6), d=st.integers(1, 17000), bits=st.integers(1, 30), seed=st.integers(0, 2**32 - 1))
def test_bfv_sum_is_exact(bfv, n, d, bits, seed):
    x = np.random.default_rng(seed).integers(-(2**bits), 2**bits, (n, d))
    s = total([bfv.encrypt(row) for row in x])
    assert np.array_equal(bfv.decrypt(s), x.sum(0))


def test_bfv_refuses_values_outside_half_the_plain_modulus(bfv):
    half = bfv.plain_modulus // 2
    with pytest.raises(ValueError, match="t/2"):
        bfv.encrypt(np.array([half, 0]))
    with pytest.raises(TypeError):
        bfv.encrypt(np.array([0.5]))


def test_plaintext_products(ckks_deep, bfv):
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=5000), rng.normal(size=5000)
    assert np.allclose(ckks_deep.decrypt(ckks_deep.encrypt(x).mul_(0.25)), 0.25 * x, atol=1e-5)
    assert np.allclose(ckks_deep.decrypt(ckks_deep.encrypt(x).mul_(w)), w * x, atol=1e-5)
    k = rng.integers(-100, 100, 9000)
    assert np.array_equal(bfv.decrypt(bfv.encrypt(k).mul_(3)), 3 * k)
    with pytest.raises(ValueError, match="shape"):
        ckks_deep.encrypt(x).mul_(w[:10])


@SLOW_FIXTURE
@given(n=st.integers(2, 4), d=st.integers(1, 9000), magnitude=st.floats(1e-3, 1.0), seed=st.integers(0, 2**32 - 1))
def test_encrypted_distances_and_inner_products_within_bound(ckks_deep, n, d, magnitude, seed):
    x = np.random.default_rng(seed).uniform(-magnitude, magnitude, (n, d))
    public = ckks_deep.public()
    vs = [public.encrypt(row) for row in x]
    pairs = all_pairs(n)
    dist = EncryptedScalars.from_bytes(ckks_deep, pairwise(public, vs, pairs).to_bytes(), count=len(pairs)).decrypt(ckks_deep)
    inner = pairwise(public, vs, pairs, kind="inner_product").decrypt(ckks_deep)
    for p, (i, j) in enumerate(pairs):
        true = float(np.sum((x[i] - x[j]) ** 2))
        assert abs(dist[p] - true) <= error_bound(public, d, np.sqrt(true))
        assert abs(inner[p] - x[i] @ x[j]) <= error_bound(public, d, max(np.linalg.norm(x[i]), np.linalg.norm(x[j])))


def test_distances_need_depth_and_galois_keys(ckks_sum, ckks_deep):
    v = ckks_sum.encrypt(np.ones(3))
    with pytest.raises(ValueError, match="depth"):
        pairwise(ckks_sum, [v, v], [(0, 1)])
    no_galois = HeContext.generate(preset("ckks-8192"))
    w = no_galois.encrypt(np.ones(3))
    with pytest.raises(ValueError, match="Galois"):
        pairwise(no_galois, [w, w], [(0, 1)])


def test_public_context_carries_no_secret_and_parses_defensively(ckks_sum):
    public = ckks_sum.public()
    assert ckks_sum.is_private and not public.is_private
    with pytest.raises(ValueError, match="secret key"):
        public.decrypt(public.encrypt(np.ones(2)))
    with pytest.raises(MalformedCiphertext):
        HeContext.from_bytes(ckks_sum.params, b"\x00garbage")
    with pytest.raises(MalformedCiphertext):
        HeContext.from_bytes(preset("ckks-16384"), public.to_bytes())
    with pytest.raises(MalformedCiphertext):  # same ring degree, other primes: refused as well
        HeContext.from_bytes(preset("ckks-8192"), public.to_bytes())
    sizes = ckks_sum.key_bytes()
    assert sizes["public"] > 0 and sizes["relin"] > 0 and "galois" not in sizes
    shipped = HeContext.from_bytes(ckks_sum.params, ckks_sum.to_bytes())  # what HeKeys sends: the secret context's own bytes
    assert not shipped.is_private
    with pytest.raises(ValueError, match="secret key"):
        shipped.decrypt(shipped.encrypt(np.ones(2)))


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_untrusted_vector_bytes_parse_or_raise_malformed(ckks_sum, data):
    good = ckks_sum.encrypt(np.arange(5000.0)).to_bytes()
    cut = data.draw(st.integers(0, len(good)))
    mutations = [good[:cut], good + b"\x00", good[:cut] + bytes([good[cut] ^ 0xFF]) + good[cut + 1 :] if cut < len(good) else good]
    for bad in mutations:
        try:
            v = EncryptedVector.from_bytes(ckks_sum, bad, length=5000)
        except MalformedCiphertext:
            continue
        assert v.length == 5000 and len(v.chunks) == 2
    with pytest.raises(MalformedCiphertext):
        EncryptedVector.from_bytes(ckks_sum, good, length=4000)
    with pytest.raises(MalformedCiphertext):
        EncryptedScalars.from_bytes(ckks_sum, good, count=3)


def test_distances_fill_several_result_ciphertexts_and_their_slots_hold_only_the_values(ckks_deep):
    """78 pairs over two result ciphertexts of P = 64; every slot the key holder decrypts is a pair's value or 0."""
    import tenseal.sealapi as seal

    from secagg.he_distances import pairs_per_ciphertext

    n, d = 13, 300
    x = np.random.default_rng(5).normal(size=(n, d)) * 0.1
    public = ckks_deep.public()
    pairs = all_pairs(n)
    per, slots = pairs_per_ciphertext(ckks_deep.params.slots), ckks_deep.params.slots
    enc = pairwise(public, [public.encrypt(row) for row in x], pairs)
    assert per == 64 and len(enc.ciphertexts) == 2
    true = np.array([np.sum((x[i] - x[j]) ** 2) for i, j in pairs])
    bound = max(error_bound(public, d, np.sqrt(t)) for t in true)
    assert np.max(np.abs(EncryptedScalars.from_bytes(ckks_deep, enc.to_bytes(), count=len(pairs)).decrypt(ckks_deep) - true)) <= bound
    sctx = ckks_deep.tenseal.seal_context().data
    decryptor, encoder = seal.Decryptor(sctx, ckks_deep.tenseal.secret_key().data), seal.CKKSEncoder(sctx)
    for c, ct in enumerate(enc.ciphertexts):
        plain = seal.Plaintext()
        decryptor.decrypt(ct, plain)
        raw = np.asarray(encoder.decode_double(plain))
        window = slots // per
        expected = np.zeros(window)
        values = true[c * per : (c + 1) * per]
        expected[: len(values)] = values
        assert np.max(np.abs(raw - np.tile(expected, slots // window))) <= bound
    with pytest.raises(MalformedCiphertext, match="ciphertext count"):
        EncryptedScalars.from_bytes(ckks_deep, per.to_bytes(4, "big") + enc.to_bytes()[4:], count=per)  # 64 values: one ciphertext, not two
