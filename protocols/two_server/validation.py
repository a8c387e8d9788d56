"""Input validation over shares: the servers check, without learning it, that a shared value X in Z_{2^64}
equals the recomposition of digits the client XOR-shared (edaBit conversion and a hash equality test).

Construction (the bit-decomposition range proof of Prio's validity circuits, with a dealer's edaBits
(Escudero et al., CRYPTO 2020) in place of a proof, and a hash comparison for the zero test):

    client:  X = x0 + x1, and planes of the b digits of U = X + 2^(b-1) (offset binary), P = P0 ^ P1,
             with x0, P0 from the seed it sends S0 (`secagg.bit_sharing`)
    dealer:  an edaBit r a value, a daBit a value, b layers of AND triples: a seed to S0, the rest to S1
    S0, S1:  add P + r with a ripple-carry circuit (b AND rounds), open the sum bits c (uniform), convert the
             carry-out t with the daBit; each then holds a share of Z = (c - r + 2^b t) - U
             (`secagg.edabits.from_sum`) and sends the other its digest of Z; valid iff the digests agree (Z = 0)

XOR shares always stand for bits, so Z = 0 proves U in [0, 2^b), i.e. X in the signed b-bit range;
a false acceptance needs a SHA-256 collision (soundness error ~2^-128 a client). The same check with
L = bit_length(B) digits of the slack s = B - ||x||^2 and target B - G_ii (the Gram diagonal share,
exact once the range holds and d 2^(2b) < 2^63) proves ||x||^2 <= B.

What the servers learn: everything they open (e, f of the AND gates, c, the daBit's masked carry, the
blinding's e) is uniform; then the digests. A protocol-following client always passes the range check
(Z = 0): one bit. A client that fails it deviated, and its residual Z (about shares it chose) can be tested
offline against candidates. The norm check has honest failures (an honest client over the bound sends the
slack mod 2^L, so Z = 2^L ceil((||x||^2 - B) / 2^L) takes few values): its digests are of r Z, r a dealer's
secret odd unit (`secagg.equality`), so a failure reveals at most v2(Z) = L + v2(ceil(...)) (searching
2^(63 - v2(Z)) hashes), nothing else about ||x||^2.
The dealer is trusted not to collude with either server (r and c give U).
"""

from __future__ import annotations

import numpy as np

from protocols.core.errors import BelowThreshold
from protocols.core.messages import Kind
from protocols.two_server.channel import S0, S1, Channel
from protocols.two_server.gates import PARTIES, digits_to_shares
from secagg.equality import DIGEST_BYTES, Blinding, blinded_share, blinding_from_seed, zero_digest
from secagg.randomness import Randomness


def check_digits(ch: Channel, digits: dict[int, np.ndarray], targets: dict[int, np.ndarray], d: int, dealer: Randomness,
                 context: bytes, constant: int = 0, blind: bool = False) -> np.ndarray:
    """Which of m clients' XOR-shared digits (m, bits, words(d)) recompose to the shared targets (m, d) plus the
    public `constant`. `blind`: compare digests of r Z (dealer's odd r, `secagg.equality`) instead of the residual
    Z, so that a failed check reveals at most the 2-adic valuations of Z (one more opening, 3 m d elements dealt).

    Returns a bool array (m,), the same at both servers.

    Raises:
        BelowThreshold: if the dealer's or a server's message did not arrive.
    """
    m = digits[S0].shape[0]
    shift = {S0: np.uint64(constant % 2**64), S1: np.uint64(0)}  # S0 subtracts the public constant
    row_digests: dict[int, list[bytes]] = {S0: [], S1: []}

    def digest(q: int, i: int, row: np.ndarray) -> None:
        np.subtract(row, targets[q][i], out=row)
        row -= shift[q]
        row_digests[q].append(zero_digest(0 if q == S0 else 1, row, context + i.to_bytes(4, "big")))

    if blind:
        residual = digits_to_shares(ch, digits, d, dealer)
        for q in (S0, S1):
            with ch.timer(q):
                residual[q] = residual[q] - targets[q] - shift[q]
        residual = _blinded(ch, residual, dealer)
        for q in (S0, S1):
            with ch.timer(q):
                for i in range(m):
                    row_digests[q].append(zero_digest(0 if q == S0 else 1, residual[q][i], context + i.to_bytes(4, "big")))
    else:  # each client's residual digested as it is converted: no (m, d) array
        digits_to_shares(ch, digits, d, dealer, each=digest)
    digests = {q: b"".join(row_digests[q]) for q in row_digests}
    size = m * DIGEST_BYTES
    theirs = {S0: ch.send(S1, S0, Kind.MATRIX, digests[S1], lambda r: (r.raw(size), r.done())[0]),
              S1: ch.send(S0, S1, Kind.MATRIX, digests[S0], lambda r: (r.raw(size), r.done())[0])}
    if theirs[S0] is None or theirs[S1] is None:
        raise BelowThreshold("a server's digests did not arrive", party="server", stage="validation")
    me = S1 if ch.here == S1 else S0  # each server compares its own digests with the other's
    with ch.timer(me):
        return np.array([digests[me][i * DIGEST_BYTES:(i + 1) * DIGEST_BYTES] == theirs[me][i * DIGEST_BYTES:(i + 1) * DIGEST_BYTES]
                         for i in range(m)], dtype=bool)


def _blinded(ch: Channel, z: dict[int, np.ndarray], dealer: Randomness) -> dict[int, np.ndarray]:
    """Shares of r z (m, d) from shares of z, r the dealer's secret odd units: opens e = z - a (uniform)."""
    shape = z[S0].shape
    ch.dealt["blinding_triples"] += int(np.prod(shape))
    s0, got = ch.deal("blinding", tuple(int(v) for v in shape), dealer)
    with ch.timer(S0):
        triple = {S0: blinding_from_seed(s0, shape)}
    triple[S1] = Blinding(*got)
    e = ch.exchange(Kind.MATRIX, {q: z[q] - triple[q].a for q in z}, shape)
    out = {}
    for q, idx in PARTIES:
        with ch.timer(q):
            out[q] = blinded_share(idx, e, triple[q])
    return out
