"""SecAgg (Bonawitz et al., CCS 2017) and SecAgg+ (Bell et al., CCS 2020): pairwise-masking secure
aggregation with dropout recovery, as configured recipes over `MaskingClient` / `MaskingServer`.

    >>> out = secure_sum(inputs, protocol=SecAggPlus.for_clients(100), dropouts=schedule, seed=1)
    >>> out.result          # sum mod 2**32 of the inputs of out.included
    >>> print(format_reports(out.reports))

SecAgg uses the complete graph: per client O(n + d) work and bytes up, server O(n**2 + n*d) at
dropout. SecAgg+ uses a random k-regular graph with k = O(log n): per client O(k + d), server
O(n*k + n*d*k) at dropout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protocols.driver import CostMeter, drive
from protocols.graph import choose_degree_and_threshold, harary_neighbours
from protocols.masking_client import MaskingClient
from protocols.masking_server import MaskingServer
from protocols.masking_setup import RoundSetup
from protocols.protocol import OpenRound, RemoteUnsupported, RingProtocol, RoundEnd
from protocols.report import Guarantee, LayerReport, Output, ThreatModel
from protocols.schedule import DropoutSchedule, Stage
from protocols.transport import InProcessTransport
from secagg.randomness import Randomness, SeededRandomness
from secagg.signatures import Signer


def _check_threshold(k: int, t: int, active: bool) -> int:
    """t shares among k neighbours: in [1, k]; against an active server in (k/2, k], so that no two
    disjoint t-sets of neighbours exist and the server cannot collect both secrets of a client."""
    low = k // 2 + 1 if active else 1
    if not low <= t <= k:
        raise ValueError(f"t must be in [{low}, {k}] for k={k} neighbours{' against an active server' if active else ''}, found {t}")
    return t


class _PairwiseMasking(RingProtocol):
    active: bool

    def degree_and_threshold(self, n: int) -> tuple[int, int]:
        raise NotImplementedError

    def _collusion(self, t: int) -> str:
        raise NotImplementedError

    @property
    def splits(self) -> bool:
        return not self.active  # active mode's signing keys come from a PKI this process simulates

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        n, d = self.check_inputs(inputs)
        if self.splits:
            return self.run_split(inputs, dropouts, rng, transport)
        opened, setup, neighbours = self._open(n, d, rng)
        signers = [Signer.generate(rng) for _ in range(n)]
        pki = [s.public_bytes() for s in signers]  # distributed out of band (PKI)
        opened.server = MaskingServer(setup, neighbours, pki)
        clients = [MaskingClient(i, setup, neighbours[i], inputs[i], rng.fork(f"client {i}"), signers[i], pki) for i in range(n)]
        meter = CostMeter(n)
        rejected = drive(opened.server, clients, opened.stages, dropouts, transport, meter)
        return opened.finish(RoundEnd(meter, transport, rejected, dropouts=dropouts))

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        if self.active:
            raise RemoteUnsupported("active SecAgg needs a PKI for the clients' signing keys; run it in process")
        return self._open(n, d, rng)[0]

    def client_role(self, i: int, row: np.ndarray, public: dict, rng: Randomness, measurements: dict) -> MaskingClient:
        setup = RoundSetup(n=public["n"], k=public["k"], t=public["t"], d=public["d"], ring=self.ring, active=False,
                           session=bytes.fromhex(public["session"]))
        neighbours = harary_neighbours(setup.n, setup.k, SeededRandomness(bytes.fromhex(public["graph_seed"])))
        self.ring.check(row, "row")
        return MaskingClient(i, setup, neighbours[i], row, rng, None, None)

    def _open(self, n: int, d: int, rng: Randomness) -> tuple[OpenRound, RoundSetup, list[frozenset[int]]]:
        k, t = self.degree_and_threshold(n)
        setup = RoundSetup(n=n, k=k, t=t, d=d, ring=self.ring, active=self.active, session=rng.bytes(8))
        graph_seed = rng.bytes(32)  # public: the server announces it, anyone can rebuild the graph
        neighbours = harary_neighbours(n, k, SeededRandomness(graph_seed))
        server = MaskingServer(setup, neighbours, None) if not self.active else None
        stages = tuple(s for s in Stage if self.active or s != Stage.CONSISTENCY_CHECK)
        public = {"n": n, "k": k, "t": t, "d": d, "bits": self.bits, "session": setup.session.hex(), "graph_seed": graph_seed.hex()}
        opened = OpenRound(public, server, stages, lambda end: self._finish(opened.server, setup, graph_seed, len(stages), end))
        return opened, setup, neighbours

    def _finish(self, server: MaskingServer, setup: RoundSetup, graph_seed: bytes, rounds: int, end: RoundEnd) -> Output:
        result, included = server.result()
        n, d, k, t = setup.n, setup.d, setup.k, setup.t
        dropped = {s.name.lower(): sum(1 for v in end.dropouts.drops.values() if v == s) for s in Stage} if end.dropouts else {}
        guarantee = Guarantee(
            threat_model=ThreatModel.ACTIVE_SERVER if self.active else ThreatModel.HONEST_BUT_CURIOUS_SERVER,
            server_learns=f"the sum mod 2^{self.bits} of the {len(included)} included inputs, and who dropped when",
            collusion=self._collusion(t),
            dropout_tolerance=k - t,
            exact=True,
            parameters={"n": n, "d": d, "bits": self.bits, "k": k, "t": t, **self._extra_parameters(), "graph_seed": graph_seed.hex()},
            notes="scheduled dropouts by stage: " + ", ".join(f"{s}={c}" for s, c in dropped.items() if c) if any(dropped.values()) else "",
        )
        report = LayerReport(self.name, end.meter.cost(end.transport, rounds=rounds), guarantee)
        return Output(result, included, (report,), tuple(end.rejected))

    def _extra_parameters(self) -> dict:
        return {}


@dataclass(frozen=True)
class SecAgg(_PairwiseMasking):
    """Bonawitz et al. on the complete graph. `t` is the share threshold among a client's n - 1 peers;
    None picks a majority, (n-1)//2 + 1, against an honest-but-curious server, and 2(n-1)//3 + 1
    against an active one, as the paper does."""

    t: int | None = None
    bits: int = 32
    active: bool = False
    name: str = "secagg"

    def degree_and_threshold(self, n: int) -> tuple[int, int]:
        if n < 2:
            raise ValueError(f"SecAgg needs n >= 2 clients, found {n}")
        t = self.t if self.t is not None else (2 * (n - 1) // 3 + 1 if self.active else (n - 1) // 2 + 1)
        return n - 1, _check_threshold(n - 1, t, self.active)

    def _collusion(self, t: int) -> str:
        return f"the server with up to {t - 1} clients learns nothing beyond the sum of the other included inputs"


@dataclass(frozen=True)
class SecAggPlus(_PairwiseMasking):
    """Bell et al.'s SecAgg+: masks and shares only along a random k-regular Harary graph.

    Build it with `for_clients(n, dropout=..., corrupt=...)`, which picks (k, t) for failure
    probabilities 2**-sigma (security) and 2**-eta (correctness) and states them in the report.
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
        cls, n: int, *, bits: int = 32, dropout: float = 0.1, corrupt: float = 0.05, sigma: float = 40, eta: float = 30, active: bool = False
    ) -> "SecAggPlus":
        """Chooses k and t from n, the dropout and corrupt fractions (see `choose_degree_and_threshold`)."""
        k, t = choose_degree_and_threshold(n, dropout, corrupt, sigma, eta, active=active)
        return cls(n=n, k=k, t=t, bits=bits, active=active, targets={"dropout": dropout, "corrupt": corrupt, "sigma": sigma, "eta": eta})

    def degree_and_threshold(self, n: int) -> tuple[int, int]:
        if n != self.n:
            raise ValueError(f"this SecAggPlus was configured for n={self.n} clients, found {n} inputs")
        if not (self.k == n - 1 or (self.k % 2 == 0 and 2 <= self.k < n)):
            raise ValueError(f"k must be even in [2, n) or n - 1, found {self.k}")
        return self.k, _check_threshold(self.k, self.t, self.active)

    def _collusion(self, t: int) -> str:
        if self.targets:
            return (
                f"a {self.targets['corrupt']:.0%} fraction of clients with the server learns nothing beyond the sum of the "
                f"included honest inputs, except with probability 2^-{self.targets['sigma']:g}"
            )
        return f"the server with fewer than t={t} of any client's neighbours"

    def _extra_parameters(self) -> dict:
        return dict(self.targets)
