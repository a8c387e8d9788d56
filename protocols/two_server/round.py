"""Robust aggregation over additive shares held by two non-colluding servers S0 and S1, with the clients'
inputs validated over the shares before anything about them is opened.

    client i:  x_i in Z_{2^bits} (signed), lifted to X_i in Z_{2^64}; sends S0 a 32-byte seed and, sealed to S1
               (`protocols.two_server.sealing`), X_i - PRG(seed), the XOR share of the bits digits of X_i + 2^(bits-1)
               and, with a norm bound B, of the slack B - ||x_i||**2, signed with its long-term key
               (`identities.share_message`: run, round, session, position, client id, roster, S1's key, the sealed bytes)
               (upload: 8 d + 32 bytes, + bits d / 8 and 8 L when validated, + the seal's 60 bytes, the 64-byte
               signature and framing)
    S0 -> S1:  the ids it holds a seed and a sealed share of, and each sealed share with its signature (relayed,
               unreadable to S0); S1 checks the roster S0 states against its own client keys, verifies each
               signature, then opens the shares and answers with the ids it accepts (a share that fails either
               excludes its client); fewer than `min_clients` accepted (or left after validation): S1 stops the round
    S0 <-> S1: agree on the clients both heard from; validate the range with the dealer's edaBits, daBits and
               AND triples (`protocols.two_server.validation`) and drop the clients that fail (m remain)
    dealer:    for Krum rules and NNM, a Gram triple for (m, d): a seed to S0, (A_1, C_1) to S1; for the rules that
               read only the norms (centered clipping and norm bounding without NNM; the order rules' norm check),
               a norm triple, its diagonal (`_triple`: a seed to S0, (A_1, c_1) to S1)
    S0 <-> S1: open E = X - A (S0 sends X_0 - A_0, S1 sends X_1 - A_1); Gram triple: S0's share of G = X X^T is
               C_0 + (X - A_1)(X - A_1)^T, one symmetric exact product, S1's C_1 + E A_1^T + A_1 E^T
               (`secagg.beaver`, C = A A^T - A_0 A_0^T); norm triple: S0's share of ||x_i||**2 is
               c0_i + ||x_i - a1_i||**2, S1's c1_i + 2 <e_i, a1_i> (`secagg.norm_triple`, O(m d));
               validate ||x_i||**2 <= B against these norms, exact in Z_2^64 (residual blinded by a dealer's
               secret odd unit: a failure shows its 2-adic valuation at most); open the squared distances
               D_ij = G_ii + G_jj - 2 G_ij (or, for clipping rules, the norms ||x_i - v||**2 = ||x_i||**2 - 2 <x_i, v>
               + ||v||**2, v public). Krum rules whose validated distances are below 2**43 (d (2**b - 1)**2 from
               the range, 4 B from a norm bound; NNM rows: times (m - f)**2) compute G off the diagonal, and D, in
               Z_2^44 only (half S0's limb products); the diagonal, which the norm check reads, stays exact in Z_2^64
               (a norm of 2**44 + c must not pass as c)
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

The round splits (`open_round` / `client_role`): S0's collecting role and `finish`, which runs S0's half of
the servers' program (`servers`) with S1 and the dealer in process, or remote (`RoundEnd.second_server`,
`protocols.two_server.remote`) with the same results for the same seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from protocols.core.errors import BelowThreshold, InvalidInput, MalformedMessage, Refused
from protocols.core.messages import Kind
from protocols.core.pki import SIMULATED as SIMULATED_CLIENTS
from protocols.core.pki import ClientIdentity, KeyDirectory
from protocols.core.protocol import OpenRound, RingProtocol, RoundEnd
from protocols.core.report import Guarantee, LayerReport, Output, ThreatModel
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.stack import Field, StackContext, Traits, register
from protocols.core.transport import InProcessTransport
from protocols.core.wire import Reader, Writer, decode_frame, hex_bytes
from protocols.robust.preaggregators import nnm_neighbours
from protocols.robust.robustness import kappa, lower_bound, nnm_kappa
from protocols.robust.rules import krum_select
from protocols.two_server.channel import S0, S1, Channel, encode_matrix, encode_share, parse_ids, parse_matrix, parse_share
from protocols.two_server.client import ShareClient, ShareCollector, placeholder_share
from protocols.two_server.clipping import TRUNCATION_BITS, clip_on_shares
from protocols.two_server.gates import digits_to_shares
from protocols.two_server.identities import SIGNATURE_BYTES, RoundKeyPin, ShareKeys
from protocols.two_server.order import kept_positions, sort_columns
from protocols.two_server.sealing import associated_data, unseal
from protocols.two_server.validation import check_digits
from secagg.agreement import KEY_BYTES, X25519Agreement
from secagg.beaver import GramTriple, SeededGramTriple, expand_rows, gram_share, lift_signed, share_with_seed, to_signed
from secagg.bit_sharing import offset, share_planes, to_planes, words
from secagg.int_gram import NARROW_BITS
from secagg.norm_triple import NormTriple, SeededNormTriple, norm_share
from secagg.prg import SEED_BYTES
from secagg.randomness import Randomness
from secagg.ring import Ring

ORDER_RULES = ("coordinate_median", "trimmed_mean")
CLIPPING_RULES = ("centered_clipping", "norm_bounding")
RULES = ("krum", "multi_krum") + CLIPPING_RULES + ORDER_RULES
SOUNDNESS = "2^-128"  # a false acceptance needs a SHA-256 collision
DIGITS, SLACK = b"input digits", b"norm slack digits"


def _row_sum(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """x[rows].sum(axis=0) mod 2**64 without the (len(rows), d) copy."""
    out = np.zeros(x.shape[1], dtype=np.uint64)
    for i in rows:
        out += x[i]
    return out


def _own_shares(ch: Channel, shape: tuple[int, ...], compute: dict) -> dict:
    """{p: compute[p]()} (timed as p's) for each server this program computes for (both in process); split, the other
    server's share is zeros of `shape`, a placeholder never sent (its product, m**2 d for a Gram share, is not redone)."""
    out = {}
    for p in (S0, S1):
        if ch.here is None or ch.here == p:
            with ch.timer(p):
                out[p] = compute[p]()
        else:
            out[p] = np.zeros(shape, dtype=np.uint64)
    return out


@dataclass
class TwoServerRobust(RingProtocol):
    """`rule` over the inputs secret-shared between two servers, tolerating f Byzantine clients.

    `m`: how many inputs Multi-Krum averages (default m - f). `tau`: clipping radius in the ring's
    integer units (centered clipping, norm bounding). `iterations`: centered-clipping iterations.
    `norm_bound`: public L2 bound on every input (ring units), checked over the shares; None: only the
    range, which bounds ||x||**2 by d 2**(2 bits - 2). `validate`: check ranges and norms (default).
    `pre="nnm"`: nearest-neighbour mixing on the shares before the rule (`_nnm`). `min_clients`: S1 takes part only
    while at least this many distinct authenticated clients remain (after the signature check and after validation);
    default f + 2, so that with at most f Byzantine clients (what the rule assumes) and an honest-but-curious S0 the rule
    runs on at least two honest inputs (the rule's own 2f + 1 is at least that for f >= 1); an active S0 sets the inputs
    the rule runs on (no MACs: see the guarantee's notes).
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
    min_clients: int | None = None
    name: str = "two-server"
    _second_public: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _second_signature: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _second_round: int = field(default=0, init=False, repr=False, compare=False)
    _pin: RoundKeyPin | None = field(default=None, init=False, repr=False, compare=False)

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
        if self.min_clients is None:
            self.min_clients = self.f + 2
        if type(self.min_clients) is not int or self.min_clients < 1:
            raise ValueError(f"min_clients must be a positive int, found {self.min_clients!r}")
        if self.rule == "norm_bounding":
            self.iterations = 1

    @property
    def squared_bound(self) -> int | None:
        """B = floor(norm_bound**2) computed exactly (a float square rounds up above 2**53), the bound on ||x||**2
        the servers check (ring units squared)."""
        return None if self.norm_bound is None else math.floor(Fraction(self.norm_bound) ** 2)

    def _slack_bits(self) -> int | None:
        return None if self.squared_bound is None or not self.validate else max(1, self.squared_bound.bit_length())

    def use_second_server(self, public_key: bytes | None, signature: bytes | None = None, round_number: int = 0) -> None:
        """Rounds opened from now on carry this X25519 public key of a second server that runs elsewhere (its
        half through `RoundEnd.second_server`, see `protocols.two_server.remote`), and S1's signature of it for
        round `round_number` (`second_server_signature`, `second_server_round`: the dealer and pinned clients check it,
        `protocols.two_server.identities`); None: S1 in process."""
        if public_key is not None and len(public_key) != KEY_BYTES:
            raise ValueError(f"the second server's public key must be {KEY_BYTES} bytes, found {len(public_key)}")
        self._second_public, self._second_signature, self._second_round = public_key, signature, round_number

    def pin_second_server(self, pin: RoundKeyPin | None) -> None:
        """Client side: roles built from now on seal only to a second-server key S1 signed for `pin`'s run and round
        (checked under `pin.s1_public`, from the client's own configuration); None: no check (S1 in process)."""
        self._pin = pin

    def check_sizes(self, n: int, d: int) -> None:
        """Raises ValueError unless distances (and NNM sums) of n inputs of dimension d stay exact in Z_2^64."""
        if d << (2 * self.bits) >= 1 << 63:  # ||x_i - x_j||**2 < d 2**(2 bits) once the range is validated
            raise ValueError(f"d * 2**(2 bits) must stay below 2**63 for distances exact in Z_2^64; found d={d}, bits={self.bits}")
        if self.pre == "nnm" and (d * n * n) << (2 * self.bits) >= 1 << 63:  # NNM rows are sums of up to n inputs
            raise ValueError(f"with pre='nnm', d n**2 2**(2 bits) must stay below 2**63; found d={d}, n={n}, bits={self.bits}")

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        self.check_inputs(inputs)
        return self.run_split(inputs, dropouts, rng, transport)

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        """S0's half: the public parameters (session, S1's public key, bits, d, validation) and the share stage;
        `finish` relays the sealed shares to S1 and runs S0's half of the servers' program with it (S1 in
        process, or the remote one the engine passes in `RoundEnd.second_server`)."""
        self.check_sizes(n, d)
        session = rng.bytes(8)
        local = X25519Agreement.generate(rng.fork("second server"))  # drawn either way: a round splits alike with S1 remote
        local = None if self._second_public is not None else local
        public = {"session": session.hex(), "second_server": (self._second_public or local.public_bytes()).hex(), "n": n, "d": d,
                  **self._program()}
        if local is None and self._second_signature is not None:
            public.update(second_server_signature=self._second_signature.hex(), second_server_round=self._second_round)
        server = ShareCollector(n, session)
        seated: dict = {}

        def seat(roster: list[int], directory: KeyDirectory) -> None:
            seated["shares"] = ShareKeys(directory).seat(roster, n, party="server")  # in process S1 checks with it
            seated["source"] = directory.source
            public["roster"] = list(roster)

        def finish(end: RoundEnd) -> Output:
            remote = end.second_server
            if "shares" not in seated:
                raise Refused("the round's clients were not seated (OpenRound.seat): S1 would know no client key", party="server", stage="setup")
            ch = Channel(end.transport, end.meter, session, here=None if remote is None else S0, link=remote, key=local,
                         shares=seated["shares"] if remote is None else None)
            return self.servers(ch, n, d, server.seeds, server.sealed, list(end.rejected), rng, server.signatures, seated["source"])

        return OpenRound(public, server, (Stage.MASKED_INPUT,), finish, use_roster=seat)

    def _program(self) -> dict:
        """The parameters both servers' programs (and the clients' shares) depend on: the ring and validation (with the
        norm bound B itself, not only its width), the rule with everything it reads (f, m, tau, iterations, pre), which
        also decide the distances' ring (`_narrow`), the dealer's triple (`_triple`) and min_clients: two servers that
        differed in one would add shares of different computations, or check inputs against different bounds."""
        return {"bits": self.bits, "validate": self.validate, "slack_bits": self._slack_bits(), "rule": self.rule, "f": self.f,
                "m": self.m, "tau": self.tau, "iterations": self.iterations, "pre": self.pre, "triple": self._triple(),
                "min_clients": self.min_clients, "squared_bound": self.squared_bound}

    def _triple(self) -> str | None:
        """The dealer's triple for the products over the shares: "gram" (the Gram matrix, m**2 d) for the rules that read
        distances (Krum rules, NNM), "norms" (its diagonal ||x_i||**2 only, m d) for the rules that read only the norms
        (centered clipping and norm bounding: ||x_i - v||**2 = ||x_i||**2 - 2 <x_i, v> + ||v||**2 with v public; the
        norm check), None for order rules without a norm bound (no product)."""
        if self.rule in ("krum", "multi_krum") or self.pre == "nnm":
            return "gram"
        return None if self.rule in ORDER_RULES and self._slack_bits() is None else "norms"

    def check_public(self, public: dict, party: str, d: int | None = None) -> tuple[int, int]:
        """(n, d) of a round's public parameters, which must be what this configuration gives (`_program`: ring,
        validation, slack digits, rule and its parameters; and `d` if given): a server cannot change what a client or
        S1 checks, and S0 and S1 run the same program.

        Raises:
            Refused: naming the parameter of the wrong type or value, and this configuration's.
        """
        for name, size in (("session", 8), ("second_server", KEY_BYTES)):
            value = public.get(name)
            if hex_bytes(value, size) is None:
                raise Refused(f"public parameter {name}={value!r} is not {size} bytes in hex", party=party, stage="setup")
        for name in ("n", "d"):
            if type(public.get(name)) is not int or public[name] < 1:
                raise Refused(f"public parameter {name}={public.get(name)!r} is not a positive int", party=party, stage="setup")
        mine = {**self._program(), **({"d": d} if d is not None else {})}
        for name, value in mine.items():
            if public.get(name) != value or type(public.get(name)) is not type(value):
                raise Refused(f"public parameter {name}={public.get(name)!r}, this configuration says {value!r}", party=party, stage="setup")
        return public["n"], public["d"]

    def client_role(self, i: int, row: np.ndarray, public: dict, rng: Randomness, measurements: dict,
                    identity: ClientIdentity | None = None) -> ShareClient:
        """Client i's half: its input split into a seed for S0 and an explicit share for S1, sealed to S1's key
        (if pinned, `pin_second_server`, only to one S1 signed: else its `handle` raises Refused and it sends nothing)
        and signed with `identity`, its long-term key, which the roster must seat at position i.

        Raises:
            Refused: if a public parameter is of the wrong type or is not what this client's configuration gives, if
                there is no identity, or if the roster is not one of distinct ids of its directory seating it at i.
        """
        n, _ = self.check_public(public, f"client {i}", len(row))
        row = self.ring.check(row, "row")
        if identity is None:
            raise Refused("a two-server client signs its share: it needs its identity (its signing key and the key directory)",
                          party=f"client {i}", stage="setup")
        roster = public.get("roster")
        ShareKeys(identity.directory).seat(roster, n, party=f"client {i}")
        if roster[i] != identity.cid:
            raise Refused(f"roster {str(roster)[:60]} does not seat this client ({identity.cid}) at position {i}", party=f"client {i}", stage="setup")
        stated = public.get("second_server_round", 0)

        def make() -> tuple[bytes, bytes]:
            seed = rng.bytes(SEED_BYTES)
            lifted = lift_signed(row, self.bits)
            digits = share_planes(to_planes(offset(lifted, self.bits), self.bits), seed, DIGITS) if self.validate else None
            slack = None
            if self._slack_bits() is not None:  # an honest client over the bound sends bits of the slack mod 2**L: it is rejected
                s = np.array([(self.squared_bound - int(to_signed(lifted) @ to_signed(lifted))) % 2**64], dtype=np.uint64)
                slack = share_planes(to_planes(s, self._slack_bits()), seed, SLACK)
            return seed, encode_share(share_with_seed(lifted, seed, b"input share"), digits, slack)

        return ShareClient(i, bytes.fromhex(public["session"]), bytes.fromhex(public["second_server"]), make, rng,
                           self._pin, public.get("second_server_signature"), identity=identity, roster=roster,
                           stated_round=stated if type(stated) is int else 0)

    def servers(self, ch: Channel, n: int, d: int, seeds: dict | None, sealed: dict | None, rejected: list, rng: Randomness,
                signatures: dict | None = None, keys: str = SIMULATED_CLIENTS) -> Output | None:
        """The servers' program (see `Channel`): S0 offers S1 the clients it holds a seed and a sealed share of,
        S1 verifies each share's signature (`ch.shares`), opens the shares and answers with the ones it accepts,
        then validation, the rule and the result. Returns the output at S0 (or in process); None at S1, after it
        sent its share of the result. `keys`: where the client keys of the seated directory came from (the report's).

        Raises:
            BelowThreshold: if too few inputs remain for the rule or `min_clients`, or a server's or the dealer's
                message did not arrive.
        """
        meter, transport = ch.meter, ch.transport
        meter.stage = "share"  # the stages of Cost.*_seconds_by_stage: share, range check, gram or norms (the triple), norm check, rule
        seeds, shares, included, refused = self._inputs(ch, n, d, seeds or {}, sealed or {}, signatures or {})
        rejected += refused
        self._enough(len(included), "reached both servers")
        with ch.timer(S0):
            x = {S0: expand_rows([seeds[u] for u in included], (d,), b"input share")}
        with ch.timer(S1):
            x[S1] = np.stack([shares[u][0] for u in included])
        digits: dict = {}
        if self.validate:
            meter.stage = "range check"
            with ch.timer(S0):
                digits[S0] = expand_rows([seeds[u] for u in included], (self.bits, words(d)), DIGITS)
                targets = {S0: x[S0]}
            with ch.timer(S1):
                digits[S1] = np.stack([shares[u][1] for u in included])
                targets[S1] = x[S1]
            valid = check_digits(ch, digits, targets, d, rng.fork("dealer range"), ch.session + b"range", 1 << (self.bits - 1))  # U = X + 2^(b-1)
            rejected += [InvalidInput(f"its digits do not prove X in the signed {self.bits}-bit range", party=f"client {u}", stage="range check")
                         for u in included[~valid]]
            included, x, digits = included[valid], {p: x[p][valid] for p in x}, {p: digits[p][valid] for p in digits}
            self._enough(len(included), "passed the range check")
        m = len(included)
        gram, norms, narrow, opened_bound = {}, {}, self._narrow(m, d), self._distance_bound(m, d)
        if self._triple() == "gram":
            meter.stage = "gram"
            gram = self._gram(x, m, d, rng, ch, narrow)
            norms = {p: np.diagonal(gram[p]) for p in gram}
        elif self._triple() == "norms":
            meter.stage = "norms"
            norms = self._norms(x, m, d, rng, ch)
        if self._slack_bits() is not None:
            meter.stage = "norm check"
            bound = np.uint64(self.squared_bound)
            with ch.timer(S0):
                slack = {S0: expand_rows([seeds[u] for u in included], (self._slack_bits(), 1), SLACK)}
                targets = {S0: (bound - norms[S0])[:, None]}
            with ch.timer(S1):
                slack[S1] = np.stack([shares[u][2] for u in included])
                targets[S1] = (np.uint64(0) - norms[S1])[:, None]
            valid = check_digits(ch, slack, targets, 1, rng.fork("dealer norm"), ch.session + b"norm", blind=True)
            rejected += [InvalidInput(f"its slack digits do not prove ||x||**2 <= {self.squared_bound}", party=f"client {u}", stage="norm check")
                         for u in included[~valid]]
            keep = np.flatnonzero(valid)
            included, x, digits = included[valid], {p: x[p][valid] for p in x}, {p: digits[p][valid] for p in digits}
            gram, norms = {p: gram[p][np.ix_(keep, keep)] for p in gram}, {p: norms[p][keep] for p in norms}
            self._enough(len(included), "passed the norm check")
            m = len(included)
        meter.stage = "rule"
        divisor, scale, mixing, pre_leak = 1, 1, None, ""
        if self.pre == "nnm":
            x, gram, mixing = self._nnm(x, gram, m, ch, narrow)
            norms = {p: np.diagonal(gram[p]) for p in gram}  # of the mixed rows
            divisor, pre_leak = m - self.f, "the pairwise squared distances of the m inputs and the NNM neighbourhoods, then "
        if self.rule in ("krum", "multi_krum"):
            distances = self._distances(gram, m, ch, narrow)
            with ch.timer(S0 if ch.here is None else ch.here):
                chosen = krum_select(distances, self.f, 1 if self.rule == "krum" else self.m)
            with ch.timer(S0):
                result_share = {S0: _row_sum(x[S0], chosen)}
            with ch.timer(S1):
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
            row_weights, contributes, result_share, error = clip_on_shares(ch, x, norms, d, self.tau * divisor, self.iterations)
            mixed = contributes if mixing is None else contributes.astype(np.float64) @ mixing > 0
            # a clipping rule's output mixes only the inputs of positive applied weight: both servers, before S1's share of the result
            self._enough(int(mixed.sum()), "have a positive applied clipping weight", {"min_clients": self.min_clients}, "rule")
            leak = (f"the squared norms ||x_i - v_l||**2 of every input at each of {self.iterations} iteration(s), the clipping weights, "
                    "the intermediate iterates v_1..v_(L-1) and the result")
        other = ch.send(S1, S0, Kind.MATRIX, encode_matrix(result_share[S1][None, :]), lambda r: parse_matrix(r, (1, d)))
        if ch.here == S1:
            return None
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
        chosen = np.arange(m) if self.rule in ORDER_RULES else np.flatnonzero(mixed) if self.rule in CLIPPING_RULES else np.flatnonzero(weights > 0)
        selected = tuple(int(included[i]) for i in chosen)
        report = LayerReport(self.name, meter.cost(transport, rounds=1), self._guarantee(n, d, m, pre_leak + leak, len(selected), error, len(rejected), ch.dealt,
                                                                                 opened_bound if narrow else None, keys))
        rejected += [e for e in transport.rejected if not any(e is r for r in rejected)]  # the link's, unless the driver listed them
        return Output(result, selected, (report,), tuple(rejected), weights=tuple(float(w) for w in weights[chosen]), chosen_from_inputs=True)

    def _triple_note(self) -> str:
        """What the dealer's triple computed this round (see `_triple`)."""
        if self._triple() == "gram":
            return "Products: a Gram triple gave shares of the Gram matrix X X^T (S0: one symmetric exact product, m^2 d). "
        if self._triple() == "norms":
            return ("Products: a norm triple (the Gram triple's diagonal, secagg.norm_triple) gave shares of the squared norms "
                    "||x_i||^2 only, exact in Z_2^64 (m d for S0, S1 and the dealer); no inner product between two inputs is computed. ")
        return "Products: none (no triple). "

    def _authentication(self, keys: str) -> str:
        """The guarantee's sentences on the clients' signatures and `min_clients`, rule by rule."""
        k = self.min_clients
        clipped = ("a sum of the included inputs, those with a positive applied weight round(w_i 2^12) / 2^12 at some iteration (an "
                   "input farther than 2^13 tau from v at every iteration gets 0 and is not included; both servers refuse to release a sum of fewer than "
                   "min_clients), at least min_clients - c of them honest")
        output = {
            "krum": "Krum outputs one selected input as it is, whatever min_clients",
            "multi_krum": f"the sum of the m' selected inputs (m' = {'m - f' if self.m is None else self.m}), of which at least m' - c are honest "
                          "(S0's colluders may all be selected)",
            "centered_clipping": clipped,
            "norm_bounding": clipped,
            "coordinate_median": "each coordinate is one input's value (odd m) or the mean of the two middle ones, so an honest input's "
                                 "value at a coordinate can be released as it is whatever min_clients",
            "trimmed_mean": "each coordinate is the mean of the m - 2f middle values, at least m - 2f - c of them honest",
        }[self.rule]
        simulated = (f" Here the client keys are {SIMULATED_CLIENTS}: this authentication holds against no one. "
                     if keys == SIMULATED_CLIENTS else f" Client keys: {keys} at S0; S1 checks with its own copy (node config client-keys). ")
        return ("Each client signs its sealed share with its long-term Ed25519 key, over the run, the round, the session, its position, "
                "its id, the roster, S1's round key and SHA-256 of the sealed bytes (64 bytes a client); S1 verifies it before opening the "
                "share, under its own copy of the clients' keys, and refuses a roster S0 states with an id twice or an id without a key: "
                "S0 cannot seal an input of its own under a client's name, nor replay a client's share from another round, run, position, "
                "roster or S1 key; such a share excludes its client. Against an active S0 colluding with c clients (never with S1 or the "
                f"dealer): S1 takes part only while at least min_clients = {k} distinct authenticated clients remain after validation, and "
                "that is all. NO INPUT PRIVACY, NO VALIDATION AND NO OUTPUT INTEGRITY AGAINST AN ACTIVE S0: nothing authenticates the "
                "shares S0 holds or the values it opens (no MACs), so S0 reads every honest input by shifting its own input shares after "
                "the range check (the opened norms carry <x_i, delta>) or by opening a forged clipping iterate, reads a digit of its "
                "choice of every input by a selective failure in the range check's AND gates, lets a colluding client's out-of-range "
                "input pass by cancelling its residual, chooses the clipping weights (down to 2^-12 each) and the Multi-Krum selection "
                "by deviating in the opened distances and norms, and sets the output (the rule runs on x_i + delta_i for shifts "
                "delta_i of its choosing, undetected); it may also leave honest clients out (as dropouts, or by altering the seed shares "
                f"it holds so that they fail validation) down to min_clients. With S0 honest-but-curious the rule runs on at least "
                f"{k} - c honest inputs (c Byzantine clients), the output is {output}, and the values opened before it (distances, "
                "norms) are per input whatever min_clients." + simulated)

    def _distance_bound(self, m: int, d: int) -> int | None:
        """A bound on every distance a Krum rule opens, proven by the validation before any distance is used (None:
        unvalidated, or not a Krum rule): d (2**bits - 1)**2 from the range (|x_ik - x_jk| <= 2**bits - 1) and, with a
        norm bound B (checked exactly, on the Z_2^64 diagonal), 4 (2**L - 1) >= 4 B, L = bit_length(B) the slack digits
        (public parameters both servers check, so that they decide alike); for NNM rows (sums of at most m - f inputs)
        (m - f)**2 times that. Below 2**43 the distances are computed in Z_2^44 (narrow Gram shares, `secagg.beaver`)."""
        if not (self.validate and self.rule in ("krum", "multi_krum")):
            return None
        bound = d * (2**self.bits - 1) ** 2
        if self._slack_bits() is not None:
            bound = min(bound, 4 * ((1 << self._slack_bits()) - 1))
        rows = max(1, m - self.f) if self.pre == "nnm" else 1
        return rows * rows * bound

    def _narrow(self, m: int, d: int) -> bool:
        """Whether the distances of m validated inputs of dimension d are computed in Z_2^44 (`_distance_bound` < 2**43)."""
        bound = self._distance_bound(m, d)
        return bound is not None and bound < 1 << (NARROW_BITS - 1)

    def _distances(self, gram: dict, m: int, ch: Channel, narrow: bool) -> np.ndarray:
        """Opens D_ij = G_ii + G_jj - 2 G_ij, exact int64 (below 2**63; `narrow`: shares and D mod 2**44, below 2**43).
        NNM sorts them exactly (ties to the lower index); Krum sums them in float64 (`scores_from_distances`), exact
        while the scores stay below 2**53."""
        dist, reduce = {}, np.uint64((1 << (NARROW_BITS if narrow else 64)) - 1)
        for p in (S0, S1):
            with ch.timer(p):
                diag = np.diagonal(gram[p])
                dist[p] = (diag[:, None] + diag[None, :] - np.uint64(2) * gram[p]) & reduce  # a narrow share sends no high bits
        return to_signed(ch.exchange(Kind.MATRIX, dist, (m, m), combine=(lambda a, b: (a + b) & reduce) if narrow else np.add))

    def _nnm(self, x: dict, gram: dict, m: int, ch: Channel, narrow: bool) -> tuple[dict, dict, np.ndarray]:
        """NNM on shares: opens the distances, both servers take the public 0/1 neighbour matrix N and replace
        X by N X (each row the sum of its m - f nearest inputs, exact) and G by N G N^T (narrow: valid mod 2**44)."""
        mixing = nnm_neighbours(self._distances(gram, m, ch, narrow), self.f)
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

    def _floors(self) -> dict[str, int]:
        """The fewest inputs the rule runs on, by what sets it: 2f + 1, Multi-Krum's m when it is set, and min_clients."""
        multi_krum = {"Multi-Krum's m": self.m} if self.rule == "multi_krum" and self.m is not None else {}
        return {"2f + 1": 2 * self.f + 1, **multi_krum, "min_clients": self.min_clients}

    def _enough(self, count: int, what: str, floors: dict[str, int] | None = None, stage: str = "share") -> None:
        """Refuses the round at `stage` when `count` inputs `what` (e.g. "passed the norm check") are fewer than the
        largest of `floors` (what sets it -> count; the rule's, `_floors`, by default), naming each floor."""
        floors = self._floors() if floors is None else floors
        if count < max(floors.values()):
            raise BelowThreshold(f"{count} inputs {what}, the round needs >= {max(floors.values())} ("
                                 + ", ".join(f"{name} = {value}" for name, value in floors.items()) + ")", party="server", stage=stage)

    def _inputs(self, ch: Channel, n: int, d: int, seeds: dict, sealed: dict, signatures: dict) -> tuple[dict, dict, np.ndarray, list]:
        """S0 -> S1: the ids it holds a seed and a sealed share of, then each sealed share and its signature
        (relayed); S1 verifies the signature (`ch.shares`), opens and parses the share (a failure excludes the
        client, named) and answers with the ids it accepts. Returns each server's view of the seeds and shares
        (the other server's as placeholders), the included ids and the refusals (at S0 split: rebuilt from the ids
        S1 did not accept).

        Raises:
            Refused: where S1 runs, if it holds no verifier of the clients' signatures (`Channel.shares`).
        """
        if ch.here != S0 and ch.shares is None:
            raise Refused("the second server holds no client keys: it opens no unsigned share", party="second server", stage="share")
        digit_shape = (self.bits, words(d)) if self.validate else None
        slack_shape = (self._slack_bits(), 1) if self._slack_bits() is not None else None
        offered = sorted(set(seeds) & set(sealed))
        ids = ch.send(S0, S1, Kind.MATRIX, encode_matrix(np.array([offered], dtype=np.uint64).reshape(1, -1)), lambda r: parse_ids(r, n))
        if ids is None:
            raise BelowThreshold("the servers could not agree on the inputs", party="server", stage="share")
        shares, refused = {}, []
        for u in ids:
            def opened(r, u=u):
                if r.u32() != u:
                    raise r.fail(f"relayed share is not client {u}'s")
                ad, signature = associated_data(ch.session, u, Kind.SHARE_VECTOR), r.blob(SIGNATURE_BYTES)
                share = r.raw(r.remaining())
                ch.shares.check(u, ad, ch.key.public_bytes(), signature, share, stage="share")  # before opening anything
                frame = decode_frame(unseal(ch.key, share, ad, party=f"client {u}", stage="share"), party=f"client {u}", stage="share")
                if frame.kind != Kind.SHARE_VECTOR or frame.session != ch.session or frame.sender != u or frame.recipient != S1:
                    raise MalformedMessage("unexpected share frame", party=f"client {u}", stage="share")
                return parse_share(Reader(frame.payload, party=f"client {u}", stage="share"), d, digit_shape, slack_shape)
            try:
                got = ch.send(S0, S1, Kind.SHARE_VECTOR, Writer().u32(u).blob(signatures.get(u, b"")).raw(sealed.get(u, b"")).getvalue(),
                              opened if ch.here != S0 else lambda r: placeholder_share(d, digit_shape, slack_shape))
            except MalformedMessage as exc:  # named for its sender, the client
                refused.append(type(exc)(str(exc), party=f"client {u}", stage=exc.stage))
                continue
            if got is not None:
                shares[u] = got
        accepted = ch.send(S1, S0, Kind.MATRIX, encode_matrix(np.array([sorted(shares)], dtype=np.uint64).reshape(1, -1)),
                           lambda r: parse_ids(r, n, within=ids))
        if accepted is None:
            raise BelowThreshold("the second server's accepted inputs did not arrive", party="server", stage="share")
        if ch.here == S0:
            refused = [MalformedMessage("the second server refused its sealed share", party=f"client {u}", stage="share") for u in ids if u not in accepted]
            shares = {u: placeholder_share(d, digit_shape, slack_shape) for u in accepted}
        if ch.here == S1:
            seeds = {u: bytes(SEED_BYTES) for u in accepted}  # placeholders: S0's seeds never reach S1
        return seeds, shares, np.array(accepted, dtype=np.int64), refused

    def _open_masked(self, x: dict, triple: dict, m: int, d: int, ch: Channel) -> tuple[dict, dict]:
        """Opens E = X - A for a dealt triple (S0's share kept as the dealer's seed): S1 receives X_0 - A_0 and S0
        X_1 - A_1. Returns (each server's own half, the half it received; split, placeholders for the other's)."""
        half = _own_shares(ch, (m, d), {S0: lambda: triple[S0].mask(x[S0]), S1: lambda: x[S1] - triple[S1].a})
        got = {S0: ch.send(S1, S0, Kind.MATRIX, encode_matrix(half[S1]), lambda r: parse_matrix(r, (m, d))),
               S1: ch.send(S0, S1, Kind.MATRIX, encode_matrix(half[S0]), lambda r: parse_matrix(r, (m, d)))}
        if got[S0] is None or got[S1] is None:
            raise BelowThreshold("a server's share did not arrive", party="server", stage="open")
        return half, got

    def _norms(self, x: dict, m: int, d: int, rng: Randomness, ch: Channel) -> dict:
        """Shares of (||x_i||**2)_i, exact in Z_2^64, with a dealt norm triple (`secagg.norm_triple`): S0's
        c_0 + ||X_0 + (X_1 - A_1)||**2 rowwise, S1's c_1 + 2 <E, A_1> rowwise; O(m d) for both and the dealer."""
        seed, (a1, c1) = ch.deal("norms", (m, d), rng.fork("dealer"))
        triple = {S0: SeededNormTriple(seed, m, d), S1: NormTriple(a1, c1[:, 0])}
        half, got = self._open_masked(x, triple, m, d, ch)
        return _own_shares(ch, (m,), {S0: lambda: triple[S0].share(x[S0], plus=got[S0]),  # P = X_0 + (X_1 - A_1), a block at a time
                                      S1: lambda: norm_share(1, np.add(half[S1], got[S1], out=half[S1]), triple[S1])})

    def _gram(self, x: dict, m: int, d: int, rng: Randomness, ch: Channel, narrow: bool) -> dict:
        """Shares of G = X X^T with a dealt Gram triple (`secagg.beaver`): S0 keeps the dealer's seed, S1 gets
        (A_1, C_1); the servers open E = X - A (`_open_masked`); S0 adds its X_0 to get E + A_0 = X - A_1 and needs
        no E. `narrow`: off the diagonal mod 2**44 only, the diagonal exact."""
        seed, (a1, c1) = ch.deal("gram", (m, d), rng.fork("dealer"))
        triple = {S0: SeededGramTriple(seed, m, d), S1: GramTriple(a1, c1)}
        half, got = self._open_masked(x, triple, m, d, ch)
        return _own_shares(ch, (m, m), {S0: lambda: triple[S0].share(x[S0], narrow, plus=got[S0]),  # P = X_0 + (X_1 - A_1), a block at a time
                                        S1: lambda: gram_share(1, np.add(half[S1], got[S1], out=half[S1]), triple[S1], narrow)})

    def _guarantee(self, n: int, d: int, m: int, leak: str, selected: int, error: float, rejected: int, dealt: dict,
                   narrow_bound: int | None, keys: str) -> Guarantee:
        """`narrow_bound`: the proven bound on the opened distances when they were computed in Z_2^44 (None: Z_2^64);
        `keys`: where the client keys came from (`KeyDirectory.source`)."""
        exact = error == 0.0
        triple = self._triple()
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
                  "triples": int(triple is not None), "triple": triple or "none", "triple_elements": int(dealt.get("triple_elements", 0)), "validated": self.validate, "rejected": rejected, "pre": self.pre or "none",
                  "min_clients": self.min_clients, "client_keys": keys, "signature_bytes": SIGNATURE_BYTES}
        if self.rule in ("krum", "multi_krum"):
            params["distance_ring_bits"] = 64 if narrow_bound is None else NARROW_BITS
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
            collusion="S0 and S1 must not collude, nor the dealer with either server (A and E give X, r and c give the digits); any number of "
                      f"clients (c of them Byzantine, S0 honest-but-curious: the rule runs on at least min_clients - c = {self.min_clients} - c honest "
                      "inputs; an active S0 sets the inputs and reads them, see notes)",
            dropout_tolerance=max(n - max(self._floors().values()), 0),  # dropouts and rejected clients together
            exact=exact,
            numeric_error=error,
            parameters=params,
            notes=validity + self._triple_note() + "Gram or norm triples, AND triples, edaBits and daBits from a third-party dealer (trusted not to collude), a party of its "
            "own, never S0 or S1 (a dealer inside S1 would know A, and E = X - A opened would give S1 every input). Clients seal S1's share, "
            "and the dealer S1's part, to S1's X25519 key (HKDF-SHA256, AES-256-GCM, bound to the session, the sender, the kind and the "
            "dealer's batch); S0 relays them and sees them sealed only: one it alters, replays or swaps excludes its sender (a client) or "
            "aborts the round (the dealer). Split, the dealer seals only to a round key S1 signed and signs each batch, which S1 checks "
            "(Ed25519 identities from each node's own config; in process and in simulation simulated ones, which anyone can sign as). "
            "Pinned clients (on Flower, always) seal only to a round key S1 signed for their run and round, checked under S1's key "
            "from their own config, so S0 cannot hand them a key of its own as S1's (they refuse and send nothing); unpinned "
            "(in process) they take S1's key from S0's public parameters. "
            + self._authentication(keys)
            + "An outer DP noise layer counts each client's own noise share only: the selection, the weights and the values opened "
            "to compute them (distances, norms, comparisons) are functions of the individually noised inputs, so the own share "
            "bounds what they and the output reveal (post-processing); the noise of the selected shares together is not counted. "
            + ("NNM: each row is the sum of its m - f nearest inputs (exact on shares); the opened result is divided by m - f and "
               "rounded (1/2 a coordinate, in numeric_error). " if self.pre else "")
            + ((f"Distances computed and opened in Z_2^{NARROW_BITS}" + (" (the norms of the norm check in Z_2^64)" if self.squared_bound is not None else "")
                + f": exact, as every input the rule runs on passed the checks above, so every distance opened is at most {narrow_bound} < 2^{NARROW_BITS - 1} "
                "(from the range" + (" and the norm bound's slack width, 4 (2^L - 1) >= 4 B" if self.squared_bound is not None else "") + (", times (m - f)^2 for NNM rows" if self.pre else "") + "). "
                if narrow_bound is not None else "Distances computed and opened in Z_2^64. ") if self.rule in ("krum", "multi_krum") else "")
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
    "m": Field(int, None, lambda v: v >= 1, ">= 1"), "iterations": Field(int, 1, lambda v: v >= 1, ">= 1"), "validate": Field(bool, True),
    "min_clients": Field(int, None, lambda v: v >= 1, ">= 1")},
    traits=Traits(observers={"server": "own share", "second server": "own share", "released model": "own share"}, output="sum", robust=True,
                  shares=True, splits=True),
    ring_bits=ring_bits,
    about="two non-colluding servers run the robust rule over additive shares; tau = clip * scale (ring units) and, without noise "
          "inside the discretization, the norm bound validated over the shares, from the layers outside; f: the context's if unset; "
          "min_clients: the second server takes part only while at least this many signed clients remain (default f + 2)")
def _two_server(values: dict, ctx: StackContext) -> RingProtocol:
    clip = ctx.require("clip", "a clip layer outside it (its clipping radius is the clip bound in ring units)")
    scale = ctx.require("scale", "a discretize or noise layer (skellam, ddg) outside it: its inputs are ring elements")
    protocol = TwoServerRobust(rule=values["rule"], f=ctx.f if values["f"] is None else values["f"], bits=ring_bits(values, ctx), m=values["m"],
                               tau=clip * scale, iterations=values["iterations"], norm_bound=ctx.norm_bound, validate=values["validate"],
                               pre=None if values["pre"] == "none" else values["pre"], min_clients=values["min_clients"])
    fields = {"2f + 1": "f", "Multi-Krum's m": "m", "min_clients": "min_clients"}  # what sets each of the round's floors (review 13)
    ctx.need_inputs({fields[what]: (what, floor) for what, floor in protocol._floors().items()})
    return protocol
