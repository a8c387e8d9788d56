"""Ring Z_2^b and fixed-point encoding."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secagg import FixedPoint, Ring, SeededRandomness

bits_st = st.integers(1, 64)


@given(bits=bits_st, data=st.data())
def test_add_sub_match_python_modular_arithmetic(bits, data):
    ring = Ring(bits)
    xs = data.draw(st.lists(st.integers(0, ring.mask), min_size=1, max_size=20))
    ys = data.draw(st.lists(st.integers(0, ring.mask), min_size=len(xs), max_size=len(xs)))
    a, b = np.array(xs, dtype=ring.dtype), np.array(ys, dtype=ring.dtype)
    assert [int(v) for v in ring.add(a, b)] == [(x + y) % ring.modulus for x, y in zip(xs, ys)]
    assert [int(v) for v in ring.sub(a, b)] == [(x - y) % ring.modulus for x, y in zip(xs, ys)]
    assert int(ring.sum(np.stack([a, b]))[0]) == (xs[0] + ys[0]) % ring.modulus


@given(bits=bits_st, data=st.data())
def test_wire_roundtrip(bits, data):
    ring = Ring(bits)
    x = np.array(data.draw(st.lists(st.integers(0, ring.mask), max_size=30)), dtype=ring.dtype)
    packed = ring.to_bytes(x)
    assert len(packed) == len(x) * ring.element_bytes
    assert np.array_equal(ring.from_bytes(packed, len(x)), x)
    assert bytes(ring.to_buffer(x)) == packed  # the view (full-width elements) or the copy packs the same bytes
    assert bytes(ring.to_buffer(x[::-1])) == ring.to_bytes(x[::-1])  # a strided input too


def test_from_bytes_rejects_wrong_length_and_high_bits():
    ring = Ring(12)
    with pytest.raises(ValueError, match="expected 4 bytes"):
        ring.from_bytes(b"\x00" * 5, 2)
    with pytest.raises(ValueError, match=">= 2\\*\\*12"):
        ring.from_bytes(b"\xff\xff", 1)


@pytest.mark.parametrize("bits", [0, 65, 2.5])
def test_ring_rejects_bad_bits(bits):
    with pytest.raises(ValueError, match="bits must be"):
        Ring(bits)


def test_check_rejects_wrong_dtype():
    with pytest.raises(TypeError, match="uint32"):
        Ring(32).check(np.zeros(3, dtype=np.int64))


@given(
    bits=st.integers(8, 64),
    values=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=1, max_size=30),
    rounding=st.sampled_from(["nearest", "stochastic"]),
)
def test_encode_decode_error_is_bounded(bits, values, rounding):
    codec = FixedPoint(2.0 ** (bits - 3), Ring(bits))
    x = np.array(values)
    decoded = codec.decode(codec.encode(x, rounding=rounding, rng=SeededRandomness(0)))
    bound = 0.5 / codec.scale if rounding == "nearest" else 1.0 / codec.scale
    assert np.max(np.abs(decoded - x)) <= bound * (1 + 1e-9)


@given(n=st.integers(1, 50), bits=st.integers(8, 48), seed=st.integers(0, 2**32))
def test_sum_of_encodings_decodes_to_sum_when_check_passes(n, bits, seed):
    codec = FixedPoint(2.0 ** (bits - 8), Ring(bits))
    x = np.random.default_rng(seed).uniform(-1, 1, size=(n, 5))
    try:
        codec.check_sum_fits(n, 1.0)
    except OverflowError:
        return
    total = codec.ring.sum(np.stack([codec.encode(row) for row in x]))
    assert np.max(np.abs(codec.decode(total) - x.sum(axis=0))) <= n * 0.5 / codec.scale + 1e-12


def test_overflow_check_refuses_a_sum_that_wraps():
    codec = FixedPoint(2.0**10, Ring(16))
    codec.check_sum_fits(31, 1.0)
    with pytest.raises(OverflowError, match="beyond 2\\*\\*15 - 1"):
        codec.check_sum_fits(32, 1.0)


def test_stochastic_rounding_is_unbiased():
    codec = FixedPoint(1.0, Ring(32))
    x = np.full(20000, 0.3)
    decoded = codec.decode(codec.encode(x, rounding="stochastic", rng=SeededRandomness(5)))
    assert set(np.unique(decoded)) == {0.0, 1.0}
    assert abs(decoded.mean() - 0.3) < 4 * np.sqrt(0.21 / 20000)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"rounding": "floor"}, ValueError, "rounding"),
        ({"rounding": "stochastic"}, ValueError, "needs rng"),
    ],
)
def test_encode_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        FixedPoint(4.0, Ring(16)).encode(np.ones(3), **kwargs)


def test_encode_rejects_nan_and_out_of_range():
    codec = FixedPoint(4.0, Ring(8))
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(np.array([np.nan]))
    with pytest.raises(ValueError, match="signed range"):
        codec.encode(np.array([40.0]))
