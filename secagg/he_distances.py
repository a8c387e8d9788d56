"""Encrypted squared distances and inner products between CKKS vectors, packed into few ciphertexts.

With S slots, P = 2**floor(log2(S) / 2) <= sqrt(S) pairs a result ciphertext and Q = S / P, the aggregator
computes for each pair (a, b) of packed vectors, ciphertext chunk by chunk,

    u = sum_c (a_c - b_c)**2      (or a_c * b_c)    degree-2 products, summed before relinearizing
    u <- relinearize, rescale     once per pair, not once per chunk
    u <- u + rot(u, 1) + ...      log2(Q) rotations: slot j holds the sum of the Q slots j .. j + Q - 1
    y += u * m_p                  m_p = 1 on the slots p + b Q (b < P): P windows that tile the S slots once

and for each P pairs, once:

    y <- y + rot(y, Q) + rot(y, 2 Q) + ...   log2(P) rotations: slot p (and p + b Q) = pair p's full sum

so a pair costs log2(S) / 2 rotations instead of log2(S) (and P masks are encoded once a call, not once a
pair), and the key holder decrypts one ciphertext per P pairs and sees nothing but the values (each
repeated P times; the slots of no pair hold 0). A key holder that computes the values itself (`restrict`,
then `squared_distances`) first takes each input's real part with its padding slots attenuated to ~1e-10 of their value (a level), and
decrypts each pair's slot-summed ciphertext. Rotations stay within a ciphertext; delaying
relinearization saves a key switch per chunk. TenSEAL's vectors do not expose relinearization, so this
module works on the SEAL objects that TenSEAL ships (`tenseal.sealapi`), which serialize only through
files (here a private temporary directory, in memory where /dev/shm exists). Needs depth >= 2 and Galois keys.

Error (value units): with E the fresh error bound of a slot, B the rescaling/key-switching error
bound (`rescale_error_bound`), D = ||a - b||_2 (or the larger norm, for inner products), d values and
S slots, the bound treats the slot errors as independent and centred, so sums of k of them grow
like sqrt(k) (the average-case view of CKKS noise, as in Costache et al., CT-RSA 2023):

    |error| <= 2 sqrt(2) E D + d E**2 + 2 sqrt(3 S + P + 2) B + 2**-30 D**2.

A pair's value sums at most S first rescale errors, S - P + P - 1 key-switching errors and P second rescale
errors (P more than a single rotation tree, hence the P in the bound). It is a high-probability bound for
honest inputs, not a worst case (that would be 4 E sqrt(d) D + (3 S + P + 2) B, some 100x looser at d = 1e5);
the tests check it on random inputs.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence

import numpy as np
import tenseal.sealapi as seal

from secagg.errors import MalformedCiphertext
from secagg.he import EncryptedVector, HeContext, fresh_error_bound, rescale_error_bound

KINDS = ("squared_distance", "inner_product")
_SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None


def all_pairs(n: int) -> list[tuple[int, int]]:
    """(i, j) for 0 <= i < j < n, in row order."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def pairs_per_ciphertext(slots: int) -> int:
    """P = 2**floor(log2(slots) / 2): the pairs one result ciphertext of `pairwise` holds (see the module docstring)."""
    return 1 << ((slots.bit_length() - 1) // 2)


def error_bound(context: HeContext, d: int, norm: float, *, restricted: bool = False) -> float:
    """Bound on the error of one encrypted squared distance (or inner product) of vectors of d values
    whose difference (or the larger of the two vectors) has L2 norm <= `norm`; see the module docstring.
    `restricted`: the vectors went through `restrict` first, whose encryption of zero adds E and whose conjugation
    and rescaling add 2B to each slot's E. The P term counts the extra rescale errors of `pairwise`'s packing
    (a bound for `squared_distances` too, which has none)."""
    e = fresh_error_bound(context.params) * (1 + restricted) + 2 * restricted * rescale_error_bound(context.params)
    s = context.params.slots
    p = pairs_per_ciphertext(s)
    return 2 * math.sqrt(2) * e * norm + d * e * e + 2 * math.sqrt(3 * s + p + 2) * rescale_error_bound(context.params) + 2.0**-30 * norm * norm


class EncryptedScalars:
    """`count` encrypted values, value p in slot p % P of ciphertext p // P (P = `pairs_per_ciphertext(slots)`)."""

    __slots__ = ("ciphertexts", "count")

    def __init__(self, ciphertexts: list, count: int) -> None:
        self.ciphertexts, self.count = ciphertexts, count

    def to_bytes(self) -> bytes:
        parts = [self.count.to_bytes(4, "big"), len(self.ciphertexts).to_bytes(4, "big")]
        for ct in self.ciphertexts:
            data = save_ciphertext(ct)
            parts += [len(data).to_bytes(4, "big"), data]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, context: HeContext, data: bytes, *, count: int) -> "EncryptedScalars":
        """Parses untrusted bytes holding exactly `count` values; raises `MalformedCiphertext`."""
        p = context.params
        limit = 2 * len(p.coeff_mod_bit_sizes) * p.poly_modulus_degree * 8 + 4096
        if len(data) < 8 or int.from_bytes(data[:4], "big") != count:
            raise MalformedCiphertext("scalar count differs from the expected one")
        m = int.from_bytes(data[4:8], "big")
        if m != -(-count // pairs_per_ciphertext(p.slots)):
            raise MalformedCiphertext("ciphertext count does not match the scalar count")
        pos, cts = 8, []
        sctx = context.tenseal.seal_context().data
        for _ in range(m):
            size = int.from_bytes(data[pos : pos + 4], "big") if pos + 4 <= len(data) else -1
            pos += 4
            if size < 0 or size > limit or pos + size > len(data):
                raise MalformedCiphertext("ciphertext larger than its parameters allow or than the bytes present")
            cts.append(_load(sctx, data[pos : pos + size]))
            pos += size
        if pos != len(data):
            raise MalformedCiphertext("bytes left over after the last ciphertext")
        return cls(cts, count)

    def decrypt(self, context: HeContext) -> np.ndarray:
        """The `count` values (float64), decrypted with the secret key of `context`."""
        if not context.is_private:
            raise ValueError("this context has no secret key")
        ts_ctx = context.tenseal
        sctx = ts_ctx.seal_context().data
        decryptor = seal.Decryptor(sctx, ts_ctx.secret_key().data)
        encoder = seal.CKKSEncoder(sctx)
        per, out = pairs_per_ciphertext(context.params.slots), []
        for ct in self.ciphertexts:
            plain = seal.Plaintext()
            decryptor.decrypt(ct, plain)
            out.append(np.asarray(encoder.decode_double(plain))[:per])
        return np.concatenate(out)[: self.count] if out else np.zeros(0)


def pairwise(context: HeContext, vectors: Sequence[EncryptedVector], pairs: Sequence[tuple[int, int]], kind: str = "squared_distance") -> EncryptedScalars:
    """Encrypted ||v_i - v_j||**2 (or <v_i, v_j>) for each (i, j) in `pairs`, value p in slot p.

    Raises:
        ValueError: unknown kind, CKKS depth < 2, no Galois keys, vectors of different lengths.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, found {kind!r}")
    p = context.params
    if p.scheme != "ckks" or p.depth < 2:
        raise ValueError(f"encrypted distances need CKKS with depth >= 2, found {p.scheme} with depth {p.depth}")
    if not context.has_galois_keys:
        raise ValueError("encrypted distances need Galois (rotation) keys")
    if len({v.length for v in vectors}) > 1:
        raise ValueError("vectors have different lengths")
    ts_ctx = context.tenseal
    sctx = ts_ctx.seal_context().data
    ev, enc = seal.Evaluator(sctx), seal.CKKSEncoder(sctx)
    relin, galois = ts_ctx.relin_keys().data, ts_ctx.galois_keys().data
    raw = {i: [c.ciphertext()[0] for c in vectors[i].chunks] for i in sorted({k for pair in pairs for k in pair})}
    s = p.slots
    per = pairs_per_ciphertext(s)
    window = s // per
    masks: dict[int, object] = {}  # m_p, encoded once a call at the level the pairs' sums reach
    out = []
    for start in range(0, len(pairs), per):
        acc = None
        for slot, (i, j) in enumerate(pairs[start : start + per]):
            u = _rotate_and_add(ev, galois, _products(ev, relin, raw[i], raw[j], kind), 1, window)
            if slot not in masks:
                comb = np.zeros(s)
                comb[slot::window] = 1.0
                prime = sctx.get_context_data(u.parms_id()).parms().coeff_modulus()[-1].value()
                masks[slot] = seal.Plaintext()
                enc.encode(comb.tolist(), u.parms_id(), float(prime), masks[slot])
            ev.multiply_plain_inplace(u, masks[slot])
            ev.rescale_to_next_inplace(u)
            if acc is None:
                acc = u
            else:
                ev.add_inplace(acc, u)
        out.append(_rotate_and_add(ev, galois, acc, window, s))
    return EncryptedScalars(out, len(pairs))


def restrict(context: HeContext, v: EncryptedVector, weight: float) -> list:
    """weight * Re(v) with its padding slots forced to zero, one SEAL ciphertext a chunk: each chunk z
    becomes z + conj(z) (a Galois automorphism: twice the real part, since CKKS slots are complex and
    a client may encrypt imaginary parts, whose squares would subtract from a squared norm), times a
    plaintext that is weight / 2 on the chunk's first (d - chunk * slots) slots and 0 elsewhere, encoded
    at the scale of the prime the rescale drops (so the scale stays 2**scale_bits). A client that wrote
    values into the padding slots of its last chunk has them attenuated, not erased: CKKS encodes the
    mask's 0s as about 1e-10 (the encoding error at that scale), so a padding value V leaves about
    V * 1e-10 in its slot (huge padding values make the client's own norm fail, nothing else). A fresh encryption of zero is added
    first, so that no two inputs (one the negation or a copy of another) give a transparent difference: with the
    secret key a symmetric one (a fresh uniform a, error e: 2.6x cheaper than the public-key encryption, and its
    error is at most the public-key one's, so `fresh_error_bound` covers it), else a public-key one.
    One level; needs Galois keys and the secret or public key."""
    ts_ctx = context.tenseal
    sctx, s = ts_ctx.seal_context().data, context.params.slots
    ev, enc, galois = seal.Evaluator(sctx), seal.CKKSEncoder(sctx), ts_ctx.galois_keys().data
    if context.is_private:
        encryptor = seal.Encryptor(sctx, ts_ctx.secret_key().data)
        encrypt_zero = encryptor.encrypt_zero_symmetric
    else:
        encryptor = seal.Encryptor(sctx, ts_ctx.public_key().data)
        encrypt_zero = encryptor.encrypt_zero
    masks: dict[int, object] = {}  # by the chunk's count of data slots: every full chunk shares one encoding
    out = []
    for k, chunk in enumerate(v.chunks):
        src, ct, real = seal.Ciphertext(), seal.Ciphertext(), seal.Ciphertext()
        encrypt_zero(src)
        src.scale = chunk.ciphertext()[0].scale  # zero at any scale: SEAL leaves it at 1
        ev.add_inplace(src, chunk.ciphertext()[0])
        ev.complex_conjugate(src, galois, real)
        ev.add_inplace(real, src)
        used = min(s, v.length - k * s)
        if used not in masks:
            row = np.zeros(s)
            row[:used] = weight / 2
            masks[used] = seal.Plaintext()
            prime = sctx.get_context_data(src.parms_id()).parms().coeff_modulus()[-1].value()
            enc.encode(row.tolist(), src.parms_id(), float(prime), masks[used])
        mask = masks[used]
        ev.multiply_plain(real, mask, ct)
        ev.rescale_to_next_inplace(ct)
        out.append(ct)
    return out


def squared_distances(context: HeContext, raw: Sequence[list], pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """||a_i - a_j||**2 for each pair (i, j) and ||a_i||**2 for a pair (i, i), where a_i is the list of
    ciphertexts `raw[i]` (from `restrict`), decrypted after summing all slots homomorphically: the
    secret-key holder sees these values and nothing per coordinate. Needs depth >= 2 and Galois keys."""
    if not context.is_private or not context.has_galois_keys:
        raise ValueError("squared_distances needs the secret key and Galois keys")
    ts_ctx = context.tenseal
    sctx = ts_ctx.seal_context().data
    ev, enc = seal.Evaluator(sctx), seal.CKKSEncoder(sctx)
    decryptor = seal.Decryptor(sctx, ts_ctx.secret_key().data)
    relin, galois = ts_ctx.relin_keys().data, ts_ctx.galois_keys().data
    out = np.zeros(len(pairs))
    for p, (i, j) in enumerate(pairs):
        u = _rotate_and_add(ev, galois, _products(ev, relin, raw[i], raw[j], "inner_product" if i == j else "squared_distance"), 1, context.params.slots)
        plain = seal.Plaintext()
        decryptor.decrypt(u, plain)
        out[p] = float(np.mean(enc.decode_double(plain)))  # every slot holds the value: the mean averages their errors
    return out


def _products(ev, relin, a: list, b: list, kind: str):
    """sum_c a_c * b_c or (a_c - b_c)**2 as one degree-2 ciphertext, then relinearized and rescaled."""
    acc = None
    for x, y in zip(a, b):
        t = seal.Ciphertext()
        if kind == "squared_distance":
            ev.sub(x, y, t)
            ev.square_inplace(t)
        else:
            ev.multiply(x, y, t)
        if acc is None:
            acc = t
        else:
            ev.add_inplace(acc, t)
    ev.relinearize_inplace(acc, relin)
    ev.rescale_to_next_inplace(acc)
    return acc


def _rotate_and_add(ev, galois, u, first: int, end: int):
    """u <- u + rot(u, first) + rot(u, 2 first) ... up to steps < end: slot j becomes the sum of the end / first
    slots j, j + first, j + 2 first, ... (log2(end / first) rotations)."""
    step = first
    while step < end:
        r = seal.Ciphertext()
        ev.rotate_vector(u, step, galois, r)
        ev.add_inplace(u, r)
        step *= 2
    return u


def save_ciphertext(ct) -> bytes:
    """A SEAL ciphertext's own serialization (SEAL header, zstd)."""
    with tempfile.TemporaryDirectory(dir=_SCRATCH) as d:
        path = os.path.join(d, "ct")
        ct.save(path)
        with open(path, "rb") as f:
            return f.read()


def _load(sctx, data: bytes):
    ct = seal.Ciphertext()
    with tempfile.TemporaryDirectory(dir=_SCRATCH) as d:
        path = os.path.join(d, "ct")
        with open(path, "wb") as f:
            f.write(data)
        try:
            ct.load(sctx, path)
        except Exception as exc:  # SEAL's header, size and validity checks
            raise MalformedCiphertext(f"ciphertext does not parse: {type(exc).__name__}") from None
    return ct
