"""CKKS and BFV over TenSEAL: key sets, long vectors packed into ciphertexts, sums and products.

A vector of d values becomes ceil(d / slots) ciphertexts (`EncryptedVector`); sums run chunk by
chunk, in place (TenSEAL's `a + b` copies a ciphertext, `add_` does not). Serialized forms are
TenSEAL's own (SEAL, zstd-compressed), so byte counts are those a deployment would send.

Randomness: SEAL draws key and encryption randomness from its own CSPRNG seeded from the OS; a
simulation seed cannot make an HE round reproducible bit for bit, only within its error bound.
Low level: no threshold or multi-key decryption exists here; `protocols.he.aggregation` adds the
key-holder role around it.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Sequence

import numpy as np
import tenseal as ts
import tenseal.sealapi as seal

from secagg.errors import MalformedCiphertext
from secagg.he_params import HeParameters

SIGMA = 3.19  # SEAL's error standard deviation


def fresh_error_bound(params: HeParameters) -> float:
    """High-probability bound on one slot's error of a fresh CKKS encryption, in value units.

    SEAL encrypts at the key level and divides by the special prime, so the error is dominated by
    that rounding, B_rs = sqrt(N/3) * (3 + 8 sqrt(h)) with h <= N (Cheon, Kim, Kim, Song 2017,
    Lemma 2), plus the encoding rounding 6 sqrt(N/12), both divided by the scale 2**scale_bits.
    """
    n = params.poly_modulus_degree
    rescale = math.sqrt(n / 3) * (3 + 8 * math.sqrt(n))
    return (rescale + 6 * math.sqrt(n / 12)) / 2.0**params.scale_bits


@functools.cache
def ckks_headroom(params: HeParameters) -> float:
    """CKKS: the largest |coefficient| a decryption at the last level recovers, q0 / (2 * 2**scale_bits) in value
    units (q0: the first prime of SEAL's coefficient modulus; just below 2**headroom_bits). Every coefficient of an
    encoding is at most max |slot| (the inverse canonical embedding averages the N conjugate slot values), so a sum
    of vectors decrypts right while sum_i max |x_i| plus its error bound stays below this; past it, at the last level,
    each coefficient wraps modulo 2 x headroom, silently. ckks-8192-sum has one level; at a multi-level preset a fresh
    sum decrypts at the top level, with more room, so checks against this bound are conservative there."""
    if params.scheme != "ckks":
        raise ValueError(f"only CKKS has a headroom, found scheme {params.scheme!r}")
    q0 = seal.CoeffModulus.Create(params.poly_modulus_degree, list(params.coeff_mod_bit_sizes))[0].value()
    return q0 / 2.0 ** (params.scale_bits + 1)


def ckks_encodable(params: HeParameters) -> float:
    """CKKS: the largest |slot value| one encryption takes, 2**(data bits - 2 - scale_bits) (data bits: every prime of the
    coefficient modulus but the special one; 2**18 at ckks-8192-sum, half its `ckks_headroom`; 2**98 at ckks-8192). SEAL's
    encoder refuses a coefficient above 2**(data bits - 2) (its bit count, plus one for the sign, must stay below the data
    bits), and every coefficient is at most max |slot| (a full chunk of equal values reaches it; measured in the tests at
    each preset). A sum of several encryptions may pass it; one encryption (a client's input, the key holder's
    re-encrypted model) may not."""
    if params.scheme != "ckks":
        raise ValueError(f"only CKKS encodes floats, found scheme {params.scheme!r}")
    return 2.0 ** (sum(params.coeff_mod_bit_sizes[:-1]) - 2 - params.scale_bits)


def rescale_error_bound(params: HeParameters) -> float:
    """Error one rescaling or key switch (relinearization, rotation) adds to a slot: B_rs / scale."""
    n = params.poly_modulus_degree
    return math.sqrt(n / 3) * (3 + 8 * math.sqrt(n)) / 2.0**params.scale_bits


class HeContext:
    """A TenSEAL context with its parameters: secret (key holder) or public (clients, aggregator)."""

    def __init__(self, params: HeParameters, context: ts.Context) -> None:
        self.params, self._ctx = params, context

    @classmethod
    def generate(cls, params: HeParameters, *, galois: bool = False) -> "HeContext":
        """Fresh keys: secret, public and relinearization keys; Galois (rotation) keys if asked."""
        if params.scheme == "ckks":
            ctx = ts.context(ts.SCHEME_TYPE.CKKS, params.poly_modulus_degree, coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
            ctx.global_scale = 2.0**params.scale_bits
        else:
            t = batching_modulus(params)
            ctx = ts.context(ts.SCHEME_TYPE.BFV, params.poly_modulus_degree, t, coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
        if galois:
            ctx.generate_galois_keys()
        return cls(params, ctx)

    @property
    def is_private(self) -> bool:
        return self._ctx.is_private()

    @property
    def has_galois_keys(self) -> bool:
        return self._ctx.has_galois_keys()

    @property
    def plain_modulus(self) -> int:
        """BFV's t: sums are exact while every partial sum stays in (-t/2, t/2)."""
        if self.params.scheme != "bfv":
            raise ValueError("only BFV has a plain modulus")
        return self._ctx.seal_context().data.first_context_data().parms().plain_modulus().value()

    def public(self) -> "HeContext":
        """The same keys without the secret key."""
        ctx = self._ctx.copy()
        ctx.make_context_public()
        return HeContext(self.params, ctx)

    def to_bytes(self) -> bytes:
        """The public key, relinearization keys and (if present) Galois keys; never the secret key."""
        return self._ctx.serialize(save_secret_key=False, save_galois_keys=self.has_galois_keys)

    @classmethod
    def from_bytes(cls, params: HeParameters, data: bytes) -> "HeContext":
        """Parses a public context; refuses one whose parameters differ from `params`."""
        try:
            ctx = ts.context_from(data)
        except Exception as exc:  # TenSEAL raises bare ValueError/RuntimeError from protobuf and SEAL
            raise MalformedCiphertext(f"context does not parse: {type(exc).__name__}") from None
        parms = ctx.seal_context().data.key_context_data().parms()
        same = (
            parms.poly_modulus_degree() == params.poly_modulus_degree
            and [m.bit_count() for m in parms.coeff_modulus()] == list(params.coeff_mod_bit_sizes)
            and (params.scheme == "ckks" or parms.plain_modulus().bit_count() == params.plain_modulus_bits)
            and (params.scheme == "bfv" or ctx.global_scale == 2.0**params.scale_bits)
        )
        if not same or ctx.is_private():  # a context with weaker parameters would weaken every client's encryption
            raise MalformedCiphertext("context has other parameters than the preset, or carries a secret key")
        return cls(params, ctx)

    def key_bytes(self) -> dict[str, int]:
        """Serialized size of each key this context holds (public, relinearization, Galois), in bytes."""
        base = len(self._ctx.serialize(save_public_key=False, save_secret_key=False, save_galois_keys=False, save_relin_keys=False))
        sizes = {
            "public": len(self._ctx.serialize(save_secret_key=False, save_galois_keys=False, save_relin_keys=False)) - base,
            "relin": len(self._ctx.serialize(save_public_key=False, save_secret_key=False, save_galois_keys=False)) - base,
        }
        if self.has_galois_keys:
            sizes["galois"] = len(self._ctx.serialize(save_public_key=False, save_secret_key=False, save_relin_keys=False)) - base
        return sizes

    @property
    def tenseal(self) -> ts.Context:
        """The underlying TenSEAL context (for `secagg.he_distances` and benchmarks' floors)."""
        return self._ctx

    def encrypt(self, x: np.ndarray) -> "EncryptedVector":
        """Packs a 1-D vector into ceil(d / slots) ciphertexts (CKKS: floats; BFV: integers in (-t/2, t/2))."""
        x = np.asarray(x)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"x must be a non-empty 1-D vector, found shape {x.shape}")
        s = self.params.slots
        if self.params.scheme == "ckks":
            if not np.all(np.isfinite(x)):
                raise ValueError("x must be finite")
            chunks = [ts.ckks_vector(self._ctx, c.tolist()) for c in _padded(x, s)]
        else:
            if not np.issubdtype(x.dtype, np.integer):
                raise TypeError(f"BFV encrypts integers, found dtype {x.dtype}")
            half = self.plain_modulus // 2
            if x.size and (int(x.max()) >= half or int(x.min()) <= -half):
                raise ValueError(f"BFV values must lie in (-t/2, t/2) = (-{half}, {half})")
            chunks = [ts.bfv_vector(self._ctx, c.tolist()) for c in _padded(x, s)]
        return EncryptedVector(chunks, x.size)

    def decrypt(self, v: "EncryptedVector") -> np.ndarray:
        """The plaintext vector: float64 for CKKS (within the error bound), int64 for BFV (exact mod t)."""
        if not self.is_private:
            raise ValueError("this context has no secret key")
        key = self._ctx.secret_key()
        values = [c.decrypt(secret_key=key) for c in v.chunks]
        dtype = np.float64 if self.params.scheme == "ckks" else np.int64
        return np.concatenate([np.asarray(c, dtype=dtype) for c in values])[: v.length]


def batching_modulus(params: HeParameters) -> int:
    """BFV's plain modulus t for `params`: SEAL's batching prime of plain_modulus_bits bits, t = 1 mod 2N."""
    return seal.PlainModulus.Batching(params.poly_modulus_degree, params.plain_modulus_bits).value()


def bfv_sum_fits(count: int, bits: int, plain_modulus: int) -> bool:
    """Whether a sum of `count` elements of Z_2^bits stays below half BFV's plain modulus t (count (2**bits - 1) < t / 2,
    integer division), so that it decrypts to the integer sum and its reduction mod 2**bits is the ring sum."""
    return count * ((1 << bits) - 1) < plain_modulus // 2


def _padded(x: np.ndarray, slots: int) -> np.ndarray:
    """x as (chunks, slots) rows, zero-padded: TenSEAL would replicate a short vector into the
    unused slots, which a sum over all slots (an encrypted distance) must not see."""
    rows = np.zeros((-(-x.size // slots), slots), dtype=x.dtype)
    rows.flat[: x.size] = x
    return rows


_COUNTS = struct.Struct(">II")


class EncryptedVector:
    """A length-d vector as ciphertext chunks of `slots` values (the last one zero-padded)."""

    __slots__ = ("chunks", "length")

    def __init__(self, chunks: list, length: int) -> None:
        self.chunks, self.length = chunks, length

    def add_(self, other: "EncryptedVector") -> "EncryptedVector":
        """self += other, in place, chunk by chunk."""
        if other.length != self.length:
            raise ValueError(f"lengths differ: {self.length} and {other.length}")
        for a, b in zip(self.chunks, other.chunks):
            a.add_(b)
        return self

    def mul_(self, factor: float | np.ndarray) -> "EncryptedVector":
        """self *= a plaintext scalar or length-d vector, in place (CKKS: consumes one rescaling level)."""
        if np.ndim(factor) == 0:
            for c in self.chunks:
                c.mul_(factor)
            return self
        factor = np.asarray(factor)
        if factor.shape != (self.length,):
            raise ValueError(f"factor must be a scalar or have shape ({self.length},), found {factor.shape}")
        for c, row in zip(self.chunks, _padded(factor, self.chunks[0].size())):
            c.mul_(row.tolist())
        return self

    def to_bytes(self) -> bytes:
        """length (u32) | chunk count (u32) | per chunk: byte length (u32) | TenSEAL serialization."""
        parts = [_COUNTS.pack(self.length, len(self.chunks))]
        for c in self.chunks:
            data = c.serialize()
            parts += [struct.pack(">I", len(data)), data]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, context: HeContext, data: bytes, *, length: int) -> "EncryptedVector":
        """Parses untrusted bytes into a vector of `length` values under `context`.

        Raises:
            MalformedCiphertext: on any mismatch (length, chunk count or sizes, bytes left over,
                a chunk that is not one top-level ciphertext of size 2 at the preset's scale, or that TenSEAL/SEAL rejects).
        """
        s = context.params.slots
        limit = 2 * len(context.params.coeff_mod_bit_sizes) * context.params.poly_modulus_degree * 8 + 4096
        view = memoryview(data)
        if len(view) < _COUNTS.size:
            raise MalformedCiphertext("truncated vector header")
        got_length, count = _COUNTS.unpack_from(view)
        if got_length != length or count != -(-length // s):
            raise MalformedCiphertext("vector length or chunk count differs from the expected one")
        pos, chunks = _COUNTS.size, []
        load = ts.ckks_vector_from if context.params.scheme == "ckks" else ts.bfv_vector_from
        for k in range(count):
            if pos + 4 > len(view):
                raise MalformedCiphertext("truncated chunk header")
            (size,) = struct.unpack_from(">I", view, pos)
            pos += 4
            if size > limit or pos + size > len(view):
                raise MalformedCiphertext("chunk larger than its parameters allow or than the bytes present")
            try:
                chunk = load(context.tenseal, bytes(view[pos : pos + size]))
            except Exception as exc:  # protobuf / SEAL validation errors
                raise MalformedCiphertext(f"chunk {k} does not parse: {type(exc).__name__}") from None
            _check_chunk(context, chunk, k)
            chunks.append(chunk)
            pos += size
        if pos != len(view):
            raise MalformedCiphertext("bytes left over after the last chunk")
        return cls(chunks, length)


def rerandomized_total(context: HeContext, vectors: Sequence[EncryptedVector]) -> EncryptedVector:
    """The homomorphic sum of the vectors accumulated onto a fresh encryption of zero, so that no
    subset of them (e.g. a Byzantine client's negation of another's ciphertext) can cancel to a
    transparent ciphertext, whose addition SEAL refuses with an untyped error."""
    if not vectors:
        raise ValueError("nothing to sum")
    return total([context.encrypt(np.zeros(vectors[0].length, dtype=np.int64 if context.params.scheme == "bfv" else np.float64)), *vectors])


def _check_chunk(context: HeContext, chunk, k: int) -> None:
    """One parsed chunk against the preset, before any homomorphic operation may touch it: one SEAL
    ciphertext of size 2 at the top level (first parms id), NTT form and scale 2**scale_bits for CKKS
    (plain form for BFV), coefficients reduced modulo q, and `slots` values."""
    cts = chunk.ciphertext()
    sctx = context.tenseal.seal_context().data
    if len(cts) != 1:
        raise MalformedCiphertext(f"chunk {k} holds {len(cts)} ciphertexts, expected 1")
    ct, p = cts[0], context.params
    if ct.size() != 2 or ct.parms_id() != sctx.first_parms_id() or ct.is_transparent():
        raise MalformedCiphertext(f"chunk {k} has size {ct.size()}, a parameter id other than the preset's top level, or no mask (transparent)")
    if p.scheme == "ckks" and not (ct.is_ntt_form() and ct.scale == 2.0**p.scale_bits):
        raise MalformedCiphertext(f"chunk {k} has scale {ct.scale}, the preset encrypts at 2**{p.scale_bits}")
    if p.scheme == "bfv" and (ct.is_ntt_form() or ct.scale != 1.0):
        raise MalformedCiphertext(f"chunk {k} is not a BFV ciphertext of the preset")
    if not seal.is_valid_for(ct, sctx):
        raise MalformedCiphertext(f"chunk {k} has coefficients outside its modulus")
    if chunk.size() != p.slots:
        raise MalformedCiphertext(f"chunk {k} holds {chunk.size()} slots, expected {p.slots}")


def total(vectors: Sequence[EncryptedVector]) -> EncryptedVector:
    """The homomorphic sum of the vectors, accumulated in place into the first one (which it returns).

    No copy: TenSEAL's `copy` duplicates the whole context with it (0.26 s a chunk with Galois keys)."""
    if not vectors:
        raise ValueError("nothing to sum")
    out = vectors[0]
    for v in vectors[1:]:
        out.add_(v)
    return out
