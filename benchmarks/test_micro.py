"""Micro-benchmarks of the hot primitives (pytest-benchmark), each with its floor in `extra_info`.

    python -m pytest benchmarks/test_micro.py --benchmark-enable          # measure (about 1 min)
    python -m pytest benchmarks/test_micro.py                              # smoke: each body runs once (CI)

The suite's default options disable timing (`--benchmark-disable`), so the README's test command runs
every body once and checks its result; `--benchmark-enable` times them. Floors: AES-128-CTR keystream of
the same bytes for the PRG, a numpy pass for encoding, a float64 BLAS Gram matrix for the integer Gram
over shares, raw TenSEAL for the CKKS wrapper.
"""

import numpy as np
import pytest
import tenseal as ts

from benchmarks.floors import aes_ctr_keystream_seconds
from protocols.robust.validation import squared_distances
from secagg import field, shamir
from secagg.beaver import deal_gram, gram_share, to_signed
from secagg.encoding import FixedPoint
from secagg.he import HeContext
from secagg.he_params import preset
from secagg.prg import AesCtrPrg
from secagg.randomness import SeededRandomness
from secagg.ring import Ring

D = 100_000


def test_prg_expansion(benchmark):
    prg = AesCtrPrg(Ring(32))
    out = benchmark(prg.expand, b"\x07" * 32, D, b"mask")
    assert out.shape == (D,) and out.dtype == np.uint32
    benchmark.extra_info["floor_aes_ctr_seconds"] = aes_ctr_keystream_seconds(4 * D)


def test_mask_walk_of_15_masks(benchmark):
    """A SecAgg+ client's masks at k = 14: the blocked walk against the keystream of the same 15 masks."""
    prg, streams = AesCtrPrg(Ring(32)), [(bytes([i + 1]) * 32, b"mask", 1 if i % 2 else -1) for i in range(15)]
    benchmark(prg.add_streams, np.zeros(D, dtype=np.uint32), streams)
    acc, expected = np.zeros(D, dtype=np.uint32), np.zeros(D, dtype=np.uint32)
    prg.add_streams(acc, streams)
    for seed, domain, sign in streams:
        prg.add_into(expected, seed, domain, sign=sign)
    assert np.array_equal(acc, expected)
    benchmark.extra_info["floor_aes_ctr_seconds"] = aes_ctr_keystream_seconds(15 * 4 * D)


def test_shamir_share_and_reconstruct_1000_seeds(benchmark):
    rng = SeededRandomness(1)
    secrets = np.array([int(v) % field.P for v in rng.uint64(1000)], dtype=np.uint64)
    xs = list(range(1, 101))

    def roundtrip():
        shares = shamir.share(secrets, xs, 50, rng=rng)
        return shamir.reconstruct(xs[:60], shares[:60], 50)

    assert np.array_equal(benchmark(roundtrip), secrets)


def test_fixed_point_encode_decode(benchmark):
    codec = FixedPoint(2.0**20, Ring(32))
    x = np.random.default_rng(2).uniform(-1, 1, D)
    back = benchmark(lambda: codec.decode(codec.encode(x)))
    assert np.max(np.abs(back - x)) <= 2.0**-21
    benchmark.extra_info["floor_numpy_pass_elements"] = D


def test_gram_matrix_float(benchmark):
    x = np.random.default_rng(3).normal(size=(50, D)).astype(np.float32)
    dist = benchmark(squared_distances, x)
    assert dist.shape == (50, 50) and np.allclose(np.diag(dist), 0, atol=1e-2)


def test_gram_matrix_over_shares(benchmark):
    rng = SeededRandomness(4)
    x = rng.uint64(20 * D).reshape(20, D) >> np.uint64(50)
    share0 = rng.uint64(20 * D).reshape(20, D)

    def gram():
        t0, t1 = deal_gram(20, D, rng, rng.bytes(32))
        e = (share0 - t0.a) + ((x - share0) - t1.a)
        return to_signed(gram_share(0, e, t0) + gram_share(1, e, t1))

    g = benchmark(gram)
    assert g[0, 1] == int(sum(int(a) * int(b) for a, b in zip(x[0], x[1])) % 2**64)


@pytest.fixture(scope="module")
def ckks():
    return HeContext.generate(preset("ckks-8192-sum"))


def test_ckks_encrypt_one_chunk(benchmark, ckks):
    x = np.random.default_rng(5).normal(size=4096)
    v = benchmark(ckks.encrypt, x)
    assert np.max(np.abs(ckks.decrypt(v) - x)) < 1e-6
    benchmark.extra_info["floor_tenseal"] = "ts.ckks_vector on the same 4096 values"
    assert ts.ckks_vector(ckks.tenseal, x.tolist()).size() == 4096
