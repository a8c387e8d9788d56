"""A Byzantine client of the two-server protocol that picks its shares freely (a `tamper` hook).

Used by the protocol tests and by `fl.experiment` for Byzantine participants (`protocols.core.deviations`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from protocols.core.messages import Kind
from protocols.core.wire import Frame, decode_frame, encode_frame
from secagg.beaver import expand_share
from secagg.bit_sharing import offset, share_planes, to_planes
from secagg.int_gram import NARROW_BITS

BYZANTINE_SHARE_MODES = ("random", "wrapped", "scaled", "out-of-range", "over-norm", "forged-slack", "inconsistent", "replayed", "honest-copy",
                         "norm-wrap")
_INPUT, _DIGITS, _SLACK = b"input share", b"input digits", b"norm slack digits"  # the domains protocols.two_server expands seeds in


def _matrices(payload: bytes) -> list[np.ndarray]:
    """The uint64 matrices of a two-server payload, in order (the attacker's own parser of its own bytes)."""
    out, at = [], 0
    while at < len(payload):
        rows, cols = struct.unpack_from(">II", payload, at)
        out.append(np.frombuffer(payload, dtype="<u8", count=rows * cols, offset=at + 8).reshape(rows, cols).astype(np.uint64))
        at += 8 + 8 * rows * cols
    return out


def _encode(parts: list[np.ndarray]) -> bytes:
    return b"".join(struct.pack(">II", *p.shape) + np.ascontiguousarray(p, dtype="<u8").tobytes() for p in parts)


@dataclass
class ByzantineShares:
    """A Byzantine client of `protocols.two_server` that picks its shares freely (use `tamper` as the hook).

    It reads the seed it sends S0 (so it knows its S0 share x0) and rewrites what it sends S1: the explicit
    share, the digit planes and the norm-slack planes. Modes (BYZANTINE_SHARE_MODES), X the value the
    servers' shares stand for, p the client's honest lifted input, j = (position & 255) % d:
    "random" (every S1 share uniform), "wrapped" (X = p + 2^k e_j, k = bits + (position >> 8) % (63 - bits),
    the digits of p kept),
    "scaled" (X = s p, s >= 2, digits of X mod 2^b), "out-of-range" (X_j = 2^(b-1) + t, digits of X mod 2^b),
    "over-norm" (every coordinate -2^(b-1), its digits, and slack bits of (B - ||X||^2) mod 2^L),
    "norm-wrap" (over-norm's X, with slack bits of (B - (||X||^2 mod 2^44)) mod 2^L: its norm passed off as its residue
    in Z_2^44, the ring of narrow distances, `secagg.int_gram.NARROW_BITS`),
    "forged-slack" (X = p, slack bits drawn at random), "inconsistent" (S0 gets another seed than the
    one S1's share was made with), "replayed" (S1 gets `victim`'s S1 payload, S0 this client's seed),
    "honest-copy" (both of `victim`'s messages: a valid duplicate of an honest input).
    `bound` is the protocol's B (ring units squared), `bits` its b (read from the digit planes when sent); `effective` records X; `frames` every client's payloads
    (the victim must send before the attacker).
    """

    client: int
    mode: str
    position: int
    victim: int = 0
    bound: int = 0
    bits: int = 32
    effective: np.ndarray | None = None
    frames: dict | None = None
    seed: bytes | None = None

    def __post_init__(self) -> None:
        if self.mode not in BYZANTINE_SHARE_MODES:
            raise ValueError(f"mode must be one of {BYZANTINE_SHARE_MODES}, found {self.mode!r}")
        self.frames = {}

    def tamper(self, src: int, dst: int, frame: bytes) -> list[bytes]:
        if len(frame) <= 3 or frame[3] not in (Kind.SHARE_SEED, Kind.SHARE_VECTOR):
            return [frame]
        f = decode_frame(frame, party="test", stage="test")
        self.frames[(src, f.kind)] = f.payload
        if src != self.client:
            return [frame]
        if f.kind == Kind.SHARE_SEED:
            self.seed = f.payload
            if self.mode == "inconsistent":
                payload = bytes(b ^ 0x5A for b in f.payload)
            elif self.mode == "honest-copy":
                payload = self.seed = self.frames[(self.victim, Kind.SHARE_SEED)]
            else:
                return [frame]
        else:
            payload = self._rewrite(f.payload)
        return [encode_frame(Frame(f.kind, f.session, src, dst, payload))]

    def _rewrite(self, payload: bytes) -> bytes:
        parts = _matrices(payload)
        d = parts[0].shape[1]
        x0 = expand_share(self.seed, (d,), _INPUT)
        honest = x0 + parts[0][0]
        if self.mode in ("replayed", "honest-copy"):
            parts = _matrices(self.frames[(self.victim, Kind.SHARE_VECTOR)])
            self.effective = x0 + parts[0][0]
            return _encode(parts)
        if self.mode == "inconsistent":
            self.effective = expand_share(bytes(b ^ 0x5A for b in self.seed), (d,), _INPUT) + parts[0][0]
            return payload
        rng = np.random.default_rng(self.position)
        if self.mode == "random":
            parts = [rng.integers(0, 2**64, p.shape, dtype=np.uint64) for p in parts]
            self.effective = x0 + parts[0][0]
            return _encode(parts)
        bits = parts[1].shape[0] if len(parts) > 1 else self.bits
        top, j = 1 << (bits - 1), (self.position & 0xFF) % d
        target, digits_of = honest.copy(), None
        if self.mode == "wrapped":
            target[j : j + 1] += np.uint64(1 << (bits + (self.position >> 8) % (63 - bits)))
            digits_of = honest
        elif self.mode == "scaled":
            target = honest * np.uint64(2 + self.position % 2**20)
        elif self.mode == "out-of-range":
            target[j] = np.uint64(top + self.position % top)
        elif self.mode in ("over-norm", "norm-wrap"):
            target = np.full(d, -top, dtype=np.int64).view(np.uint64)
        self.effective = target
        out = [(target - x0)[None, :]]
        if len(parts) > 1:
            out.append(share_planes(to_planes(offset(target if digits_of is None else digits_of, bits), bits), self.seed, _DIGITS))
        if len(parts) > 2:
            if self.mode == "forged-slack":
                out.append(rng.integers(0, 2**64, parts[2].shape, dtype=np.uint64))
            else:
                norm = sum(v * v for v in target.view(np.int64).tolist())
                s = (self.bound - (norm % 2**NARROW_BITS if self.mode == "norm-wrap" else norm)) % 2**64
                out.append(share_planes(to_planes(np.array([s], dtype=np.uint64), parts[2].shape[0]), self.seed, _SLACK))
        return _encode(out)
