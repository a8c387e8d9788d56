"""Hidden state: the global model stays encrypted at the aggregator across rounds.

    setup:       aggregator holds Enc(w_0); the key holder keeps its own copy
    round r:     client i encrypts weight * x_i and signs it
                 aggregator: Enc(w_r) = Enc(w_{r-1}) + sum_i Enc(weight * x_i)   (no decryption)
                 key holder: checks the signed inputs, adds them to its copy, decrypts w_r and sends
                 it (rounded and flooded) to the clients, who need it to train; never to the aggregator;
                 re-encrypts w_r and returns Enc(w_r) to the aggregator (the model's CKKS error resets)

So the aggregator never sees a model or an aggregate; the key holder and the clients see every
intermediate model. The hidden-state DP bound (`protocols.accounting.last_iterate_epsilon`) is
therefore a guarantee against the aggregator and against whoever sees only the final model; against
the key holder or a client, each round's model is released and distributed-DP accounting applies.
All of this assumes honestly generated ciphertexts: a Byzantine client that sends one decrypting to a
function of the secret key (e.g. (0, K)) receives the decrypted model and so could learn the key
itself, and with it every model and input under that key (`protocols.he.key_holder`).
`weight` is public (e.g. the server learning rate over the number of sampled clients), so CKKS
needs no multiplication and no level is consumed: the model can be updated for any number of rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from protocols.core.driver import CostMeter
from protocols.core.errors import BelowThreshold
from protocols.core.messages import Kind
from protocols.core.protocol import Protocol
from protocols.core.report import LayerReport, Output
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.stack import Field, StackContext, Traits, register
from protocols.core.transport import InProcessTransport
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, Reader, decode_frame, encode_frame
from protocols.he.aggregation import HeAggregation
from protocols.he.messages import Target, parse_plaintext
from secagg.he import EncryptedVector
from secagg.randomness import Randomness


@dataclass
class HiddenStateCKKS(HeAggregation):
    """Each `run` adds weight * (sum of the included inputs) to the encrypted model and returns the
    model as the clients receive it from the key holder (rounded and flooded)."""

    initial: np.ndarray | None = None
    weight: float = 1.0
    preset: str = "ckks-8192-sum"
    name: str = "hidden-state"
    _model: EncryptedVector | None = field(default=None, repr=False, compare=False)
    _holder_model: EncryptedVector | None = field(default=None, repr=False, compare=False)
    rounds: int = field(default=0, compare=False)
    scheme: ClassVar[str] = "ckks"
    round_type: ClassVar[str] = "hidden"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.initial is None or np.ndim(self.initial) != 1 or not np.all(np.isfinite(self.initial)):
            raise ValueError("initial must be the finite 1-D initial model")
        if not np.isfinite(self.weight) or self.weight == 0:
            raise ValueError(f"weight must be finite and non-zero, found {self.weight}")

    @property
    def splits(self) -> bool:
        return False  # its state (the encrypted model) lives across rounds in this process

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        x = self.check_inputs(inputs)
        n, d = x.shape
        if d != len(self.initial):
            raise ValueError(f"inputs have {d} coordinates, the model {len(self.initial)}")
        meter = CostMeter(n)
        public = self.keys.public
        if self._model is None:
            with meter.server():
                self._model = public.encrypt(np.asarray(self.initial, dtype=np.float64))
            self._holder_model = EncryptedVector.from_bytes(self.keys.secret, self._model.to_bytes(), length=d)  # sent once at setup
        session, signers, collector, rejected = self._collect(x, lambda row: public.encrypt(self.weight * row).to_bytes(), dropouts, rng, transport, meter)
        included = tuple(sorted(collector.inputs))
        if len(included) < self.min_clients:
            raise BelowThreshold(f"{len(included)} inputs, the key holder decrypts models after >= {self.min_clients}", party="server", stage="aggregate")
        with meter.server():
            self._model.add_(collector.total())
            request = self._request(collector, Target.MODEL, self._model.to_bytes())
        holder = self._key_holder(session, signers, d, model=self._holder_model)
        frame = self._frame(request, session)
        released = None
        for delivered in transport.carry(SERVER, KEY_HOLDER, frame):
            with meter.party("key holder"):
                released = holder.handle(delivered)
            self._deliver(released, session, n, dropouts, transport)
            refreshed = encode_frame(Frame(Kind.CIPHERTEXT, session, KEY_HOLDER, SERVER, holder.refreshed))
            for arriving in transport.carry(KEY_HOLDER, SERVER, refreshed):
                with meter.server():
                    frame = decode_frame(arriving, party="server", stage="model")
                    self._model = EncryptedVector.from_bytes(public, frame.payload, length=d)
        if released is None:
            raise BelowThreshold("no authentic decryption request reached the key holder", party="server", stage="decrypt")
        self._holder_model = holder.model
        self.rounds += 1
        guarantee = self.guarantee(
            n, d, len(included), holder.last_bound, rounds_hidden=self.rounds, **self.sizes(collector, d),
            server_learns="ciphertexts and the included set only (no model, no aggregate); the key holder and every client see each round's model",
        )
        report = LayerReport(self.name, meter.cost(transport, rounds=2), guarantee)
        return Output(parse_plaintext(Reader(released, party="client", stage="model"), d), included, (report,), tuple(rejected))

    def _deliver(self, payload: bytes, session: bytes, n: int, dropouts: DropoutSchedule, transport: InProcessTransport) -> None:
        """The key holder sends the released model to every client still taking part (bytes down)."""
        for u in range(n):
            if dropouts.active(u, Stage.UNMASKING):
                transport.carry(KEY_HOLDER, u, encode_frame(Frame(Kind.PLAINTEXT, session, KEY_HOLDER, u, payload)))


@register("hidden-state", leaf=True, fields={"min_clients": Field(int, 1, lambda v: v >= 1, ">= 1")},
          traits=Traits(observers={"server": "final model", "key holder": "aggregate", "clients": "aggregate", "released model": "final model"},
                        output="model", needs_initial=True, splits=False),
          about="the model stays encrypted at the aggregator; each round adds the mean (weight 1/m) of the inputs; needs the initial model")
def _hidden_state(values: dict, ctx: StackContext) -> Protocol:
    initial = ctx.require("initial", "the initial model (the context's `initial`)")
    return HiddenStateCKKS(initial=np.asarray(initial, dtype=np.float64), weight=1.0 / ctx.participants, min_clients=values["min_clients"])
