"""SecAgg (Bonawitz et al., CCS 2017) and SecAgg+ (Bell et al., CCS 2020): pairwise-masking secure
aggregation with dropout recovery, as configured recipes over `MaskingClient` / `MaskingServer`.

    >>> out = secure_sum(inputs, protocol=SecAggPlus.for_clients(100), dropouts=schedule, seed=1)
    >>> out.result          # sum mod 2**32 of the inputs of out.included
    >>> print(format_reports(out.reports))

SecAgg uses the complete graph: per client O(n + d) work and bytes up, server O(n**2 + n*d) at
dropout. SecAgg+ uses a random k-regular graph with k = O(log n): per client O(k + d) bytes and
O(n log n + k + d) work (each client computes its own neighbours from the seed inside its metered
handler: n/2 AES blocks and one vectorised sort, ~50 us at n = 1000; against an active server O(n)
more, to verify and hash every signed advertisement), server O(n*k + n*d*k) at dropout.

Byzantine clients on the share channel. A client's shares go to each neighbour encrypted (AES-GCM) under the pair's
channel key, from this round's c keys (X25519) and known to the two ends only; the server relays them unread. A share
that fails to authenticate at its recipient, or names another pair, is not held: the recipient keeps the pair's mask
(it comes from the advertised s keys, not from the share), reports the share UNREADABLE at unmasking in the slot the
share would take (no extra bytes), and both stay included. The server cannot tell which end made it so (the key is
symmetric; a recipient revealing its c secret to prove it would open all k >= t shares of its own secrets that it
sent, so it could no longer contribute an input): it excludes neither and lists the pairs in the report's notes.
What one Byzantine client can still do: as a sender, leave its own secrets with fewer than t readable shares among
the neighbours that answer the unmasking; its masked input is then in the sum without a way to unmask it, and the
round aborts (`BelowThreshold` naming it and the recipients that report it), as for a dealer of shares that match
no commitment (`Aborted`); as a receiver, withhold a share by calling it unreadable, which is no more than dropping
out at unmasking would do (counted in the k - t dropout tolerance). Active mode: a recipient counts the consistency
signature only of a neighbour whose share it holds (that share proves the neighbour's keys are of this round; each
signature binds the signer's keys, so one from an earlier round of the same session never counts), so senders that make
their shares unreadable at one recipient can leave it short of t signatures: it stops at unmasking (its input stays in
the sum), as it would if they withheld their signatures.

The SecAgg+ graph is H(k, n) relabelled by the ranks of AES-CTR words (`protocols.masking.graph.HararyGraph`);
the previous version's 4-round Feistel labelling was distinguishable on small n, so a seeded SecAgg+
round now has another graph than before (SecAgg's complete graph, and every other draw of a seeded
round, are unchanged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from protocols.core.errors import Refused
from protocols.core.pki import ClientIdentity, KeyDirectory, roster_digest
from protocols.core.protocol import OpenRound, RingProtocol, RoundEnd
from protocols.core.report import Guarantee, LayerReport, Output, ThreatModel
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.stack import Field, StackContext, StackError, Traits, register
from protocols.core.transport import InProcessTransport
from protocols.core.wire import hex_bytes
from protocols.masking.client import MaskingClient
from protocols.masking.graph import check_threshold, choose_degree_and_threshold, claimed_cut_log2, colluder_bound, corrupt_neighbours_bound
from protocols.masking.server import PARTY, BadShares, MaskingServer
from protocols.masking.setup import RoundSetup
from secagg.randomness import Randomness


class _PairwiseMasking(RingProtocol):
    active: bool

    def degree_and_threshold(self, n: int) -> tuple[int, int]:
        raise NotImplementedError

    def colluder_count(self, n: int, k: int, t: int) -> int:
        """The colluding clients (SecAgg) or corrupt neighbours of a client (SecAgg+) the round is configured for."""
        raise NotImplementedError

    def _collusion(self, n: int, k: int, t: int) -> str:
        raise NotImplementedError

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        self.check_inputs(inputs)
        return self.run_split(inputs, dropouts, rng, transport)

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        """The server's half. Active mode: the round's clients sign with long-term identities, so the engine seats
        the roster (`OpenRound.seat`; in process, simulated identities) before the public parameters go out."""
        return self._open(n, d, rng)[0]

    def client_role(self, i: int, row: np.ndarray, public: dict, rng: Randomness, measurements: dict,
                    identity: ClientIdentity | None = None) -> MaskingClient:
        """Client i's role from the server's public parameters, which must be the ones this client's own
        configuration gives (n, k, t, bits, d = len(row)): a server cannot lower the threshold. Active mode
        needs `identity`, this client's own: it signs with identity.signer and verifies position v's
        signatures with identity.directory's key of roster[v] (never a key the server sends), after checking
        that the roster seats it at position i and lists each client at most once.

        Raises:
            Refused: naming the parameter the server sent and the one this client expects, or one of
                the wrong type (n, k, t, d, bits must be int; session and graph_seed hex of 8 and 32 bytes);
                for a position i that is no int in [0, n);
                in active mode without an identity, or for a roster of n distinct ids of the directory that
                does not seat this client at position i.
        """
        for name in ("n", "k", "t", "d", "bits"):
            if type(public.get(name)) is not int:
                raise Refused(f"public parameter {name}={public.get(name)!r} is not an int", party=f"client {i}", stage="setup")
        if type(i) is not int or not 0 <= i < public["n"]:
            raise Refused(f"position i={i!r} is not in [0, n={public['n']})", party=f"client {i}", stage="setup")
        for name, size in (("session", 8), ("graph_seed", 32)):
            value = public.get(name)
            if hex_bytes(value, size) is None:
                raise Refused(f"public parameter {name}={value!r} is not {size} bytes in hex", party=f"client {i}", stage="setup")
        try:
            k, t = self.degree_and_threshold(public["n"])
        except ValueError as exc:
            raise Refused(f"public parameters refused: {exc}", party=f"client {i}", stage="setup") from exc
        for name, mine in (("k", k), ("t", t), ("bits", self.bits), ("d", len(row))):
            if public.get(name) != mine:
                raise Refused(f"public parameter {name}={public.get(name)!r}, this client's configuration says {mine}", party=f"client {i}", stage="setup")
        session = bytes.fromhex(public["session"])
        self.ring.check(row, "row")
        if not self.active:
            setup = RoundSetup(n=public["n"], k=k, t=t, d=public["d"], ring=self.ring, active=False, session=session,
                               graph_seed=bytes.fromhex(public["graph_seed"]))
            return MaskingClient(i, setup, row, rng, None, None)
        if identity is None:
            raise Refused("active SecAgg needs this client's identity (its signing key and the key directory)", party=f"client {i}", stage="setup")
        roster = public.get("roster")
        pki = identity.directory.for_roster(roster, public["n"], party=f"client {i}")
        if roster[i] != identity.cid:
            raise Refused(f"roster {str(roster)[:60]} does not seat this client ({identity.cid}) at position {i} of n={public['n']}",
                          party=f"client {i}", stage="setup")
        setup = RoundSetup(n=public["n"], k=k, t=t, d=public["d"], ring=self.ring, active=True, session=session,
                           roster=roster_digest(roster))
        return MaskingClient(i, setup, row, rng, identity.signer, pki)

    def _open(self, n: int, d: int, rng: Randomness) -> tuple[OpenRound, RoundSetup]:
        k, t = self.degree_and_threshold(n)
        session = rng.bytes(8)
        drawn = rng.bytes(32)  # public: the server announces it; an active server's graph comes from the signed keys instead
        setup = RoundSetup(n=n, k=k, t=t, d=d, ring=self.ring, active=self.active, session=session,
                           graph_seed=None if self.active else drawn)
        server = MaskingServer(setup, None)
        stages = tuple(s for s in Stage if self.active or s != Stage.CONSISTENCY_CHECK)
        public = {"n": n, "k": k, "t": t, "d": d, "bits": self.bits, "session": session.hex(), "graph_seed": drawn.hex()}

        seated: dict[str, str] = {}

        def seat(roster: list[int], directory: KeyDirectory) -> None:
            server.seat(roster_digest(roster), directory.for_roster(roster, n, party=PARTY))
            public["roster"] = list(roster)
            seated["source"] = directory.source

        opened = OpenRound(public, server, stages, lambda end: self._finish(server, setup, len(stages), end, seated.get("source")),
                           use_roster=seat if self.active else None)
        return opened, setup

    def _finish(self, server: MaskingServer, setup: RoundSetup, rounds: int, end: RoundEnd, keys: str | None = None) -> Output:
        result, included = server.result()
        n, d, k, t = setup.n, setup.d, setup.k, setup.t
        off = {v: sorted(holders) for v, holders in sorted(server.off_polynomial.items())}
        outside = {w: [v for v in sorted(owners) if w not in server.off_polynomial.get(v, ())] for w, owners in sorted(server.bad_shares.items())}
        outside = {w: owners for w, owners in outside.items() if owners}
        rejected = list(end.rejected) + [
            BadShares(f"client {w}'s unmasking shares of clients {owners} are out of the field (an honest holder refuses such a "
                      "share at receipt); dropped", party=PARTY, stage="UNMASKING", holder=w)
            for w, owners in outside.items()
        ] + [
            BadShares(f"unmasking shares off the recovered polynomial, dealer -> holders: {v} -> {holders}; dropped (the dealer "
                      "may have sealed them so, or the holders revealed them so: neither is excluded)", party=PARTY, stage="UNMASKING",
                      pairs=tuple((v, w) for w in holders))
            for v, holders in off.items()
        ]
        notes = [f"unmasking shares out of the field dropped, from clients {sorted(outside)}"] if outside else []
        if off:
            notes.append(f"unmasking shares off the recovered polynomial dropped (dealer -> holders: "
                         f"{', '.join(f'{v} -> {h}' for v, h in off.items())}); either end of a pair may be at fault: both stay in")
        if server.unreadable:  # claims of the recipients: either end of a pair may be the one at fault
            pairs = ", ".join(f"{v} -> {sorted(to)}" for v, to in sorted(server.unreadable.items()))
            notes.append(f"encrypted shares reported unreadable by their recipients (sender -> recipients: {pairs}); the pair key is "
                         "symmetric, so either end may be at fault: both stay in, the recipient holds no share of the sender")
        if keys is not None:  # active mode: whose keys the signatures were checked against
            notes.append(f"clients verify each other's signatures (roster-bound) with the long-term keys from {keys}, never a key the server sends")
        dropped = {s.name.lower(): sum(1 for v in end.dropouts.drops.values() if v == s) for s in Stage} if end.dropouts else {}
        guarantee = Guarantee(
            threat_model=ThreatModel.ACTIVE_SERVER if self.active else ThreatModel.HONEST_BUT_CURIOUS_SERVER,
            server_learns=f"the sum mod 2^{self.bits} of the {len(included)} included inputs, and who dropped when",
            collusion=self._collusion(n, k, t),
            dropout_tolerance=k - t,
            exact=True,
            parameters={"n": n, "d": d, "bits": self.bits, "k": k, "t": t, "colluders": self.colluder_count(n, k, t), **self._extra_parameters(),
                        "graph_seed": server.graph_seed.hex()},
            notes="; ".join(notes + (["scheduled dropouts by stage: " + ", ".join(f"{s}={c}" for s, c in dropped.items() if c)] if any(dropped.values()) else [])),
        )
        report = LayerReport(self.name, end.meter.cost(end.transport, rounds=rounds), guarantee)
        return Output(result, included, (report,), tuple(rejected))

    def _extra_parameters(self) -> dict:
        return {}


DEFAULT_CORRUPT = 0.05  # the corrupt fraction `SecAggPlus.for_clients` declares unless told otherwise

_ACTIVE = "the server, even sending different survivor lists to different clients,"
_PASSIVE = "the server"


@dataclass(frozen=True)
class SecAgg(_PairwiseMasking):
    """Bonawitz et al. on the complete graph. `t` is the share threshold among a client's k = n - 1 peers,
    `colluders` the number c of clients that may collude with the server.

    The server with c colluders holds c shares of each secret of an honest client; an active server
    may also tell some peers that the client survived (to collect t shares of its self-mask seed) and
    the others that it dropped (t shares of its mask key): both reach t only if 2t <= k + c. So t must
    exceed c, and against an active server (k + c) / 2. None picks t = max((n-1)//2 + 1, c + 1)
    against an honest-but-curious server, and against an active one (k + c)//2 + 1, or without a
    declared c Bonawitz et al.'s 2(n-1)//3 + 1, which then protects against c = 2t - k - 1 (about n/3).
    `clients` pins n: a client refuses a round announced for another n. Unpinned (None), a client takes the
    announced n, and a server that announces fewer clients (counting Sybils) lowers t: pin it outside a simulation.

    Raises (at the round):
        ValueError: naming t or colluders when t does not protect against the declared colluders.
    """

    t: int | None = None
    bits: int = 32
    active: bool = False
    colluders: int | None = None
    clients: int | None = None
    name: str = "secagg"

    def degree_and_threshold(self, n: int) -> tuple[int, int]:
        if n < 2:
            raise ValueError(f"SecAgg needs n >= 2 clients, found {n}")
        if self.clients is not None and n != self.clients:
            raise ValueError(f"n={n}: this SecAgg is configured for clients={self.clients}")
        k, c = n - 1, self.colluders
        if self.t is not None:
            t = self.t
        elif self.active:
            t = (k + c) // 2 + 1 if c is not None else 2 * k // 3 + 1
        else:
            t = max(k // 2 + 1, (c or 0) + 1)
        return k, check_threshold(k, t, self.active, colluders=c)

    def colluder_count(self, n: int, k: int, t: int) -> int:
        return self.colluders if self.colluders is not None else colluder_bound(k, t, self.active)

    def declared_colluding(self, n: int) -> int:
        """The declared colluders c (0 if none was declared)."""
        return self.colluders or 0

    def _collusion(self, n: int, k: int, t: int) -> str:
        c = self.colluder_count(n, k, t)
        bound = f"t={t} > (k + c)/2 = {(k + c) / 2:g}" if self.active else f"t={t} > c"
        return f"{_ACTIVE if self.active else _PASSIVE} with up to c={c} colluding clients ({bound}) learns nothing beyond the sum of the other included inputs"


@dataclass(frozen=True)
class SecAggPlus(_PairwiseMasking):
    """Bell et al.'s SecAgg+: masks and shares only along a random k-regular Harary graph.

    Build it with `for_clients(n, dropout=..., corrupt=...)`, which picks (k, t) for failure
    probabilities 2**-sigma (security) and 2**-eta (correctness) and states them in the report: with
    a fraction gamma = corrupt of clients colluding with the server, no client has more than
    c = corrupt_neighbours_bound(n, k, gamma, sigma) corrupt neighbours except with probability
    2**-sigma, and t > c (honest-but-curious server) or, on a sparse graph, t > k/2 + c (active server: it
    may claim any clients dropped, and two runs of k/2 graph positions cut the graph) is enforced.
    Built directly (no targets), the guarantee is per client: safe while it has at most
    colluder_bound(k, t, active, sparse) corrupt neighbours.

    Against an active server the graph seed is the hash of every signed advertisement
    (`RoundSetup.graph_seed_from`): the server cannot choose the graph, but it can re-draw it for
    free, by leaving out advertisements (it may tell each client a different subset) or through
    colluding clients' keys: one SHA-256 hash and one count of corrupt neighbours per try, so the
    number W of graphs it tries is bounded only by its computation (leaving out 5 of 1000 clients
    already gives 2**43 graphs; the roster, who sits at which position, is signed into every advertisement,
    so re-seating costs it a new round of advertisements, not a hash). 2**-sigma holds per graph; a server trying W graphs breaks one with
    probability up to W * 2**-sigma (at sigma = 40 a grinding server is within reach). `grind_bits`
    = log2 W chooses (k, t) for sigma + grind_bits, so that 2**-sigma holds against W tries.
    """

    n: int
    k: int
    t: int
    bits: int = 32
    active: bool = False
    targets: dict[str, float] = field(default_factory=dict)  # dropout, corrupt, sigma, eta when from for_clients
    name: str = "secagg+"

    @classmethod
    def for_clients(
        cls, n: int, *, bits: int = 32, dropout: float = 0.1, corrupt: float = DEFAULT_CORRUPT, sigma: float = 40, eta: float = 30, active: bool = False,
        grind_bits: float = 0.0,
    ) -> "SecAggPlus":
        """Chooses k and t from n, the dropout and corrupt fractions (see `choose_degree_and_threshold`), for
        a security failure 2**-(sigma + grind_bits) per graph: 2**-sigma against an active server that
        tries up to 2**grind_bits graphs (a passive server draws one).

        Raises:
            ValueError: naming grind_bits if it is negative (and see `choose_degree_and_threshold`).
        """
        if grind_bits < 0:
            raise ValueError(f"grind_bits must be >= 0, found {grind_bits}")
        k, t = choose_degree_and_threshold(n, dropout, corrupt, sigma + grind_bits, eta, active=active)
        targets = {"dropout": dropout, "corrupt": corrupt, "sigma": sigma, "eta": eta, **({"grind_bits": grind_bits} if grind_bits else {})}
        return cls(n=n, k=k, t=t, bits=bits, active=active, targets=targets)

    @property
    def _per_graph_sigma(self) -> float:
        """-log2 of the per-graph failure the corrupt-neighbour bound is taken at: sigma + grind_bits."""
        return self.targets.get("sigma", 40) + self.targets.get("grind_bits", 0.0)

    @classmethod
    def complete(cls, n: int, *, bits: int = 32, active: bool = False) -> "SecAggPlus":
        """The complete graph (k = n - 1) with SecAgg's default t, (n - 1)//2 + 1 or 2(n - 1)//3 + 1 against
        an active server, and no declared corrupt fraction: the guarantee is the deterministic one, up to
        c = colluder_bound(k, t, active) colluding clients (what `for_clients` cannot promise at small n)."""
        k = n - 1
        return cls(n=n, k=k, t=2 * k // 3 + 1 if active else k // 2 + 1, bits=bits, active=active)

    @classmethod
    def for_clients_or_complete(cls, n: int, *, bits: int = 32, dropout: float = 0.1, active: bool = False) -> "SecAggPlus":
        """`for_clients(n, ...)` at the default corrupt fraction, or `complete(n)` where no threshold meets it
        (n <= 11 at 5%), or where it would leave no dropout tolerance at the requested dropout (k - t < dropout k)."""
        try:
            plus = cls.for_clients(n, bits=bits, dropout=dropout, active=active)
        except ValueError:
            if n < 3:
                raise
            return cls.complete(n, bits=bits, active=active)
        return plus if plus.k - plus.t >= dropout * plus.k else cls.complete(n, bits=bits, active=active)

    def declared_colluding(self, n: int) -> int:
        """Clients of n that may collude with the server: ceil(corrupt n), at the default corrupt fraction
        when none was declared (the complete-graph fallback of `for_clients_or_complete` too)."""
        return math.ceil(self.targets.get("corrupt", DEFAULT_CORRUPT) * n)

    @property
    def _sampled(self) -> bool:
        """Whether the guarantee is the probabilistic one (a declared corrupt fraction, on any graph, also the complete one)."""
        return "corrupt" in self.targets

    def degree_and_threshold(self, n: int) -> tuple[int, int]:
        if n != self.n:
            raise ValueError(f"this SecAggPlus was configured for n={self.n} clients, found {n} inputs")
        if not (self.k == n - 1 or (self.k % 2 == 0 and 2 <= self.k < n)):
            raise ValueError(f"k must be even in [2, n) or n - 1, found {self.k}")
        return self.k, check_threshold(self.k, self.t, self.active, colluders=self.colluder_count(n, self.k, self.t) if self._sampled else None)

    def colluder_count(self, n: int, k: int, t: int) -> int:
        if self._sampled:
            return corrupt_neighbours_bound(n, k, self.targets["corrupt"], self._per_graph_sigma)
        return colluder_bound(k, t, self.active, sparse=k < n - 1)

    def _collusion(self, n: int, k: int, t: int) -> str:
        c = self.colluder_count(n, k, t)
        sparse = k < n - 1
        if self.active and sparse and not self._sampled:
            bound = f"t={t} > k/2 + c = {k // 2 + c}: it cannot cut the graph by claiming two runs of k/2 clients dropped"
        elif self.active:
            bound = f"t={t} > (k + c)/2 = {(k + c) / 2:g}"
        else:
            bound = f"t={t} > c"
        events = 1  # conditions each holding except with probability 2^-sigma (union-bounded below)
        natural = f"no two runs of k/2={k // 2} graph positions are all dropped or corrupt (a cut: the server would learn each part's sum"
        if sparse and self._sampled:  # review 15
            natural += ", union bound n^2 (gamma + delta)^k)"
            bound += (f"; {natural}, and none each hold t - k/2 corrupt clients, which would let it cut the graph by claiming the "
                      f"rest of them dropped (union bound 2^{claimed_cut_log2(n, k, t, self.targets['corrupt']):.1f}; review 19: the "
                      "natural cut holds against it too)" if self.active else f"; and {natural}")
            events += 2 if self.active else 1
        elif sparse and not self.active:
            bound += f"; and {natural})"
        who = _ACTIVE if self.active else _PASSIVE
        if self._sampled:
            sigma, per_graph = self.targets.get("sigma", 40), self._per_graph_sigma
            grind = (f" against a server that tries up to W = 2^{per_graph - sigma:g} graphs (2^-{per_graph:g} per graph; it may "
                     f"re-draw the graph for one hash a try, by leaving out advertisements or through colluders' keys, so W is bounded "
                     f"only by its computation; W graphs: W * 2^-{per_graph:g})") if self.active else ""
            odds = f"{events} x 2^-{sigma:g} (each condition 2^-{sigma:g}, union-bounded)" if events > 1 else f"2^-{sigma:g}"
            return (
                f"{who} with a {self.targets['corrupt']:.0%} fraction of corrupt clients learns nothing beyond the sum of the "
                f"included honest inputs: no client has more than c={c} corrupt neighbours ({bound}), except with probability "
                f"{odds}{grind}"
            )
        colluding = f"with up to c={c} colluding clients" if k == n - 1 else f"while each client has at most c={c} corrupt neighbours"
        return f"{who} learns nothing beyond the sum of the included honest inputs {colluding} ({bound})"

    def _extra_parameters(self) -> dict:
        return dict(self.targets)


MASKED = {"server": "aggregate", "released model": "released"}
BITS = Field(int, 32, lambda v: 2 <= v <= 62, "in [2, 62]")


_MASKING_TRAITS = Traits(observers=MASKED, output="sum", all_stages=True, splits=True)


@register("secagg", leaf=True, flow={"ring": ""}, fields={"bits": BITS, "active": Field(bool, False), "t": Field(int, None, lambda v: v >= 1, ">= 1"),
                                       "colluders": Field(int, None, lambda v: v >= 0, ">= 0")},
          traits=_MASKING_TRAITS, ring_bits=lambda values, ctx: values["bits"],
          about="SecAgg on the complete graph (t and colluders: SecAgg's defaults if unset); active: signatures and consistency check")
def _secagg(values: dict, ctx: StackContext) -> RingProtocol:
    """SecAgg for the participants, refused at build where its round would refuse every time (reviews 12, 13): fewer than 2
    participants, a t (given, or derived from colluders) above each client's participants - 1 neighbours, or one that does not
    protect against the declared colluders."""
    n, t, c = ctx.participants, values["t"], values["colluders"]
    if n < 2:
        raise StackError(f"SecAgg masks between pairs of clients: it needs participants >= 2, found {n}", layer=ctx.layer, position=ctx.position)
    if t is not None and t > n - 1:  # the complete graph gives each client n - 1 neighbours (review 12)
        raise StackError(f"t = {t} must be at most participants - 1 = {n - 1} (each client's neighbours)",
                         layer=ctx.layer, position=ctx.position, field="t")
    if t is None and c is not None and c > n - 2:  # the derived t exceeds c (and (k + c) / 2 if active): at most k = n - 1 needs c <= n - 2
        raise StackError(f"colluders = {c} must be at most participants - 2 = {n - 2}: the t it sets must exceed colluders and be at most "
                         f"each client's participants - 1 = {n - 1} neighbours", layer=ctx.layer, position=ctx.position, field="colluders")
    protocol = SecAgg(t=t, bits=values["bits"], active=values["active"], colluders=c, clients=n)
    try:
        protocol.degree_and_threshold(n)  # the round's own check, e.g. t against colluders or an active server
    except ValueError as exc:
        raise StackError(str(exc), layer=ctx.layer, position=ctx.position, field="t" if t is not None else "colluders") from None
    return protocol


@register("secagg+", leaf=True, flow={"ring": ""}, fields={"bits": BITS, "active": Field(bool, False), "dropout": Field(float, None, lambda v: 0 <= v < 1, "in [0, 1)")},
          traits=_MASKING_TRAITS, ring_bits=lambda values, ctx: values["bits"],
          about="SecAgg+ with (k, t) for the participants and dropout (default: the context's, at least 0.01), or the complete graph where none fits")
def _secagg_plus(values: dict, ctx: StackContext) -> RingProtocol:
    dropout = values["dropout"] if values["dropout"] is not None else max(ctx.dropout, 0.01)
    return SecAggPlus.for_clients_or_complete(ctx.participants, bits=values["bits"], dropout=dropout, active=values["active"])
