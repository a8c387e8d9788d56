"""Robust aggregation over additive shares held by two non-colluding servers S0 and S1, with the clients'
inputs validated over the shares before anything about them is opened.

    client i:  x_i in Z_{2^bits} (signed), lifted to X_i in Z_{2^64}; sends a 32-byte seed to S0 and to S1
               X_i - PRG(seed), the XOR share of the bits digits of X_i + 2^(bits-1) and, with a norm bound B,
               of the slack B - ||x_i||**2          (upload: 8 d + 32 bytes, + bits d / 8 and 8 L when validated)
    S0 <-> S1: agree on the clients both heard from; validate the range with the dealer's edaBits, daBits and
               AND triples (`protocols.two_server.validation`) and drop the clients that fail (m remain)
    dealer:    a Gram triple for (m, d): a seed to S0, (A_1, C_1) to S1
    S0 <-> S1: open E = X - A (S0 sends X_0 - A_0, S1 sends X_1 - A_1); S0's share of G = X X^T is
               C_0 + (X - A_1)(X - A_1)^T, one symmetric exact product, S1's C_1 + E A_1^T + A_1 E^T
               (`secagg.beaver`, C = A A^T - A_0 A_0^T); validate ||x_i||**2 <= B against the
               Gram diagonal (residual blinded by a dealer's secret odd unit: a failure shows its 2-adic valuation
               at most); open the squared distances D_ij = G_ii + G_jj - 2 G_ij (and, for clipping rules,
               the norms ||x_i - v||**2)
    both:      run the rule on what was opened; S1 sends S0 its share of the result
      krum / multi_krum:         the sum of the selected inputs (exact in the ring)
      centered_clipping (L iterations from v = 0) / norm_bounding (L = 1): m v_L with
                                 m v_{l+1} = sum_i w_i x_i + (m - sum_i w_i) v_l, w_i = min(1, tau / ||x_i - v_l||),
                                 the public weights applied as round(w_i 2**k) and the shares truncated by 2**k

The result is a sum over `Output.included` (the selected clients for Krum rules, all m otherwise),
with `Output.weights` the weight each included input has in it, so an outer noise layer counts the
noise that reached the output. A client whose shares fail validation is named in `Output.rejected`
(`InvalidInput`); with `validate=False` nothing is checked and a Byzantine client's shares can wrap
every distance (kept for measuring what validation costs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from protocols.core.driver import CostMeter
from protocols.core.errors import BelowThreshold, InvalidInput, MalformedMessage
from protocols.core.messages import Kind
from protocols.core.protocol import RingProtocol
from protocols.core.report import Guarantee, LayerReport, Output, ThreatModel
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.stack import Field, StackContext, Traits, register
from protocols.core.transport import InProcessTransport
from protocols.core.wire import DEALER, Writer
from protocols.robust.preaggregators import nnm_neighbours
from protocols.robust.robustness import kappa, lower_bound, nnm_kappa
from protocols.robust.rules import krum_select
from protocols.two_server.channel import S0, S1, Channel, encode_matrix, encode_share, parse_matrix, parse_share
from protocols.two_server.clipping import TRUNCATION_BITS, clip_on_shares
from protocols.two_server.gates import digits_to_shares
from protocols.two_server.order import kept_positions, sort_columns
from protocols.two_server.validation import check_digits
from secagg.beaver import SeededGramTriple, deal_gram, expand_rows, gram_share, lift_signed, share_with_seed, to_signed
from secagg.bit_sharing import offset, share_planes, to_planes, words
from secagg.prg import SEED_BYTES
from secagg.randomness import Randomness
from secagg.ring import Ring

ORDER_RULES = ("coordinate_median", "trimmed_mean")
RULES = ("krum", "multi_krum", "centered_clipping", "norm_bounding") + ORDER_RULES
SOUNDNESS = "2^-128"  # a false acceptance needs a SHA-256 collision
DIGITS, SLACK = b"input digits", b"norm slack digits"


def _row_sum(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """x[rows].sum(axis=0) mod 2**64 without the (len(rows), d) copy."""
    out = np.zeros(x.shape[1], dtype=np.uint64)
    for i in rows:
        out += x[i]
    return out


@dataclass
class TwoServerRobust(RingProtocol):
    """`rule` over the inputs secret-shared between two servers, tolerating f Byzantine clients.

    `m`: how many inputs Multi-Krum averages (default m - f). `tau`: clipping radius in the ring's
    integer units (centered clipping, norm bounding). `iterations`: centered-clipping iterations.
    `norm_bound`: public L2 bound on every input (ring units), checked over the shares; None: only the
    range, which bounds ||x||**2 by d 2**(2 bits - 2). `validate`: check ranges and norms (default).
    `pre="nnm"`: nearest-neighbour mixing on the shares before the rule (`_nnm`).
    """

    rule: str = "multi_krum"
    f: int = 1
    bits: int = 32
    m: int | None = None
    tau: float = 1.0
    iterations: int = 1
    norm_bound: float | None = None
    validate: bool = True
    pre: str | None = None
    name: str = "two-server"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r} over shares; known: {RULES}")
        if self.m is not None and self.m < 1:
            raise ValueError(f"m (inputs Multi-Krum averages) must be >= 1, found {self.m}")
        if self.f < 0 or not self.tau > 0 or self.iterations < 1 or not 1 <= self.bits <= 64:
            raise ValueError(f"need f >= 0, tau > 0, iterations >= 1, 1 <= bits <= 64; found {self.f}, {self.tau}, {self.iterations}, {self.bits}")
        if self.norm_bound is not None and not 0 <= self.norm_bound < 2**31.5:
            raise ValueError(f"norm_bound must be in [0, 2**31.5) ring units (its square below 2**63), found {self.norm_bound}")
        if self.pre not in (None, "nnm"):
            raise ValueError(f"pre over shares must be None or 'nnm', found {self.pre!r}")
        if self.rule in ORDER_RULES and (not self.validate or self.pre is not None):
            raise ValueError(f"{self.rule} over shares sorts the validated digits: it needs validate=True and pre=None, "
                             f"found validate={self.validate}, pre={self.pre!r}")
        if self.rule == "norm_bounding":
            self.iterations = 1

    @property
    def squared_bound(self) -> int | None:
        """B = floor(norm_bound**2) computed exactly (a float square rounds up above 2**53), the bound on ||x||**2
        the servers check (ring units squared)."""
        return None if self.norm_bound is None else math.floor(Fraction(self.norm_bound) ** 2)

    def _slack_bits(self) -> int | None:
        return None if self.squared_bound is None or not self.validate else max(1, self.squared_bound.bit_length())

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        n, d = self.check_inputs(inputs)
        if d << (2 * self.bits) >= 1 << 63:  # ||x_i - x_j||**2 < d 2**(2 bits) once the range is validated
            raise ValueError(f"d * 2**(2 bits) must stay below 2**63 for distances exact in Z_2^64; found d={d}, bits={self.bits}")
        if self.pre == "nnm" and (d * n * n) << (2 * self.bits) >= 1 << 63:  # NNM rows are sums of up to n inputs
            raise ValueError(f"with pre='nnm', d n**2 2**(2 bits) must stay below 2**63; found d={d}, n={n}, bits={self.bits}")
        meter = CostMeter(n)
        meter.stage = "share"  # the stages of Cost.*_seconds_by_stage: share, range check, gram, norm check, rule
        ch = Channel(transport, meter, rng.bytes(8))
        seeds, shares, rejected = self._collect(inputs, n, d, dropouts, rng, ch)
        included = np.array(sorted(set(seeds) & set(shares)), dtype=np.int64)
        ids_shape = (1, len(included))
        agreed = ch.send(S0, S1, Kind.MATRIX, encode_matrix(included.astype(np.uint64).reshape(ids_shape)), lambda r: parse_matrix(r, ids_shape))
        if agreed is None:
            raise BelowThreshold("the servers could not agree on the inputs", party="server", stage="share")
        self._enough(len(included), "reached both servers")
        with meter.server():
            x = {S0: expand_rows([seeds[u] for u in included], (d,), b"input share")}
        with meter.party("second server"):
            x[S1] = np.stack([shares[u][0] for u in included])
        digits: dict = {}
        if self.validate:
            meter.stage = "range check"
            with meter.server():
                digits[S0] = expand_rows([seeds[u] for u in included], (self.bits, words(d)), DIGITS)
                targets = {S0: x[S0]}
            with meter.party("second server"):
                digits[S1] = np.stack([shares[u][1] for u in included])
                targets[S1] = x[S1]
            valid = check_digits(ch, digits, targets, d, rng.fork("dealer range"), ch.session + b"range", 1 << (self.bits - 1))  # U = X + 2^(b-1)
            rejected += [InvalidInput(f"its digits do not prove X in the signed {self.bits}-bit range", party=f"client {u}", stage="range check")
                         for u in included[~valid]]
            included, x, digits = included[valid], {p: x[p][valid] for p in x}, {p: digits[p][valid] for p in digits}
            self._enough(len(included), "passed the range check")
        m = len(included)
        gram = {}
        if self.rule not in ORDER_RULES or self._slack_bits() is not None:
            meter.stage = "gram"
            gram = self._gram(x, m, d, rng, ch)
        if self._slack_bits() is not None:
            meter.stage = "norm check"
            bound = np.uint64(self.squared_bound)
            with meter.server():
                slack = {S0: expand_rows([seeds[u] for u in included], (self._slack_bits(), 1), SLACK)}
                targets = {S0: (bound - np.diagonal(gram[S0]))[:, None]}
            with meter.party("second server"):
                slack[S1] = np.stack([shares[u][2] for u in included])
                targets[S1] = (np.uint64(0) - np.diagonal(gram[S1]))[:, None]
            valid = check_digits(ch, slack, targets, 1, rng.fork("dealer norm"), ch.session + b"norm", blind=True)
            rejected += [InvalidInput(f"its slack digits do not prove ||x||**2 <= {self.squared_bound}", party=f"client {u}", stage="norm check")
                         for u in included[~valid]]
            keep = np.flatnonzero(valid)
            included, x, digits = included[valid], {p: x[p][valid] for p in x}, {p: digits[p][valid] for p in digits}
            gram = {p: gram[p][np.ix_(keep, keep)] for p in gram}
            self._enough(len(included), "passed the norm check")
            m = len(included)
        meter.stage = "rule"
        divisor, scale, mixing, pre_leak = 1, 1, None, ""
        if self.pre == "nnm":
            x, gram, mixing = self._nnm(x, gram, m, ch)
            divisor, pre_leak = m - self.f, "the pairwise squared distances of the m inputs and the NNM neighbourhoods, then "
        if self.rule in ("krum", "multi_krum"):
            distances = self._distances(gram, m, ch)
            with meter.server():
                chosen = krum_select(distances, self.f, 1 if self.rule == "krum" else self.m)
                result_share = {S0: _row_sum(x[S0], chosen)}
            with meter.party("second server"):
                result_share[S1] = _row_sum(x[S1], chosen)
            row_weights, error = np.zeros(m), 0.0
            row_weights[chosen] = 1.0
            leak = "the pairwise squared distances of the m inputs, the selected set and the sum of the selected inputs"
        elif self.rule in ORDER_RULES:
            positions = kept_positions(self.rule, m, self.f)
            ordered = sort_columns(ch, digits, rng.fork("dealer sort"))
            values = digits_to_shares(ch, {p: ordered[p][positions] for p in ordered}, d, rng.fork("dealer order statistics"))
            result_share = {}
            for p, idx in ((S0, 0), (S1, 1)):
                with ch.timer(p):  # back from offset binary: sum_k (u_k - 2^(b-1))
                    result_share[p] = values[p].sum(axis=0) - (np.uint64(len(positions) << (self.bits - 1)) if idx == 0 else np.uint64(0))
            divisor, scale = len(positions), m
            row_weights, error = np.full(m, len(positions) / m), 0.0
            leak = "nothing else before the result (every value opened in the sorting network is masked by the dealer's triples), then the result"
        else:
            row_weights, result_share, error = clip_on_shares(ch, x, gram, d, self.tau * divisor, self.iterations)
            leak = (f"the squared norms ||x_i - v_l||**2 of every input at each of {self.iterations} iteration(s), the clipping weights, "
                    "the intermediate iterates v_1..v_(L-1) and the result")
        other = ch.send(S1, S0, Kind.MATRIX, encode_matrix(result_share[S1][None, :]), lambda r: parse_matrix(r, (1, d)))
        if other is None:
            raise BelowThreshold("the second server's result share did not arrive", party="server", stage="reconstruct")
        with meter.server():
            total = to_signed(result_share[S0] + other[0]) * scale
            if divisor > 1:  # divide the opened sum, rounding half up (error <= 1/2 a coordinate; none when it divides)
                exact_division = bool(np.all(total % divisor == 0))
                total = (total + divisor // 2) // divisor
                error = error / divisor + (0.0 if exact_division else 0.5 * np.sqrt(d))
            ring = Ring(self.bits)
            result = ring.reduce(total.view(np.uint64).astype(ring.dtype))
        weights = row_weights if mixing is None else row_weights @ mixing / divisor
        chosen = np.flatnonzero(weights > 0) if self.rule in ("krum", "multi_krum") or mixing is not None else np.arange(m)
        selected = tuple(int(included[i]) for i in chosen)
        report = LayerReport(self.name, meter.cost(transport, rounds=1), self._guarantee(n, d, m, pre_leak + leak, len(selected), error, len(rejected), ch.dealt))
        return Output(result, selected, (report,), tuple(transport.rejected) + tuple(rejected), weights=tuple(float(w) for w in weights[chosen]))

    def _distances(self, gram: dict, m: int, ch: Channel) -> np.ndarray:
        """Opens D_ij = G_ii + G_jj - 2 G_ij, exact int64 (below 2**63). NNM sorts them exactly (ties to the lower
        index); Krum sums them in float64 (`scores_from_distances`), exact while the scores stay below 2**53."""
        dist = {}
        for p in (S0, S1):
            with ch.timer(p):
                diag = np.diagonal(gram[p])
                dist[p] = diag[:, None] + diag[None, :] - np.uint64(2) * gram[p]
        return to_signed(ch.exchange(Kind.MATRIX, dist, (m, m)))

    def _nnm(self, x: dict, gram: dict, m: int, ch: Channel) -> tuple[dict, dict, np.ndarray]:
        """NNM on shares: opens the distances, both servers take the public 0/1 neighbour matrix N and replace
        X by N X (each row the sum of its m - f nearest inputs, exact) and G by N G N^T."""
        mixing = nnm_neighbours(self._distances(gram, m, ch), self.f)
        w = mixing.astype(np.uint64)
        for p in (S0, S1):
            with ch.timer(p):
                x[p] = w @ x[p]
                gram[p] = w @ gram[p] @ w.T
        return x, gram, mixing

    def _result_norm_bound(self, m: int, selected: int, bound: int) -> float:
        """An L2 bound (ring units, before the reduction mod 2^bits) on the exact result, from ||x_i||^2 <= B:
        Krum rules: a sum of `selected` inputs, selected sqrt(B); norm bounding: m min(sqrt(B), tau);
        median: m sqrt(2 B) (per coordinate at least half the values are at least as large in magnitude, so
        (m / 2) ||v||^2 <= sum_i ||x_i||^2); trimmed mean: m sqrt(m B / (m - 2f)) (Jensen on the m - 2f kept values).
        Add numeric_error for the rounding."""
        if self.rule in ("krum", "multi_krum"):
            return selected * math.sqrt(bound)
        if self.rule == "norm_bounding":
            return m * min(math.sqrt(bound), self.tau)
        factor = 2 if self.rule == "coordinate_median" else m / (m - 2 * self.f)
        return m * math.sqrt(factor * bound)

    def _needed(self) -> int:
        """The fewest inputs the rule runs on: 2f + 1, and Multi-Krum's m when it is set."""
        return max(2 * self.f + 1, self.m if self.rule == "multi_krum" and self.m is not None else 0)

    def _enough(self, m: int, what: str) -> None:
        if m < self._needed():
            raise BelowThreshold(f"{m} inputs {what}, the rule needs >= {self._needed()} (2f + 1 = {2 * self.f + 1}"
                                 + (f", Multi-Krum's m = {self.m})" if self._needed() > 2 * self.f + 1 else ")"), party="server", stage="share")

    def _collect(self, inputs, n, d, dropouts, rng, ch):
        """Clients split their lifted inputs (and, validated, their digits): a seed to S0, the explicit shares
        to S1. A frame that does not parse excludes its sender (returned in the third item)."""
        seeds, shares, rejected = {}, {}, []
        digit_shape = (self.bits, words(d)) if self.validate else None
        slack_bits = self._slack_bits()
        slack_shape = (slack_bits, 1) if slack_bits is not None else None
        for u in range(n):
            if not dropouts.active(u, Stage.MASKED_INPUT):
                continue
            with ch.timer(u):
                seed = rng.fork(f"client {u} share").bytes(SEED_BYTES)
                lifted = lift_signed(inputs[u], self.bits)
                digits = share_planes(to_planes(offset(lifted, self.bits), self.bits), seed, DIGITS) if self.validate else None
                slack = None
                if slack_shape is not None:  # an honest client over the bound sends bits of the slack mod 2**L: it is rejected
                    s = np.array([(self.squared_bound - int(to_signed(lifted) @ to_signed(lifted))) % 2**64], dtype=np.uint64)
                    slack = share_planes(to_planes(s, slack_bits), seed, SLACK)
                payload = encode_share(share_with_seed(lifted, seed, b"input share"), digits, slack)
            try:
                got = ch.send(u, S0, Kind.SHARE_SEED, Writer().raw(seed).getvalue(), lambda r: (r.raw(SEED_BYTES), r.done())[0])
                if got is not None:
                    seeds[u] = got
                got = ch.send(u, S1, Kind.SHARE_VECTOR, payload, lambda r: parse_share(r, d, digit_shape, slack_shape))
                if got is not None:
                    shares[u] = got
            except MalformedMessage as exc:  # named for its sender, the client (the receiving server raised it)
                rejected.append(type(exc)(str(exc), party=f"client {u}", stage=exc.stage))
                seeds.pop(u, None)
        return seeds, shares, rejected

    def _gram(self, x: dict, m: int, d: int, rng: Randomness, ch: Channel) -> dict:
        """Shares of G = X X^T with a dealt Gram triple (`secagg.beaver`): the servers open E = X - A, S1 receiving
        X_0 - A_0 and S0 X_1 - A_1; S0 adds its X_0 to get E + A_0 = X - A_1 and needs no E."""
        triple = self._deal(m, d, rng, ch)
        with ch.timer(S0):
            half = {S0: triple[S0].mask(x[S0])}
        with ch.timer(S1):
            half[S1] = x[S1] - triple[S1].a
        got = {S0: ch.send(S1, S0, Kind.MATRIX, encode_matrix(half[S1]), lambda r: parse_matrix(r, (m, d))),
               S1: ch.send(S0, S1, Kind.MATRIX, encode_matrix(half[S0]), lambda r: parse_matrix(r, (m, d)))}
        if got[S0] is None or got[S1] is None:
            raise BelowThreshold("a server's share did not arrive", party="server", stage="open")
        with ch.timer(S0):
            gram = {S0: triple[S0].share(np.add(x[S0], got[S0], out=half[S0]))}  # S0's half was sent: reuse it
        with ch.timer(S1):
            gram[S1] = gram_share(1, np.add(half[S1], got[S1], out=half[S1]), triple[S1])
        return gram

    def _deal(self, m, d, rng, ch):
        """The dealer draws a Gram triple; S0 gets its seed (kept as a seed), S1 gets (A_1, C_1) explicitly."""
        with ch.timer(DEALER):
            dealer = rng.fork("dealer")
            seed = dealer.bytes(SEED_BYTES)
            _, t1 = deal_gram(m, d, dealer, seed)
        got = ch.send(DEALER, S0, Kind.MATRIX, Writer().raw(seed).getvalue(), lambda r: (r.raw(SEED_BYTES), r.done())[0])
        a1 = ch.send(DEALER, S1, Kind.MATRIX, encode_matrix(t1.a), lambda r: parse_matrix(r, (m, d)))
        c1 = ch.send(DEALER, S1, Kind.MATRIX, encode_matrix(t1.c), lambda r: parse_matrix(r, (m, m)))
        if got is None or a1 is None or c1 is None:
            raise BelowThreshold("the dealer's triple did not arrive", party="server", stage="triple")
        t1.a, t1.c = a1, c1
        return {S0: SeededGramTriple(got, m, d), S1: t1}


    def _guarantee(self, n: int, d: int, m: int, leak: str, selected: int, error: float, rejected: int, dealt: dict) -> Guarantee:
        exact = error == 0.0
        gram_used = self.rule not in ORDER_RULES or self._slack_bits() is not None
        coefficient = kappa(self.rule, m, self.f) if self.rule in ("krum",) + ORDER_RULES else None
        if coefficient is not None and self.pre == "nnm":
            coefficient = nnm_kappa(m, self.f, coefficient)
        value_bits = max(1, (m - 1).bit_length()) + TRUNCATION_BITS + self.bits
        if self.pre == "nnm":  # each mixed row is a sum of m - f inputs
            value_bits += (m - self.f - 1).bit_length()
        bound = self.squared_bound if self.squared_bound is not None else d << (2 * self.bits - 2)
        krum_exact = (m * d) << (2 * self.bits) < 1 << 53 if self.pre is None else (m ** 3 * d) << (2 * self.bits) < 1 << 53
        params = {"n": n, "d": d, "m": m, "rule": self.rule, "f": self.f, "bits": self.bits, "selected": selected,
                  "kappa": "unknown" if coefficient is None else round(coefficient, 4), "kappa_lower_bound": round(lower_bound(m, self.f), 4),
                  "triples": int(gram_used), "triple_elements": (m * d + m * m) * gram_used, "validated": self.validate, "rejected": rejected, "pre": self.pre or "none"}
        if self.validate:
            params.update(squared_norm_bound=bound, soundness_error=SOUNDNESS)
        params.update({kind: int(dealt.get(kind, 0)) for kind in ("dabits", "edabits", "and_triples", "blinding_triples")})  # as dealt this round
        if self.validate and self.pre is None and self.rule != "centered_clipping":
            params["result_norm_bound"] = self._result_norm_bound(m, selected, bound)
        if self.rule in ORDER_RULES:
            comparators = m * (m - 1) // 2
            params.update(kept_positions=len(kept_positions(self.rule, m, self.f)), comparators=comparators,
                          and_gates=comparators * 2 * self.bits * d)
        if self.rule in ("centered_clipping", "norm_bounding"):
            params.update(tau=self.tau, iterations=self.iterations, truncation_bits=TRUNCATION_BITS,
                          truncation_failure_probability=min(1.0, d * 2.0 ** (value_bits + 1 - 64)))
        if self.validate:
            validity = (f"every included input was checked over the shares before anything about it was opened: each coordinate "
                        f"in [-2^{self.bits - 1}, 2^{self.bits - 1}) and ||x||^2 <= {bound} (ring units"
                        + (", implied by the range" if self.squared_bound is None else "") + f"), soundness error {SOUNDNESS} a client; "
                        "a client that fails is excluded and named in Output.rejected (InvalidInput). ")
            checks = "range, then norm" if self.squared_bound is not None else "range"
            learns = (f"S0 and S1 learn one validity bit per client ({checks}); for a client that fails the norm check, "
                      "at most also v2(||x||^2 - B + s), the 2-adic valuation of its residual (s its slack digits; for an honest "
                      "client over the bound v2 = L + v2(ceil((||x||^2 - B) / 2^L)), L = bit_length(B)), by a search of "
                      "2^(63 - v2) hashes; a client that fails the range check deviated from the protocol and its residual "
                      f"(unblinded) may be found offline; then {leak}")
        else:
            validity = "NOT validated: a Byzantine client's shares may stand for any X in Z_2^64 and wrap every distance to it. "
            learns = f"S0 and S1 learn {leak}"
        return Guarantee(
            threat_model=ThreatModel.HONEST_BUT_CURIOUS_SERVER,
            server_learns=f"{learns}; each server's shares alone are uniform; the dealer learns m and d only",
            collusion="S0 and S1 must not collude, nor the dealer with either server (A and E give X, r and c give the digits); any number of clients",
            dropout_tolerance=max(n - self._needed(), 0),  # dropouts and rejected clients together
            exact=exact,
            numeric_error=error,
            parameters=params,
            notes=validity + "Gram triples, AND triples, edaBits and daBits from a third-party dealer (trusted not to collude). "
            "An outer DP noise layer accounts for the output only (the noise of the inputs that reached it whole); "
            + ("" if self.rule in ORDER_RULES else "the opened distances, norms and selection are computed from noised inputs but no DP analysis here covers them. ")
            + ("NNM: each row is the sum of its m - f nearest inputs (exact on shares); the opened result is divided by m - f and "
               "rounded (1/2 a coordinate, in numeric_error). " if self.pre else "")
            + ("Exact ties in distance go to the lower index, on the exact integer distances: the result is the plaintext rule "
               "run on those (a float reference such as protocols.robust.aggregate may break exact ties otherwise); Krum scores "
               "are float64 sums of m - f - 1 distances, exact " + ("here (below 2^53). " if krum_exact else "only below 2^53: "
               "here near-ties may break by rounding. ") if self.rule in ("krum", "multi_krum") or self.pre else "")
            + ("coordinate-wise order statistics: odd-even transposition sort of the validated digits on shares, the kept values "
               "converted back with edaBits; result = m x the rule's value (a two-server result is read as a sum over the m included "
               "inputs), reduced mod 2^bits: it wraps unless the inputs leave log2(m) bits of headroom (|x_ij| < 2^(bits-1) / m); exact for the median, rounded half up for the trimmed mean; weights are the mean weight k/m of an input in a "
               "coordinate (none reaches the output whole, so an outer noise layer counts no noise share). " if self.rule in ORDER_RULES else "")
            + ("" if self.rule not in ("centered_clipping", "norm_bounding") else "numeric error: an L2 bound (integer units) on the result's error, from the values opened this round: "
               "per iteration sqrt(d) for truncation, sum_i |w_i - round(w_i 2^k)/2^k| ||x_i - v||, and m sqrt(d)/2 for the "
               "iterate rounded to integers (errors add: each iteration is 1-Lipschitz in v); truncation fails (wraps) with the stated probability"),
        )


def ring_bits(values: dict, ctx: StackContext) -> int:
    """`bits`, or the largest (at most 32) for which the distances of any b-bit inputs stay exact in Z_2^64
    (d 2**(2 b) < 2**63: 2 b + bitlength(d) <= 63) and, with pre="nnm", d m**2 2**(2 b) < 2**63 for the m participants."""
    if values["bits"] is not None:
        return values["bits"]
    bits = min(32, (63 - ctx.dim.bit_length()) // 2)
    if values["pre"] == "nnm":
        bits = min(bits, (63 - (ctx.dim * ctx.participants**2).bit_length()) // 2)
    return bits


@register("two-server", leaf=True, flow={"ring": ""}, fields={
    "rule": Field(str, "multi_krum", choices=RULES), "f": Field(int, None, lambda v: v >= 0, ">= 0"),
    "pre": Field(str, "none", choices=("none", "nnm")), "bits": Field(int, None, lambda v: 2 <= v <= 32, "in [2, 32]"),
    "m": Field(int, None, lambda v: v >= 1, ">= 1"), "iterations": Field(int, 1, lambda v: v >= 1, ">= 1"), "validate": Field(bool, True)},
    traits=Traits(observers={"server": "own share", "second server": "own share", "released model": "own share"}, output="sum", robust=True,
                  shares=True, splits=False),
    ring_bits=ring_bits,
    about="two non-colluding servers run the robust rule over additive shares; tau = clip * scale (ring units) and, without noise "
          "inside the discretization, the norm bound validated over the shares, from the layers outside; f: the context's if unset")
def _two_server(values: dict, ctx: StackContext) -> RingProtocol:
    clip = ctx.require("clip", "a clip layer outside it (its clipping radius is the clip bound in ring units)")
    scale = ctx.require("scale", "a discretize or noise layer (skellam, ddg) outside it: its inputs are ring elements")
    return TwoServerRobust(rule=values["rule"], f=ctx.f if values["f"] is None else values["f"], bits=ring_bits(values, ctx), m=values["m"],
                           tau=clip * scale, iterations=values["iterations"], norm_bound=ctx.norm_bound, validate=values["validate"],
                           pre=None if values["pre"] == "none" else values["pre"])
