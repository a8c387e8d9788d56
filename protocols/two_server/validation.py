"""Input validation over shares: the servers check, without learning it, that a shared value X in Z_{2^64}
equals the recomposition of digits the client XOR-shared (daBit conversion and a hash equality test).

Construction (the bit-decomposition range proof of Prio's validity circuits, with the dealer's daBits of
Rotaru and Wood in place of a proof, and a hash comparison for the zero test):

    client:  X = x0 + x1, and planes of the b digits of U = X + 2^(b-1) (offset binary), P = P0 ^ P1,
             with x0, P0 from the seed it sends S0 (`secagg.bit_sharing`)
    dealer:  daBits for every digit (`secagg.dabits`): a seed to S0, (r1, [r]_1) to S1
    S0, S1:  open c = P ^ r; each computes its share of Z = sum_k 2^k v_k - U (`secagg.dabits.recompose`)
             and sends the other its digest of Z; the input is valid iff the digests agree (Z = 0)

XOR shares always stand for bits, so Z = 0 proves U in [0, 2^b), i.e. X in the signed b-bit range;
a false acceptance needs a SHA-256 collision (soundness error ~2^-128 a client). The same check with
L = bit_length(B) digits of the slack s = B - ||x||^2 and target B - G_ii (the Gram diagonal share,
exact once the range holds and d 2^(2b) < 2^63) proves ||x||^2 <= B. The servers learn the valid bit
of each client; c is uniform. The dealer is trusted not to collude with either server (r and c give P).
"""

from __future__ import annotations

import numpy as np

from protocols.masking_messages import Kind
from protocols.errors import BelowThreshold
from protocols.two_server.channel import S0, S1, Channel, encode_matrix, parse_matrix, read_matrix
from protocols.wire import DEALER, Writer
from secagg.dabits import dabits_from_seed, deal_dabits, recompose
from secagg.equality import DIGEST_BYTES, zero_digest
from secagg.prg import SEED_BYTES
from secagg.randomness import Randomness


def check_digits(ch: Channel, digits: dict[int, np.ndarray], targets: dict[int, np.ndarray], d: int, dealer: Randomness,
                 context: bytes) -> np.ndarray:
    """Which of m clients' XOR-shared digits (m, bits, words(d)) recompose to the shared targets (m, d).

    Returns a bool array (m,), the same at both servers.

    Raises:
        BelowThreshold: if the dealer's or a server's message did not arrive.
    """
    m, bits, w = digits[S0].shape
    flat = (m * bits, w)
    with ch.timer(DEALER):
        seed = dealer.bytes(SEED_BYTES)
        _, t1 = deal_dabits((m, bits), d, dealer, seed)
        payload = {S0: Writer().raw(seed).getvalue(), S1: encode_matrix(t1.planes.reshape(flat)) + encode_matrix(t1.arith.reshape(m * bits, d))}

    def parse1(r):
        planes = read_matrix(r, flat).reshape(m, bits, w)
        return planes, parse_matrix(r, (m * bits, d)).reshape(m, bits, d)

    got = ch.to_both(DEALER, payload, {S0: lambda r: (r.raw(SEED_BYTES), r.done())[0], S1: parse1}, "daBits")
    with ch.timer(S0):
        dab = {S0: dabits_from_seed(got[S0], (m, bits), d)}
    dab[S1] = t1
    dab[S1].planes, dab[S1].arith = got[S1]
    opened = ch.exchange(Kind.MATRIX, {p: (digits[p] ^ dab[p].planes).reshape(flat) for p in (S0, S1)}, flat, np.bitwise_xor).reshape(m, bits, w)
    digests = {}
    for p, idx in ((S0, 0), (S1, 1)):
        with ch.timer(p):
            z = recompose(idx, opened, dab[p], d) - targets[p]
            digests[p] = b"".join(zero_digest(idx, z[i], context + i.to_bytes(4, "big")) for i in range(m))
    size = m * DIGEST_BYTES
    theirs = {S0: ch.send(S1, S0, Kind.MATRIX, digests[S1], lambda r: (r.raw(size), r.done())[0]),
              S1: ch.send(S0, S1, Kind.MATRIX, digests[S0], lambda r: (r.raw(size), r.done())[0])}
    if theirs[S0] is None or theirs[S1] is None:
        raise BelowThreshold("a server's digests did not arrive", party="server", stage="validation")
    with ch.timer(S0):
        return np.array([digests[S0][i * DIGEST_BYTES:(i + 1) * DIGEST_BYTES] == theirs[S0][i * DIGEST_BYTES:(i + 1) * DIGEST_BYTES]
                         for i in range(m)], dtype=bool)
