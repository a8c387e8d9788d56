"""Robust aggregation over additive shares held by two non-colluding servers S0 and S1.

    client i:  x_i in Z_{2^bits} (signed), lifted to Z_{2^64}; sends a 32-byte seed to S0 and
               x_i - PRG(seed) to S1                                  (upload: 8 d + 32 bytes)
    S0 <-> S1: agree on the clients both heard from (m of them)
    dealer:    a Gram triple for (m, d): a seed to S0, (A_1, C_1) to S1
    S0 <-> S1: open E = X - A; each computes its share of G = X X^T; open the squared distances
               D_ij = G_ii + G_jj - 2 G_ij (and, for clipping rules, the norms ||x_i - v||**2)
    both:      run the rule on what was opened; S1 sends S0 its share of the result
      krum / multi_krum:         the sum of the selected inputs (exact in the ring)
      centered_clipping (L iterations from v = 0) / norm_bounding (L = 1): m v_L with
                                 m v_{l+1} = sum_i w_i x_i + (m - sum_i w_i) v_l, w_i = min(1, tau / ||x_i - v_l||),
                                 the public weights applied as round(w_i 2**k) and the shares truncated by 2**k

The result is a sum over `Output.included` (the selected clients for Krum rules, all m otherwise),
with `Output.weights` the weight each included input has in it, so an outer noise layer counts the
noise that reached the output. Coordinate-wise median and trimmed mean need secure comparison of
shares, which this module does not implement (see benchmarks/README.md for the estimate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.driver import CostMeter
from protocols.errors import BelowThreshold, MalformedMessage
from protocols.masking_messages import Kind
from protocols.protocol import RingProtocol
from protocols.report import Guarantee, LayerReport, Output, ThreatModel
from protocols.robust.robustness import kappa, lower_bound
from protocols.robust.rules import clipping_weights, krum_select
from protocols.schedule import DropoutSchedule, Stage
from protocols.transport import InProcessTransport
from protocols.wire import DEALER, SECOND_SERVER, SERVER, Frame, Reader, Writer, decode_frame, encode_frame, party_name
from secagg.beaver import deal_gram, expand_share, gram_share, lift_signed, share_with_seed, to_signed, triple_from_seed, truncate
from secagg.prg import SEED_BYTES
from secagg.randomness import Randomness
from secagg.ring import Ring

RULES = ("krum", "multi_krum", "centered_clipping", "norm_bounding")
S0, S1 = SERVER, SECOND_SERVER
TRUNCATION_BITS = 12


def _matrix(a: np.ndarray) -> bytes:
    return Writer().u32(a.shape[0]).u32(a.shape[1]).raw(np.ascontiguousarray(a, dtype="<u8").tobytes()).getvalue()


def _parse_matrix(r: Reader, shape: tuple[int, int]) -> np.ndarray:
    if (r.u32(), r.u32()) != shape:
        raise r.fail(f"matrix is not {shape}")
    out = np.frombuffer(r.raw(8 * shape[0] * shape[1]), dtype="<u8").reshape(shape).astype(np.uint64)
    r.done()
    return out


@dataclass
class _Channel:
    """Frames between the parties of one round, metered per party."""

    transport: InProcessTransport
    meter: CostMeter
    session: bytes

    def timer(self, party: int):
        if party == S0:
            return self.meter.server()
        if party in (S1, DEALER):
            return self.meter.party(party_name(party))
        return self.meter.client(party)

    def send(self, src: int, dst: int, kind: Kind, payload: bytes, parse) -> object | None:
        """Carries one frame; the receiver (timed) parses it with `parse(reader)`. None if nothing authentic arrived."""
        for arriving in self.transport.carry(src, dst, encode_frame(Frame(kind, self.session, src, dst, payload))):
            with self.timer(dst):
                frame = decode_frame(arriving, party=party_name(dst), stage="two-server")
                if frame.kind != kind or frame.session != self.session or frame.sender != src:
                    raise MalformedMessage("unexpected frame", party=party_name(dst), stage="two-server")
                return parse(Reader(frame.payload, party=party_name(dst), stage="two-server"))
        return None

    def exchange(self, kind: Kind, mine: dict[int, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
        """Both servers open their shares to each other; returns the opened sum."""
        got0 = self.send(S1, S0, kind, _matrix(mine[S1]), lambda r: _parse_matrix(r, shape))
        got1 = self.send(S0, S1, kind, _matrix(mine[S0]), lambda r: _parse_matrix(r, shape))
        if got0 is None or got1 is None:
            raise BelowThreshold("a server's share did not arrive", party="server", stage="open")
        with self.timer(S0):
            return mine[S0] + got0


@dataclass
class TwoServerRobust(RingProtocol):
    """`rule` over the inputs secret-shared between two servers, tolerating f Byzantine clients.

    `m`: how many inputs Multi-Krum averages (default m - f). `tau`: clipping radius in the ring's
    integer units (centered clipping, norm bounding). `iterations`: centered-clipping iterations.
    """

    rule: str = "multi_krum"
    f: int = 1
    bits: int = 32
    m: int | None = None
    tau: float = 1.0
    iterations: int = 1
    name: str = "two-server"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r} over shares; known: {RULES} (coordinate-wise rules need secure comparison)")
        if self.f < 0 or not self.tau > 0 or self.iterations < 1 or not 1 <= self.bits <= 64:
            raise ValueError(f"need f >= 0, tau > 0, iterations >= 1, 1 <= bits <= 64; found {self.f}, {self.tau}, {self.iterations}, {self.bits}")
        if self.rule == "norm_bounding":
            self.iterations = 1

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        n, d = self.check_inputs(inputs)
        if d << (2 * self.bits) >= 1 << 63:  # ||x_i - x_j||**2 < d 2**(2 bits), even for Byzantine inputs
            raise ValueError(f"d * 2**(2 bits) must stay below 2**63 for distances exact in Z_2^64; found d={d}, bits={self.bits}")
        meter = CostMeter(n)
        ch = _Channel(transport, meter, rng.bytes(8))
        seeds, shares = self._collect(inputs, n, d, dropouts, rng, ch)
        included = np.array(sorted(set(seeds) & set(shares)), dtype=np.int64)
        ids_shape = (1, len(included))
        agreed = ch.send(S0, S1, Kind.MATRIX, _matrix(included.astype(np.uint64).reshape(ids_shape)), lambda r: _parse_matrix(r, ids_shape))
        m = len(included)
        if agreed is None or m <= 2 * self.f:
            raise BelowThreshold(f"{m} inputs reached both servers, the rule needs > 2f = {2 * self.f}", party="server", stage="share")
        with meter.server():
            x = {S0: np.stack([expand_share(seeds[u], (d,), b"input share") for u in included])}
        with meter.party("second server"):
            x[S1] = np.stack([shares[u] for u in included])
        triple = self._deal(m, d, rng, ch)
        opened_e = ch.exchange(Kind.MATRIX, {p: x[p] - triple[p].a for p in (S0, S1)}, (m, d))
        gram = {}
        for p, idx in ((S0, 0), (S1, 1)):
            with ch.timer(p):
                gram[p] = gram_share(idx, opened_e, triple[p])
        if self.rule in ("krum", "multi_krum"):
            dist = {}
            for p in (S0, S1):
                with ch.timer(p):
                    diag = np.diagonal(gram[p])
                    dist[p] = diag[:, None] + diag[None, :] - np.uint64(2) * gram[p]
            distances = to_signed(ch.exchange(Kind.MATRIX, dist, (m, m))).astype(np.float64)
            with meter.server():
                chosen = krum_select(distances, self.f, 1 if self.rule == "krum" else self.m)
                result_share = {S0: x[S0][chosen].sum(axis=0)}
            with meter.party("second server"):
                result_share[S1] = x[S1][chosen].sum(axis=0)
            weights, error = np.ones(len(chosen)), 0.0
            leak = "the pairwise squared distances of the m inputs, the selected set and the sum of the selected inputs"
        else:
            chosen, weights, result_share, error = self._clip(x, gram, m, d, ch)
            leak = (f"the squared norms ||x_i - v_l||**2 of every input at each of {self.iterations} iteration(s), the clipping weights, "
                    "the intermediate iterates v_1..v_(L-1) and the result")
        other = ch.send(S1, S0, Kind.MATRIX, _matrix(result_share[S1][None, :]), lambda r: _parse_matrix(r, (1, d)))
        if other is None:
            raise BelowThreshold("the second server's result share did not arrive", party="server", stage="reconstruct")
        with meter.server():
            ring = Ring(self.bits)
            result = ring.reduce((result_share[S0] + other[0]).astype(ring.dtype))
        selected = tuple(int(included[i]) for i in chosen)
        report = LayerReport(self.name, meter.cost(transport, rounds=1), self._guarantee(n, d, m, leak, len(selected), error))
        return Output(result, selected, (report,), tuple(transport.rejected), weights=tuple(float(w) for w in weights))

    def _collect(self, inputs, n, d, dropouts, rng, ch):
        """Clients split their lifted inputs: a seed to S0, the explicit share to S1."""
        seeds, shares = {}, {}
        for u in range(n):
            if not dropouts.active(u, Stage.MASKED_INPUT):
                continue
            with ch.timer(u):
                seed = rng.fork(f"client {u} share").bytes(SEED_BYTES)
                explicit = share_with_seed(lift_signed(inputs[u], self.bits), seed, b"input share")
            got = ch.send(u, S0, Kind.SHARE_SEED, Writer().raw(seed).getvalue(), lambda r: (r.raw(SEED_BYTES), r.done())[0])
            if got is not None:
                seeds[u] = got
            got = ch.send(u, S1, Kind.SHARE_VECTOR, _matrix(explicit[None, :]), lambda r: _parse_matrix(r, (1, d))[0])
            if got is not None:
                shares[u] = got
        return seeds, shares

    def _deal(self, m, d, rng, ch):
        """The dealer draws a Gram triple; S0 gets its seed, S1 gets (A_1, C_1) explicitly."""
        with ch.timer(DEALER):
            dealer = rng.fork("dealer")
            seed = dealer.bytes(SEED_BYTES)
            _, t1 = deal_gram(m, d, dealer, seed)
        got = ch.send(DEALER, S0, Kind.MATRIX, Writer().raw(seed).getvalue(), lambda r: (r.raw(SEED_BYTES), r.done())[0])
        a1 = ch.send(DEALER, S1, Kind.MATRIX, _matrix(t1.a), lambda r: _parse_matrix(r, (m, d)))
        c1 = ch.send(DEALER, S1, Kind.MATRIX, _matrix(t1.c), lambda r: _parse_matrix(r, (m, m)))
        if got is None or a1 is None or c1 is None:
            raise BelowThreshold("the dealer's triple did not arrive", party="server", stage="triple")
        with ch.timer(S0):
            t0 = triple_from_seed(got, m, d)
        t1.a, t1.c = a1, c1
        return {S0: t0, S1: t1}

    def _clip(self, x, gram, m, d, ch):
        """Centered clipping from v = 0 on shares; returns (all indices, last weights, result shares of m v_L,
        an L2 bound on the result's error in integer units)."""
        v = np.zeros(d, dtype=np.int64)  # public iterate, integer units
        scale = np.uint64(1 << TRUNCATION_BITS)
        error = 0.0
        for it in range(self.iterations):
            sq = {}
            for p, idx in ((S0, 0), (S1, 1)):
                with ch.timer(p):
                    cross = x[p] @ v.astype(np.uint64)  # <x_i, v> shares
                    sq[p] = np.diagonal(gram[p]) - np.uint64(2) * cross + (np.uint64(int(v @ v) % 2**64) if idx == 0 else np.uint64(0))
            norms = to_signed(ch.exchange(Kind.MATRIX, {p: sq[p][None, :] for p in sq}, (1, m))[0]).astype(np.float64)
            w = clipping_weights(norms, self.tau)
            fixed = np.round(w * float(scale)).astype(np.uint64)
            # error of m v_(it+1), L2 (the map v -> v + mean_i clip(x_i - v) is 1-Lipschitz, so errors add):
            # +-1 a coordinate from truncation, the weights' rounding times ||x_i - v||, v rounded to integers
            error += np.sqrt(d) + float(np.abs(w - fixed / float(scale)) @ np.sqrt(np.maximum(norms, 0)))
            if it + 1 < self.iterations:
                error += m * 0.5 * np.sqrt(d)
            out = {}
            for p, idx in ((S0, 0), (S1, 1)):
                with ch.timer(p):
                    out[p] = truncate(fixed @ x[p], TRUNCATION_BITS, idx)
                    if idx == 0:
                        out[p] = out[p] + np.round((m - w.sum()) * v).astype(np.int64).astype(np.uint64)
            if it + 1 < self.iterations:
                total = to_signed(ch.exchange(Kind.MATRIX, {p: out[p][None, :] for p in out}, (1, d))[0])
                v = np.round(total / m).astype(np.int64)
        return np.arange(m), w, out, error

    def _guarantee(self, n: int, d: int, m: int, leak: str, selected: int, error: float) -> Guarantee:
        exact = self.rule in ("krum", "multi_krum")
        coefficient = kappa(self.rule, m, self.f) if self.rule in ("krum",) else None
        value_bits = max(1, (m - 1).bit_length()) + TRUNCATION_BITS + self.bits
        params = {"n": n, "d": d, "m": m, "rule": self.rule, "f": self.f, "bits": self.bits, "selected": selected,
                  "kappa": "unknown" if coefficient is None else round(coefficient, 4), "kappa_lower_bound": round(lower_bound(m, self.f), 4),
                  "triples": 1, "triple_elements": m * d + m * m}
        if not exact:
            params.update(tau=self.tau, iterations=self.iterations, truncation_bits=TRUNCATION_BITS,
                          truncation_failure_probability=min(1.0, d * 2.0 ** (value_bits + 1 - 64)))
        return Guarantee(
            threat_model=ThreatModel.HONEST_BUT_CURIOUS_SERVER,
            server_learns=f"S0 and S1 learn {leak}; each server's shares alone are uniform; the dealer learns m and d only",
            collusion="S0 and S1 must not collude, nor the dealer with either server (A and E give X); any number of clients",
            dropout_tolerance=max(n - 2 * self.f - 1, 0),
            exact=exact,
            numeric_error=error,
            parameters=params,
            notes="triples from a third-party dealer (trusted not to collude); one Gram triple a round. "
            "An outer DP noise layer accounts for the output only (the noise of the inputs that reached it whole); "
            "the opened distances, norms and selection are computed from noised inputs but no DP analysis here covers them. "
            + ("" if exact else "numeric error: an L2 bound (integer units) on the result's error, from the values opened this round: "
               "per iteration sqrt(d) for truncation, sum_i |w_i - round(w_i 2^k)/2^k| ||x_i - v||, and m sqrt(d)/2 for the "
               "iterate rounded to integers (errors add: each iteration is 1-Lipschitz in v); truncation fails (wraps) with the stated probability"),
        )
