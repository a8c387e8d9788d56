"""The dealer's correlated randomness, one batch a request: S0 gets a 32-byte seed its share expands from,
S1 its share explicitly, as uint64 matrices (2-D, in the order `parts` lists them).

| kind | args | S1's matrices |
|---|---|---|
| gram | (m, d) | A_1 (m, d), C_1 (m, m) (`secagg.beaver`) |
| norms | (m, d) | A_1 (m, d), c_1 (m, 1) (`secagg.norm_triple`) |
| and | (layers, ..., words) | a, b, c, each (prod of all but the last, words) (`secagg.boolean`) |
| blinding | (rows, cols) | a, r, c (rows, cols) (`secagg.equality`) |
| digits | (m, bits, words, d) | edaBit planes (m bits, words) and values (m, d), daBit planes (m, words) and values (m, d), AND triples a, b, c (bits m, words) |

A request names only shapes, so the dealer learns m and d (and the rule's circuit sizes), nothing else.
S1's part travels as a frame of kind `message(kind)` (sealed to S1 under it, `protocols.two_server.sealing`): a norm
triple's own (Kind.NORM_TRIPLE), every other batch's Kind.MATRIX, so a Gram triple's part, whose shapes equal a norm
triple's at m = 1, never opens as one.
"""

from __future__ import annotations

import numpy as np

from protocols.core.messages import Kind
from secagg.beaver import deal_gram
from secagg.boolean import deal_and_triples
from secagg.dabits import deal_dabits
from secagg.edabits import deal_edabits
from secagg.equality import deal_blinding
from secagg.norm_triple import deal_norms
from secagg.prg import SEED_BYTES, derive
from secagg.randomness import Randomness

KINDS = ("gram", "norms", "and", "blinding", "digits")
MAX_ELEMENTS = 1 << 28  # a request for more uint64 elements than this (2 GiB) is refused


def parts(kind: str, args: tuple[int, ...]) -> list[tuple[int, int]]:
    """The shapes of S1's matrices for a request (see the module table).

    Raises:
        ValueError: for an unknown kind, arguments of the wrong count, non-positive or too large (MAX_ELEMENTS).
    """
    arity = {"gram": 2, "norms": 2, "blinding": 2, "digits": 4}.get(kind)
    if kind not in KINDS or (arity is not None and len(args) != arity) or (kind == "and" and len(args) < 2):
        raise ValueError(f"unknown dealer request {kind!r} with args {args!r}; known kinds: {KINDS}")
    if not all(isinstance(a, int) and 1 <= a <= MAX_ELEMENTS for a in args):
        raise ValueError(f"dealer request {kind!r}: every argument must be an integer in [1, {MAX_ELEMENTS}], found {args!r}")
    if kind == "gram":
        m, d = args
        shapes = [(m, d), (m, m)]
    elif kind == "norms":
        m, d = args
        shapes = [(m, d), (m, 1)]
    elif kind == "and":
        shapes = [(int(np.prod(args[:-1])), args[-1])] * 3
    elif kind == "blinding":
        shapes = [tuple(args)] * 3
    else:
        m, bits, w, d = args
        shapes = [(m * bits, w), (m, d), (m, w), (m, d)] + [(bits * m, w)] * 3
    if sum(r * c for r, c in shapes) > MAX_ELEMENTS:
        raise ValueError(f"dealer request {kind!r} {args!r} asks for more than {MAX_ELEMENTS} elements")
    return shapes


def message(kind: str) -> Kind:
    """The message kind S1's part of a `kind` batch travels (and is sealed) under."""
    return Kind.NORM_TRIPLE if kind == "norms" else Kind.MATRIX


def deal(kind: str, args: tuple[int, ...], rng: Randomness) -> tuple[bytes, list[np.ndarray]]:
    """One batch: (S0's seed, S1's matrices), drawn from `rng` (the dealer's own; the OS CSPRNG outside simulations).

    Raises:
        ValueError: as `parts`.
    """
    shapes = parts(kind, args)
    seed = rng.bytes(SEED_BYTES)
    if kind == "gram":
        _, t1 = deal_gram(*args, rng, seed)
        out = [t1.a, t1.c]
    elif kind == "norms":
        _, t1 = deal_norms(*args, rng, seed)
        out = [t1.a, t1.c]
    elif kind == "and":
        _, t1 = deal_and_triples(tuple(args), rng, seed)
        out = [t1.a, t1.b, t1.c]
    elif kind == "blinding":
        _, t1 = deal_blinding(tuple(args), rng, seed)
        out = [t1.a, t1.r, t1.c]
    else:
        m, bits, w, d = args
        _, e1 = deal_edabits((m,), bits, d, rng, derive(seed, b"edabits"))
        _, b1 = deal_dabits((m, 1), d, rng, derive(seed, b"dabits"))
        _, a1 = deal_and_triples((bits, m, w), rng, derive(seed, b"and triples"))
        out = [e1.planes, e1.arith, b1.planes, b1.arith, a1.a, a1.b, a1.c]
    return seed, [a.reshape(s) for a, s in zip(out, shapes)]
