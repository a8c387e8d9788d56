"""A Byzantine client's tool: CKKS ciphertexts (c0, c1) written polynomial by polynomial, serialized as SEAL
(uncompressed) inside TenSEAL's CKKSVectorProto, so that they pass every check a parser can make on a
ciphertext (size 2, top level, NTT form, scale 2**scale_bits, coefficients reduced mod q, slot count).

`forged_vector(public, [c1_0, c1_1, ...])` with c0 = 0 and c1_k given in coefficient form: chunk k then
decrypts to c1_k * s, the secret key times a polynomial the client chose. `key_image` inverts SEAL's
canonical embedding (slot j <-> the root zeta**(3**j mod 2N)) from the real slot values TenSEAL decrypts."""

from __future__ import annotations

import os
import struct
import tempfile

import numpy as np
import tenseal.sealapi as seal

from protocols.testing import _varint
from secagg.he import HeContext
from secagg.he_distances import save_ciphertext


def _header(size: int) -> bytes:
    return struct.pack("<HBBBBHQ", 0xA15E, 16, 4, 3, 0, 0, size)  # SEAL header, compr_mode none


def _seal_ciphertext(public: HeContext, c1: np.ndarray, c0: int = 0) -> bytes:
    """The SEAL serialization of (c0, c1) at the top level (c0 a constant, c1 a polynomial in coefficient form), in NTT form."""
    sctx = public.tenseal.seal_context().data
    cd = sctx.first_context_data()
    mods = [m.value() for m in cd.parms().coeff_modulus()]
    n = public.params.poly_modulus_degree
    polys = [np.asarray([c0 % q] + [0] * (n - 1), dtype=np.uint64) for q in mods] + [np.asarray([int(c) % q for c in c1], dtype=np.uint64) for q in mods]
    if not np.any(np.asarray(c1, dtype=object)):  # c1 = 0: write the NTT form directly (a constant is constant there)
        polys[: len(mods)] = [np.full(n, c0 % q, np.uint64) for q in mods]
    data = np.concatenate(polys)
    inner = struct.pack("<Q", data.size) + data.tobytes()
    ntt = b"\x01" if not np.any(np.asarray(c1, dtype=object)) else b"\x00"
    body = struct.pack("<4Q", *cd.parms_id()) + ntt + struct.pack("<QQQdQ", 2, n, len(mods), 2.0**public.params.scale_bits, 1)
    body += _header(16 + len(inner)) + inner
    raw = _header(16 + len(body)) + body
    ct = seal.Ciphertext()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ct")
        with open(path, "wb") as f:
            f.write(raw)
        ct.load(sctx, path)
    if not ct.is_ntt_form():
        seal.Evaluator(sctx).transform_to_ntt_inplace(ct)
    return save_ciphertext(ct)


def vector_of(public: HeContext, raws: list[bytes], length: int) -> bytes:
    """An EncryptedVector of `length` values whose chunks are the SEAL serializations `raws` (CKKSVectorProto each)."""
    s, scale = public.params.slots, 2.0**public.params.scale_bits
    parts = [struct.pack(">II", length, len(raws))]
    for raw in raws:
        sizes = _varint(s)
        proto = b"\x0a" + _varint(len(sizes)) + sizes + b"\x12" + _varint(len(raw)) + raw + b"\x19" + struct.pack("<d", scale)
        parts += [struct.pack(">I", len(proto)), proto]
    return b"".join(parts)


def forged_vector(public: HeContext, c1s: list[np.ndarray], length: int, c0: int = 0) -> bytes:
    """An EncryptedVector of `length` values whose chunk k is (c0, c1s[k]) (c0 a constant polynomial)."""
    return vector_of(public, [_seal_ciphertext(public, c1, c0) for c1 in c1s], length)


def monomial(n: int, k: int, value: int) -> np.ndarray:
    c = np.zeros(n, dtype=object)
    c[k] = value
    return c


def roots(n: int) -> np.ndarray:
    """t_j = 3**j mod 2N, the root exponent of SEAL's slot j."""
    t, out = 1, []
    for _ in range(n // 2):
        out.append(t)
        t = t * 3 % (2 * n)
    return np.array(out)


def coefficients(n: int, slot_values: np.ndarray) -> np.ndarray:
    """The real polynomial whose canonical embedding at the roots t_j is `slot_values` (complex, n/2 of them)."""
    q = np.zeros(2 * n, complex)
    t = roots(n)
    q[t] = slot_values
    q[(2 * n - t) % (2 * n)] = np.conj(slot_values)
    k = np.arange(n)
    return (np.exp(-1j * np.pi * k / n) * np.fft.fft(q[1::2]) / n).real


def key_image(n: int, chunk0: np.ndarray, chunk1: np.ndarray) -> np.ndarray:
    """s from the real slot values of c1 = 1 (chunk0) and c1 = X**(n/2) (chunk1), both divided by K / scale:
    chunk1's slot j is Re(i**t_j * s(zeta**t_j)) = -/+ Im(s(zeta**t_j))."""
    t = roots(n)
    imag = np.where(t % 4 == 1, -chunk1, chunk1)
    return coefficients(n, chunk0 + 1j * imag)


def negacyclic_shift(s: np.ndarray, k: int) -> np.ndarray:
    """X**k * s mod X**n + 1."""
    n = len(s)
    out = np.zeros(n)
    out[k:] = s[: n - k]
    out[:k] = -s[n - k :]
    return out


def real_slots(n: int, poly: np.ndarray) -> np.ndarray:
    """Re of the canonical embedding of `poly` at SEAL's slots (what TenSEAL decrypts, before scaling)."""
    t = roots(n)
    # evaluate with an FFT: poly(zeta**t) for all odd t, zeta = exp(i pi / n)
    vals = np.fft.ifft(poly * np.exp(1j * np.pi * np.arange(n) / n)) * n  # sum_k p_k zeta**k omega**(u k), t = 2u + 1
    return vals[(t - 1) // 2].real
