"""Hidden state: the global model stays encrypted at the aggregator across rounds.

    setup:       aggregator holds Enc(w_0) (its encryption of the public initial model); the key holder
                 makes its own copy the same way
    round r:     client i encrypts weight * x_i, signs it, and announces a box key it signs too
                 aggregator: relays the signed inputs and box keys (without recompute: adds
                 sum_i Enc(weight * x_i) to Enc(w_{r-1}) itself, no decryption)
                 key holder: checks the signed inputs, adds them to its copy, decrypts w_r, seals it
                 (rounded and flooded) to each client's box key (`protocols.he.release`): the clients
                 need it to train; re-encrypts w_r for the aggregator (the model's CKKS error resets)
                 aggregator: adopts Enc(w_r) and relays each client its box, which it cannot open

So the aggregator never sees a model or an aggregate; the key holder and the clients see every
intermediate model, and the key holder (which recomputes, the default) receives every client's own
ciphertext and can decrypt each input. The hidden-state DP bound (`protocols.accounting.last_iterate_epsilon`) is
therefore a guarantee against the aggregator and against whoever sees only the final model; against
a client, each round's model is released and distributed-DP accounting applies; against the key holder,
only each client's own noise share protects ("own share"; without recompute it sees the models only).
All of this assumes honestly generated ciphertexts: a Byzantine client that sends one decrypting to a
function of the secret key (e.g. (0, K)) receives the decrypted model and so could learn the key
itself, and with it every model and input under that key (`protocols.he.key_holder`).
`weight` is public (e.g. the server learning rate over the number of sampled clients), so CKKS
needs no multiplication and no level is consumed: the model can be updated for any number of rounds.

The round splits (`open_round` / `client_role`). With this process's key holder, `Output.result` is the
released model as the clients open it (this process simulates them); with a remote one
(`RoundEnd.key_holder`, e.g. a Flower SuperNode) the aggregator does not know the model: `Output.result`
is NaN and the boxes go to the clients through `RoundEnd.deliver`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from protocols.core.clear import ClearClient
from protocols.core.errors import BelowThreshold, MalformedMessage
from protocols.core.messages import Kind
from protocols.core.pki import ClientIdentity
from protocols.core.protocol import OpenRound, Protocol, RemoteUnsupported, RoundEnd
from protocols.core.report import LayerReport, Output
from protocols.core.stack import StackContext, StackError, Traits, register
from protocols.core.wire import SERVER, Frame, encode_frame
from protocols.he.aggregation import MIN_CLIENTS, HeAggregation, HeRound, announced, check_build_headroom, ciphertext_limit, signed_reply
from protocols.he.key_holder import KeyHolder
from protocols.he.messages import Target
from protocols.he.release import box_key_message, encode_box_keys, open_box, parse_model_release, usable_box_key
from secagg.agreement import X25519Agreement
from secagg.errors import InvalidTag, MalformedCiphertext
from secagg.he import EncryptedVector, HeContext, ckks_encodable, fresh_error_bound
from secagg.randomness import Randomness
from secagg.signatures import verify


class HiddenStateClient(ClearClient):
    """A hidden-state client: answers the request with its signed ciphertext, then opens the model the key
    holder sealed to its box key (`open_release`)."""

    def __init__(self, cid: int, session: bytes, reply: Callable[[], bytes], box: X25519Agreement, d: int) -> None:
        super().__init__(cid, Kind.CIPHERTEXT, reply, session)
        self._box, self._d = box, d
        self.model: np.ndarray | None = None

    def open_release(self, delivered: bytes) -> np.ndarray:
        """The model in this client's box (E | box, as the aggregator relays it).

        Raises:
            MalformedMessage: if the box does not open (altered, for another client or round).
        """
        party = f"client {self.cid}"
        try:
            self.model = open_box(self._box, self._session, self.cid, delivered, self._d, party=party, stage="model")
        except InvalidTag as exc:
            raise MalformedMessage(f"the model's box does not open: {exc}", party=party, stage="model") from None
        return self.model


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
    _holder: KeyHolder | None = field(default=None, repr=False, compare=False)  # this round's in-process key holder
    rounds: int = field(default=0, compare=False)
    scheme: ClassVar[str] = "ckks"
    round_type: ClassVar[str] = "hidden"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.initial is None or np.ndim(self.initial) != 1 or not np.all(np.isfinite(self.initial)):
            raise ValueError("initial must be the finite 1-D initial model")
        if not np.isfinite(self.weight) or self.weight == 0:
            raise ValueError(f"weight must be finite and non-zero, found {self.weight}")
        top, encodable = float(np.max(np.abs(self.initial), initial=0.0)), ckks_encodable(self.params)
        if not top + fresh_error_bound(self.params) < encodable:  # review 18: SEAL's untyped ValueError at the first round
            raise ValueError(f"initial: max |w_0| = {top:.6g} reaches {encodable:.6g}, the most one encryption of {self.preset!r} holds")

    @property
    def input_weight(self) -> float:
        return self.weight

    def key_holder(self, params: dict, **kw) -> KeyHolder:
        """`HeAggregation.key_holder`, remembered (`_finish` keeps its model if it released, even if its reply is lost)."""
        self._holder = super().key_holder(params, **kw)
        return self._holder

    def holder_model(self, context: HeContext) -> EncryptedVector:
        """The key holder's first copy of the model: its own encryption of the public initial model."""
        return context.encrypt(np.asarray(self.initial, dtype=np.float64))

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        if d != len(self.initial):
            raise ValueError(f"inputs have {d} coordinates, the model {len(self.initial)}")
        if self._model is None:
            self._model = self.holder_model(self.keys.public)
        return super().open_round(n, d, rng)

    def reported(self) -> dict:
        """The box key and its signature (hex), as `client_role` announces them."""
        return {self.name: {"box_key": str, "box_signature": str}}

    def client_role(self, i: int, row: np.ndarray, public: dict, rng: Randomness, measurements: dict,
                    identity: ClientIdentity | None = None) -> HiddenStateClient:
        """Client i's role: its signed ciphertext, and a fresh X25519 box key (from `rng`) announced with its
        long-term signature (`identity`), to which the key holder seals the model.

        Raises:
            Refused: without `identity` (this client's signing key).
        """
        x = np.array(row)  # a copy: what the check saw is what is encrypted when the request arrives (review 18)
        session, n = announced(public, i, len(x))
        self.check_encoding(n, x, i)
        signer, box = self._signer(i, identity), X25519Agreement.generate(rng.fork("box"))
        measurements[self.name] = {"box_key": box.public_bytes().hex(),
                                   "box_signature": signer.sign(box_key_message(session, i, box.public_bytes())).hex()}
        return HiddenStateClient(i, session, signed_reply(i, n, session, lambda: self._ciphertext(i, x), signer), box, len(x))

    def _ciphertext(self, i: int, row: np.ndarray) -> bytes:
        return self.keys.public.encrypt(self.weight * row).to_bytes()

    def _finish(self, current: HeRound, end: RoundEnd) -> Output:
        """One MODEL request with the clients' box keys; the re-encrypted model back, the boxes to the clients."""
        collector, n, d, session = current.collector, current.n, current.d, current.session
        included = tuple(sorted(collector.inputs))
        if len(included) < self.min_clients:
            raise BelowThreshold(f"{len(included)} inputs, the key holder decrypts models after >= {self.min_clients}", party="server", stage="aggregate")
        rejected = list(end.rejected)
        with end.meter.server():
            boxes = self._box_keys(current, rejected)
            # without recompute: Enc(w) + the sum, into the fresh total, so a refused round leaves Enc(w) as it was (review 18)
            payload = collector.total().add_(self._model).to_bytes() if not self.recompute else b""
            request = self._request(collector, Target.MODEL, payload, extra=encode_box_keys(boxes))
        local = end.key_holder is None
        if not local and end.deliver is None:  # checked before the key holder releases anything
            raise RemoteUnsupported("a remote key holder seals the model to the clients: the engine must pass RoundEnd.deliver")
        if local and self._holder_model is None:
            self._holder_model = self.holder_model(self.keys.secret)
        self._holder = None
        try:
            payload, bound, holder = self._exchange(request, current, end, **({"model": self._holder_model} if local else {}))
        finally:  # this process's key holder moves its model on with its release, whether or not its reply arrives (review 9)
            if local and self._holder is not None and self._holder.released is not None:
                self._holder_model = self._holder.model
        with end.meter.server():
            refreshed, sealed = parse_model_release(payload, n, d, ciphertext_limit(self.params, d), party="server", stage="model")
            try:
                self._model = EncryptedVector.from_bytes(self.keys.public, refreshed, length=d)
            except MalformedCiphertext as exc:
                raise MalformedMessage(f"the key holder's re-encrypted model is malformed: {exc}", party="server", stage="model") from None
        if local:  # this process also plays the clients: they open the model the key holder released
            result = holder.released
            for u, box in sealed.items():
                end.transport.carry(SERVER, u, encode_frame(Frame(Kind.PLAINTEXT, session, SERVER, u, box)))
        else:
            end.deliver(sealed)
            result = np.full(d, np.nan)  # the aggregator does not know the model
        self.rounds += 1
        guarantee = self.guarantee(
            n, d, len(included), bound, client_keys=current.source, rounds_hidden=self.rounds, sealed_to=len(sealed), **self.sizes(collector, d),
            server_learns="ciphertexts and the included set only (no model, no aggregate: the model reaches the clients sealed to their box keys); "
                          "the key holder and every client see each round's model"
                          + ("; the key holder receives every included client's own ciphertext (it recomputes) and can decrypt each input"
                             if self.policy.recompute else ""),
        )
        report = LayerReport(self.name, end.meter.cost(end.transport, rounds=2), guarantee)
        return Output(result, included, (report,), tuple(rejected))

    def _box_keys(self, current: HeRound, rejected: list) -> dict[int, tuple[bytes, bytes]]:
        """The box keys clients announced with a valid signature (under the seated directory's key); a client
        whose announcement fails, or whose signed key is no X25519 key the key holder can seal to (`usable_box_key`), is
        left without the model (named in `rejected`) rather than having the key holder refuse the round."""
        keys = {}
        for u, entry in sorted(current.announced.items()):
            try:
                public, sig = bytes.fromhex(entry["box_key"]), bytes.fromhex(entry["box_signature"])
                verify(current.client_keys[u], sig, box_key_message(current.session, u, public))
            except (KeyError, TypeError, ValueError, InvalidTag):
                rejected.append(MalformedMessage(f"client {u}: box key missing or not signed", party=f"client {u}", stage="model"))
                continue
            if not usable_box_key(public):  # signed, but no key the key holder can seal to (review 19)
                rejected.append(MalformedMessage(f"client {u}: box key of {len(public)} bytes or of low order", party=f"client {u}", stage="model"))
                continue
            keys[u] = (public, sig)
        return keys


@register("hidden-state", leaf=True, fields={"min_clients": MIN_CLIENTS},
          traits=Traits(observers={"server": "final model", "key holder": "own share", "clients": "aggregate", "released model": "final model"},
                        output="model", needs_initial=True, splits=True),
          about="the model stays encrypted at the aggregator; each round adds the mean (weight 1/m) of the inputs; needs the initial model")
def _hidden_state(values: dict, ctx: StackContext) -> Protocol:
    ctx.need_inputs({"min_clients": ("min_clients", values["min_clients"])})  # the key holder decrypts no fewer (review 13)
    initial = ctx.require("initial", "the initial model (the context's `initial`)")
    initial = np.asarray(initial, dtype=np.float64)
    try:
        protocol = HiddenStateCKKS(initial=initial, weight=1.0 / ctx.participants, min_clients=values["min_clients"])
    except ValueError as exc:  # e.g. an initial model past what one encryption holds (review 18)
        raise StackError(str(exc), layer=ctx.layer, position=ctx.position, field="initial") from None
    return check_build_headroom(protocol, ctx, float(np.max(np.abs(initial), initial=0.0)))
