"""The experiment through Flower's simulation engine: our protocol roles carried by Flower messages.

    pip install -e '.[flower]'
    secagg run --engine flower-sim [--set ...]

The ServerApp runs the same round loop as the in-process engine (`fl.experiment.run_experiment`),
with one difference: each round's aggregation (`FlowerRounds.aggregate`) opens the stack's round
(`Protocol.open_round`), sends every participant the model and the round's public parameters, and then
carries each stage's frames to the ClientApps and their replies back to the server role. A ClientApp
(a Flower SuperNode holding one data partition) trains locally and builds its role with
`Protocol.client_role` from its own update. Flower's Ray actors do not keep Python objects between
messages, so a node keeps in `context.state` its update, the public parameters, its randomness seed
and the frames received so far, and rebuilds its role on each message by replaying them (the role is
deterministic given these; the report counts only the CPU of handling the new frame). What a stack keeps
for a client between rounds (top-k's error-feedback residual: `Protocol.client_state`) lives in that
node's state too, under its own partition id, never at the server; a rebuild restores it as it was at
the round's start, so every replay encodes alike.

Same seeds, same results: in simulation the server draws the public parameters and each client's seed
exactly as `secure_sum` does in process (`rng.fork("links")`, `open_round`, then `rng.fork(f"client {i}")`),
so a simulation gives the in-process engine's aggregates and model. Handing parties their seeds is a
simulation device only: on the deployment engine every client draws its secrets from its own OS CSPRNG. The
key holder, in both engines, draws its flooding noise from its own CSPRNG and takes its policy from its own
configuration (deployment: --node-config `he-*` keys), never from the server; its ledger of releases lives
in its node state, per run and round.

Bytes in the report are the serialized sizes (protobuf) of the RecordDicts of the protocol's messages
that crossed Flower; the model download and the local-training message are not part of any layer.
Supported stacks: those whose every layer splits its rounds (`protocols.core.protocol`; the presets of
`fl.experiment.FLOWER_STACKS`, or a layer list of such layers, which reaches every node as the run config's
`stack` string). Clients of an HE protection and of active masking sign with long-term identities
(`protocols.core.pki`): on deployment each client node's own `signing-key` and `client-keys` folder, the key
holder's `he-client-keys`, the server's run config `client-keys` (each refused at start-up when missing); the
server seats the round's partitions as the roster. A simulation seats positions with simulated identities, as in
process. For an HE protection the key holder is one more SuperNode (partition id = number of clients): it
makes its keys, keeps the secret key (and Galois keys) in its node state, signs the public context with its own identity
(`he-signing-key`, bound to the run; clients verify it with their `he-key-holder-key` before encrypting, so a
ServerApp cannot substitute a key set of its own; in simulation a simulated key-holder identity anyone can sign as)
and answers the aggregator's decryption requests. Hidden state, who receives what: each client signs a fresh box
key with its long-term identity; the key-holder node verifies it against its own directory (through the roster),
keeps its own copy of the encrypted model and answers a MODEL request with the re-encrypted model (for the
ServerApp) and the model sealed to each client's box key; the ServerApp relays the boxes (`RoundEnd.deliver`,
message "release"), and each client trains the next round from the model it opened. The ServerApp never holds a
model: it records the loss and accuracy the clients measured (simulation) or NaN (deployment).
For a two-server protection the ServerApp is S0, and two more SuperNodes are the second server S1 (node config
`role="second-server"`, else partition id = number of clients) and the dealer (`role="dealer"`, else partition id =
clients + 1; a role is taken only from a node of a partition >= clients, see "When a node fails"); S0 relays every
frame between them and the clients (`fl.remote_two_server`). S1 signs each round key for the run and round (its node's
`second-server-signing-key`); a client seals S1's share only to a key whose signature verifies under S1's key from its
own node config (`second-server-key`, refused at start-up when missing; in simulation the simulated S1 identity anyone
can sign as) for this run and the round it joined, so a ServerApp that names a key of its own as S1's gets a refusal
(the client sends nothing; S0 records it as `Refused`), not a share.
Each two-server client signs its sealed share with its `signing-key` (seated by the roster, as the signing stacks above);
S1 verifies it under its own node config's `client-keys` (refused at start-up when missing) before opening it, and
takes part only while at least `min_clients` authenticated clients remain, so the ServerApp cannot seal inputs of its
own under the other clients' names to isolate one honest input (in simulation the simulated client keys: against no one).
On deployment a node pins stack, active and noise_multiplier in
its node config (`secagg flower-app` prints them; for masking also clients, sample_fraction and dropout, which decide n, k and t;
for two-server also f and the preset's fields, `node_pins`, which an
S1 or client node refuses to run without) and a node with a `signing-key` refuses a stack that does not
sign. Every node joins a round once (`_join`), under sessions no earlier round it joined used; the same model sent
in two rounds by a server that controls participation remains a differencing channel that only DP noise bounds.
Byzantine clients are refused (their attacks need every honest update).

When a node fails: a client node whose reply is an error (its ClientApp raised: a `Refused` of its own checks, a
crash) is excluded, as a client the in-process driver rejects: S0 names it in `Output.rejected` (`Refused`, party
"client u", the stage: "training" or the protocol's stage, its node id and the node's reason; `MalformedMessage`
naming the field and value for a reply without its record or fields, or with measurements other than those its stack's
layers report: `Protocol.reported`, checked in one place, `protocols.core.measurements`: at most 16 KiB of JSON, the
layers' names and fields exactly, finite seconds >= 0, a clip flag in {0, 1}) and sends it nothing more this round; a
node that does not answer is a dropout from that stage on; a node's second reply, and a reply from a node not asked,
are dropped. The round goes on as the in-process round with that client dropped at that stage: a failed training step
is a dropout before the round; after a masked input, the masking protocol's dropout recovery applies (its input stays
in the sum). A hidden-state client's release reply of another shape is named (`MalformedMessage`, stage "model"). What
ends the round, with a typed error whose message keeps the excluded client nodes' reasons: no client node left after
the training step (`BelowThreshold`), fewer clients than the protocol needs (its own error, e.g. `BelowThreshold`
under t; two-server: S1's stop, `Aborted`), a key-holder, second-server or dealer node that fails, answers nothing, or
sends a reply without its record or with a field that does not parse (`Aborted`, naming the party, the stage and its
node: `FlowerRounds._reply`; their refusals stay `Refused` / `Aborted`). Start-up stops (`Refused`, naming each node)
on a node's refusal, a hello without its `id` record or whose `partition` is no int or `role` no text, a partition
without a node or held by two, a role (second-server, dealer) claimed by a client's partition (< clients) or by two nodes, or one
node in both roles. A node's error reason is copied into S0's messages verbatim: the structured `party` names the
failing client, the text can be forged by it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import tenseal as ts
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.serde import recorddict_to_proto
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from fl.config import LOCAL_KEYS, TOP_KEYS, config_from
from fl.experiment import ExperimentConfig, ExperimentResult, build_stack, evaluation_set, local_datasets, robust_f, run_experiment
from fl.models import get_flat
from fl.remote_two_server import (
    ROLES,
    dealer_reply,
    new_round_key,
    node_identity_keys,
    second_server_client_keys,
    second_server_key,
    second_server_reply,
    two_server_nodes,
    two_server_protocol,
)
from fl.results import render, save, to_dict
from fl.stacks import is_preset, preset_fields
from fl.training import evaluate, local_update
from protocols.core.driver import CostMeter
from protocols.core.errors import Aborted, BelowThreshold, MalformedMessage, ProtocolError, Refused
from protocols.core.identity import client_ids
from protocols.core.measurements import is_finite_number, parse_measurements
from protocols.core.pki import ClientIdentity, KeyDirectory, configured_key, load_public_key, load_signer, simulated_key_holder_signer
from protocols.core.protocol import Protocol, RoundEnd
from protocols.core.report import Output
from protocols.core.schedule import DropoutSchedule
from protocols.core.wire import DEALER, KEY_HOLDER, SECOND_SERVER, SERVER, party_name
from protocols.he.aggregation import HeAggregation
from protocols.he.context_signature import check_context, sign_context
from protocols.he.hidden_state import HiddenStateCKKS
from protocols.he.policy import KeyHolderPolicy, ReleaseLedger, client_keys_from_config
from protocols.two_server.identities import RoundKeyPin
from protocols.two_server.remote import RemoteServers
from secagg import EncryptedVector, HeContext, SeededRandomness


def he_protocol(stack: Protocol) -> HeAggregation | None:
    """The stack's HE protocol, whose key holder is one more SuperNode (partition id = number of clients)."""
    while stack is not None and not isinstance(stack, HeAggregation):
        stack = getattr(stack, "inner", None)
    return stack


def supernodes(config: ExperimentConfig) -> int:
    """SuperNodes an experiment needs: one a client, plus the key holder for HE stacks, the second server and the
    dealer for two-server stacks."""
    return config.clients + ("key holder" in config.traits.observers) + 2 * two_server_nodes(config)


def _size(content: RecordDict) -> int:
    return recorddict_to_proto(content).ByteSize()


@dataclass
class Carrier:
    """Byte counts of one round's protocol messages, in the shape `CostMeter.cost` reads."""

    n: int
    bytes_up: list[int] = field(init=False)
    bytes_down: list[int] = field(init=False)
    bytes_between: dict = field(default_factory=dict)
    rejected: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bytes_up, self.bytes_down = [0] * self.n, [0] * self.n


@lru_cache(maxsize=4)
def _client_setup(config: ExperimentConfig, build: Callable[..., Protocol] = build_stack) -> tuple:
    """What every node derives from the configuration: every data partition, the model and the stack."""
    data, model = local_datasets(config)
    params = get_flat(model)
    return data, model, build(config, len(params), params)


@lru_cache(maxsize=4)
def _test_set(config: ExperimentConfig):
    """A client's copy of the test set, for the released model's figures (simulation)."""
    return evaluation_set(config)


def client_app(config: ExperimentConfig | None = None, build: Callable[..., Protocol] = build_stack) -> ClientApp:
    """The ClientApp; with `config=None` (deployment) each message reads it from the run's config. `build` makes the
    stack (as `fl.experiment.build_stack`), the same on every node and at the server."""
    app = ClientApp()
    simulated = config is not None  # only the simulation engine may hand a client its seed

    def current(context: Context) -> ExperimentConfig:
        return config or checked_against_node(config_from_run(context.run_config), dict(context.node_config))

    @app.query("hello")
    def hello(msg: Message, context: Context) -> Message:
        """The node's partition; on deployment, a client node of a stack whose clients sign also checks at start-up that its
        own identity (`node_identity`) and, for HE, the key holder's public key (`he-key-holder-key`) load, a client node of a
        two-server stack S1's public key (`second-server-key`), S1 and the dealer their identities and S1 its copy of
        the clients' keys (`client-keys`) (else `error`)."""
        reply = {"partition": int(context.node_config["partition-id"]), "role": str(context.node_config.get("role", ""))}
        if not simulated:
            run = config_from_run(context.run_config)
            stack = _client_setup(run, build)[2]
            try:
                if reply["partition"] < run.clients and signs(stack):
                    node_identity(dict(context.node_config))
                    if he_protocol(stack) is not None:
                        key_holder_key(dict(context.node_config), simulated)
                role = reply["role"] or dict(enumerate(ROLES)).get(reply["partition"] - run.clients, "")
                if two_server_protocol(stack) is not None:  # S1 and each client pin what decides S1's program
                    check_pinned(run, {"role": role, **dict(context.node_config)})
                if two_server_protocol(stack) is not None and role in ROLES:
                    node_identity_keys(dict(context.node_config), role, simulated)
                    if role == "second-server":
                        second_server_client_keys(dict(context.node_config), simulated)
                elif two_server_protocol(stack) is not None and reply["partition"] < run.clients:
                    second_server_key(dict(context.node_config), simulated)
            except Refused as exc:
                reply["error"] = f"Refused: {exc}"
        return Message(RecordDict({"id": ConfigRecord(reply)}), reply_to=msg)

    @app.query("s1_key")
    def s1_key(msg: Message, context: Context) -> Message:
        """The second server's node: a fresh key for the round S0 names, signed for it and the run (see fl.remote_two_server)."""
        _check_role(context, "second-server")
        state: dict = {}
        signer, _ = node_identity_keys(dict(context.node_config), "second-server", simulated)
        public = new_round_key(state, signer, context.run_id, int(msg.content.config_records["q"].get("round", 0)))
        context.state.config_records["s1"] = ConfigRecord(state)
        return Message(RecordDict({"q": ConfigRecord({"public": public, "signature": state["signature"]})}), reply_to=msg)

    @app.query("s1")
    def s1(msg: Message, context: Context) -> Message:
        """The second server's node: its half of the round, over the frames S0 relayed (see fl.remote_two_server)."""
        _check_role(context, "second-server")
        request = msg.content.config_records["q"]
        protocol = two_server_protocol(_client_setup(current(context), build)[2])
        state = dict(context.state.config_records.get("s1", ConfigRecord({})))
        dealer_key = node_identity_keys(dict(context.node_config), "second-server", simulated)[1]
        client_keys = second_server_client_keys(dict(context.node_config), simulated)
        reply = second_server_reply(protocol, state, str(request["public"]), list(request.get("frames", [])), dealer_key, client_keys)
        context.state.config_records["s1"] = ConfigRecord(state)
        return Message(RecordDict({"q": ConfigRecord(reply)}), reply_to=msg)

    @app.query("deal")
    def deal(msg: Message, context: Context) -> Message:
        """The dealer's node: one batch of correlated randomness (see fl.remote_two_server)."""
        _check_role(context, "dealer")
        start = time.thread_time()
        signer, s1_public = node_identity_keys(dict(context.node_config), "dealer", simulated)
        reply = dealer_reply(dict(msg.content.config_records["q"]), signer, s1_public, context.run_id)
        reply["cpu"] = time.thread_time() - start
        return Message(RecordDict({"q": ConfigRecord(reply)}), reply_to=msg)

    @app.query("keys")
    def keys(msg: Message, context: Context) -> Message:
        """The key holder node: generates its key set once, keeps the secret in its own state and sends the public
        context signed with its long-term identity, bound to the run (`protocols.he.context_signature`). On deployment
        it refuses to start without a readable `he-client-keys` and `he-signing-key`; a simulation signs with the
        simulated key-holder identity (`simulated_key_holder_signer`, public: anyone can sign as it)."""
        he = he_protocol(_client_setup(current(context), build)[2])
        try:
            signer = simulated_key_holder_signer() if simulated else _key_holder_signer(dict(context.node_config))
        except Refused as exc:
            return Message(RecordDict({"he": ConfigRecord({"error": f"Refused: {exc}"})}), reply_to=msg)
        if "he" not in context.state.config_records:
            secret = HeContext.generate(he.params, galois=he.needs_galois)  # Galois keys (robust distances) stay here
            context.state.config_records["he"] = ConfigRecord({"secret": secret.tenseal.serialize(save_secret_key=True)})
        public = _secret(he, context).tenseal.serialize(save_secret_key=False, save_galois_keys=False)  # Galois keys stay here
        return Message(RecordDict({"he": ConfigRecord({"public": public, "signature": sign_context(signer, context.run_id, public)})}), reply_to=msg)

    @app.query("decrypt")
    def decrypt(msg: Message, context: Context) -> Message:
        """The key holder node: checks and decrypts one request (see protocols.he.key_holder) under its own
        policy (deployment: its --node-config `he-*` keys, `KeyHolderPolicy.from_config`; simulation: the
        experiment's, as in process) and its ledger, kept in node state for every run and round. Client keys
        come from its node config `he-client-keys` (its own PKI, mandatory on deployment; in simulation the
        simulated directory), mapped through the roster the aggregator sends (position -> client id, each id
        at most once): keys the aggregator relays are never read. The ledger is read, checked and written under an exclusive lock on a
        file of the node's own (`_held_ledger`): Flower 1.42 runs each message as its own ClientApp task and does not
        promise one at a time, and two decrypt messages checked against one stored copy could both be released.
        Hidden state: the node keeps its own copy of the encrypted model in node state (its first copy its own
        encryption of the initial model the run's config gives), and its reply carries the re-encrypted model and
        the model sealed to each client's box key (`protocols.he.release`), never the model itself."""
        he = he_protocol(_client_setup(current(context), build)[2])
        secret = _secret(he, context)
        he.use_secret_context(secret)
        request = msg.content.config_records["d"]
        start = time.thread_time()
        policy = he.policy if config is not None else KeyHolderPolicy.from_config(context.node_config)
        try:  # a refusal of the ledger itself (its file missing) is an error reply too; the ledger is written either way
            with _held_ledger(context) as ledger:
                params = json.loads(request["params"])
                directory = KeyDirectory() if config is not None else client_keys_from_config(context.node_config)
                if directory is None:
                    raise Refused("no he-client-keys in this node's config", party="key holder", stage="decrypt")
                keys = dict(enumerate(directory.for_roster(params.get("roster"), party="key holder", stage="decrypt")))
                own = {"model": _held_model(he, secret, context)} if policy.round_type == "hidden" else {}  # its own copy, never the request's
                holder = he.key_holder(params, client_keys=keys, policy=policy, ledger=ledger, run=str(msg.metadata.run_id), **own)
                reply = {"payload": holder.handle(request["frame"]), "bound": holder.last_bound}
                if own and holder.released is not None:  # a MODEL release: the node's copy moves on with it, under the lock
                    _keep_model(context, holder.model.to_bytes())
        except (ProtocolError, KeyError, TypeError, ValueError) as exc:  # the aggregator's params are untrusted too
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        reply["cpu"] = time.thread_time() - start
        return Message(RecordDict({"d": ConfigRecord(reply)}), reply_to=msg)

    @app.train("update")
    def update(msg: Message, context: Context) -> Message:
        cfg, run = msg.content.config_records["round"], current(context)
        data, model, stack = _client_setup(run, build)
        if not simulated and context.node_config.get("second-server-key") and two_server_protocol(stack) is None:
            raise Refused(f"this node holds a second-server-key (provisioned for a two-server stack); the run config's stack={run.stack} "
                          "has no second server: refusing the downgrade", party="client node", stage="setup")
        if not simulated and context.node_config.get("signing-key") and not signs(stack):
            raise Refused(f"this node holds a signing-key (provisioned for a stack whose clients sign); the run config's stack={run.stack} "
                          f"active={run.active} does not sign: refusing the downgrade", party="client node", stage="setup")
        _join(context, int(cfg["round"]), json.loads(cfg["public"]), stack)
        if "he" in msg.content.config_records:  # the key holder's public context, for encryption: only if the key holder signed it
            he = msg.content.config_records["he"]
            check_context(key_holder_key(dict(context.node_config), simulated), context.run_id, he["public"], he.get("signature", b""), party="client node")
            context.state.config_records["he-public"] = ConfigRecord({"public": he["public"]})
        c = int(context.node_config["partition-id"])
        params = msg.content.array_records["model"]["params"].numpy()
        if "released" in context.state.array_records:  # hidden state: the model the key holder sealed to this client, not the server's
            params = context.state.array_records["released"]["params"].numpy()
        row = local_update(model, params, data[c], run.local, seed=run.seed * 100_003 + int(cfg["round"]) * 1_009 + c)
        context.state.array_records["update"] = ArrayRecord({"row": Array(row.astype(np.float32))})
        seed = cfg["seed"] if simulated and cfg["seed"] else os.urandom(32).hex()  # deployment: always the OS's, whatever was sent
        context.state.config_records["round"] = ConfigRecord({"public": cfg["public"], "seed": seed, "u": cfg["u"], "frames": []})
        held = context.state.array_records.get(HELD, ArrayRecord({}))  # what the stack keeps for this client between rounds
        context.state.array_records[BEFORE] = ArrayRecord({k: Array(v.numpy()) for k, v in held.items()})
        measurements: dict = {}
        _role(stack, context, measurements, simulated)
        context.state.array_records[HELD] = ArrayRecord({k: Array(np.asarray(v)) for k, v in stack.client_state(c).items()})
        return Message(RecordDict({"m": ConfigRecord({"measurements": json.dumps(measurements)})}), reply_to=msg)

    @app.query("release")
    def release(msg: Message, context: Context) -> Message:
        """Opens the model the key holder sealed to this client (hidden state) and keeps it for the next round's
        training. In simulation only, the reply carries its test loss and accuracy for the experimenter's record
        (a simulation device, as the seeds are); a deployment's client sends nothing of the model back."""
        run = current(context)
        _, model, stack = _client_setup(run, build)
        try:
            released = _role(stack, context, {}, simulated).open_release(msg.content.config_records["r"]["box"]).astype(np.float32)
        except (ProtocolError, AttributeError) as exc:
            return Message(RecordDict({"r": ConfigRecord({"error": str(exc)})}), reply_to=msg)
        context.state.array_records["released"] = ArrayRecord({"params": Array(released)})
        reply = dict(zip(("loss", "accuracy"), evaluate(model, released, _test_set(run)))) if simulated else {}
        return Message(RecordDict({"r": ConfigRecord(reply)}), reply_to=msg)

    @app.query("frame")
    def frame(msg: Message, context: Context) -> Message:
        stack = _client_setup(current(context), build)[2]
        role = _role(stack, context, {}, simulated)
        data = msg.content.config_records["f"]["frame"]
        start = time.thread_time()
        try:
            reply = {"frame": role.handle(data)}
        except ProtocolError as exc:
            reply = {"error": str(exc)}
        reply["cpu"] = time.thread_time() - start
        reply["aborted"] = bool(getattr(role, "aborted", False))
        state = context.state.config_records["round"]
        state["frames"] = list(state["frames"]) + [data]
        return Message(RecordDict({"f": ConfigRecord(reply)}), reply_to=msg)

    return app


NODE_KEYS = ("partition-id", "num-partitions", "signing-key", "client-keys", "he-key-holder-key", "he-signing-key", "role",
             "second-server-signing-key", "dealer-key", "dealer-signing-key", "second-server-key")  # identities and role, no experiment field


def _join(context: Context, r: int, public: dict, stack: Protocol) -> None:
    """Records that this node joins round `r`, refusing a round at or below the last one it joined (node state, per
    run), public parameters with a session (at any layer) that a round it joined before used (a masking server reusing
    a session across rounds; the consistency signatures bind each round's keys anyway, `RoundSetup.consistency_message`)
    and, for HE, a session whose round number (its first 4 bytes) is not `r`: a server cannot have one update
    summed twice under two participations by re-running a round. (The same model sent again under a new round number
    is a differencing channel no check can close: only DP bounds it.)

    Raises:
        Refused: naming the round, the last joined one or the session's."""
    joined = context.state.config_records.get("joined")
    if joined is not None and r <= int(joined["round"]):
        raise Refused(f"round {r}: this node already joined round {int(joined['round'])} of this run; refusing to compute an update again",
                      party="client node", stage="setup")
    sessions, level = [], public  # every layer's session, down to the innermost one (the HE client signs under it)
    while isinstance(level, dict):
        if "session" in level:
            sessions.append(str(level["session"]))
        level = level.get("inner")
    used = list(joined["sessions"]) if joined is not None and "sessions" in joined else []
    for session in sessions:
        if session in used:
            raise Refused(f"round {r}: the session {session[:20]!r} is one of an earlier round this node joined", party="client node", stage="setup")
    if he_protocol(stack) is not None:
        for session in sessions or [""]:
            if len(session) != 16 or not all(ch in "0123456789abcdef" for ch in session) or int(session[:8], 16) != r:
                raise Refused(f"round {r}: the session {session[:20]!r} is not one of round {r}", party="client node", stage="setup")
    context.state.config_records["joined"] = ConfigRecord({"round": r, "sessions": used + sessions})


def key_holder_key(node_config: dict, simulated: bool) -> bytes:
    """The key holder's Ed25519 verification key a client checks the public context with: on deployment the file of
    its own node config `he-key-holder-key` (`secagg keys` writes KEYS/key-holder.pub), in simulation the simulated one.

    Raises:
        Refused: naming `he-key-holder-key`, if it is missing or its file holds no Ed25519 public key."""
    if simulated:
        return simulated_key_holder_signer().public_bytes()
    return configured_key(node_config, "he-key-holder-key", load_public_key, party="client",
                          missing="HE clients encrypt only under a context the key holder signed (KEYS/key-holder.pub, see `secagg keys`)")


def _key_holder_signer(node_config: dict):
    """The deployment key holder's own identity, checked at start-up with its client keys.

    Raises:
        Refused: naming `he-client-keys` or `he-signing-key`, if missing or unreadable."""
    try:
        if client_keys_from_config(node_config) is None:
            raise Refused("the key holder node's config has no he-client-keys (the clients' public-key folder, see `secagg keys`): "
                          "it would count Sybil keys as clients", party="key holder", stage="setup")
    except ValueError as exc:
        raise Refused(str(exc), party="key holder", stage="setup") from None
    return configured_key(node_config, "he-signing-key", load_signer, party="key holder",
                          missing="clients refuse a public context it has not signed (KEYS/keys/key-holder.pem, see `secagg keys`)")


def signs(stack: Protocol) -> bool:
    """Whether the stack's clients sign with long-term identities: HE, two-server, and masking against an active server."""
    while getattr(stack, "inner", None) is not None and not isinstance(stack, HeAggregation):
        stack = stack.inner
    return isinstance(stack, HeAggregation) or two_server_protocol(stack) is not None or bool(getattr(stack, "active", False))


def node_identity(node_config: dict) -> ClientIdentity:
    """A deployment client's identity from its own node config: `signing-key` (its private key file) and
    `client-keys` (the public-key folder it verifies peers with), as `secagg keys` provisions them.

    Raises:
        Refused: naming the node config key that is missing, or the file that does not hold its key.
    """
    missing = [key for key in ("signing-key", "client-keys") if not node_config.get(key)]
    if missing:
        raise Refused(f"this stack's clients sign: the node config needs {' and '.join(missing)} (see `secagg keys`)", party="client node", stage="setup")
    try:
        return ClientIdentity.load(int(node_config["partition-id"]), str(node_config["signing-key"]), str(node_config["client-keys"]))
    except ValueError as exc:
        raise Refused(str(exc), party="client node", stage="setup") from None


NODE_PINS = ("stack", "active", "noise_multiplier")  # every node line `secagg flower-app` prints pins these


def node_pins(config: ExperimentConfig) -> dict[str, object]:
    """What every node line of `secagg flower-app` pins (`checked_against_node` then refuses a run config that differs):
    `NODE_PINS` and, for a two-server stack, what decides the servers' program and min_clients (default f + 2) from the
    run config: f (`robust_f`, stated: flower-app writes it into the run config too) and each experiment field the preset
    reads (`fl.stacks.preset_fields`: clip and rule; ddp+two-server also bits and mechanism); for a masking stack (SecAgg,
    SecAgg+), clients and sample_fraction, which decide the round's n and so its threshold t (a run config with a lower
    sample_fraction would have the node's SecAgg+ accept n = 5, t = 3 where 20 participants give t = 17), and dropout,
    from which SecAgg+ sizes its graph so that dropouts do not cut it (a run config stating dropout 0 where 30% drop
    gives k = 24 instead of 78 at n = 100: a cut with probability about 2^-23)."""
    pins = {key: getattr(config, key) for key in NODE_PINS}
    if config.traits.all_stages:  # the masking family (`fl.experiment.MASKING_STACKS`): n is the participants
        pins.update(clients=config.clients, sample_fraction=config.sample_fraction, dropout=config.dropout)
    if two_server_nodes(config):
        pins.update({key: getattr(config, key) for key in (preset_fields(config.stack) if is_preset(config.stack) else ())})
        pins["f"] = robust_f(config)
    return pins


def _two_server_because(config: ExperimentConfig, node_config: dict) -> str:
    """Why a node runs the second server or a two-server client ("" if it does not; never the dealer, which runs no
    rule): by its own config (`role` second-server, a `second-server-key`) or by the run's stack."""
    role = node_config.get("role")
    if role == "dealer":
        return ""
    if role == "second-server":
        return "role second-server"
    if node_config.get("second-server-key"):
        return "it holds a second-server-key"
    return f"the run's stack {config.stack} has a second server" if two_server_nodes(config) else ""


def check_pinned(config: ExperimentConfig, node_config: dict) -> None:
    """Raises Refused, naming the missing fields, unless a two-server node (`_two_server_because`) pins every field of
    `node_pins`: an unpinned S1 or client would take S0's run config for its f (hence min_clients) and rule."""
    why = _two_server_because(config, node_config)
    missing = [key for key in node_pins(config) if key not in node_config] if why else []
    if missing:
        raise Refused(f"this two-server node ({why}) does not pin {', '.join(missing)} in its config (what decides the servers' "
                      f"program and min_clients; `secagg flower-app` prints them in each node line): refusing to take the run "
                      f"config's word", party="client node", stage="setup")


def checked_against_node(config: ExperimentConfig, node_config: dict) -> ExperimentConfig:
    """The run's experiment, if every experiment field the node's own config pins (e.g. `--node-config
    "partition-id=0 noise_multiplier=0.8 dropout=0.1"`) has the same value in it; the stack a client
    builds (its threshold, its noise) then follows the node's values, and `Protocol.client_role`
    refuses public parameters that disagree with that stack.

    A key the check does not know (`noise-multiplier`, `Stack`, a protocol parameter such as `t`) is
    refused, not skipped: the node's pin would otherwise be silently lost. Known besides the experiment
    fields: the node's identity and the key holder's policy keys (`KeyHolderPolicy.NODE_CONFIG_KEYS`).
    A two-server S1 or client node must pin every field of `node_pins` (`check_pinned`).

    Raises:
        Refused: naming the field, the run's value and the node's, the unknown key, or the missing pins.
    """
    for key, value in node_config.items():
        if key in NODE_KEYS or key in KeyHolderPolicy.NODE_CONFIG_KEYS:
            continue
        if key not in TOP_KEYS + LOCAL_KEYS:
            raise Refused(f"node config key {key!r} is no experiment field ({', '.join(TOP_KEYS + LOCAL_KEYS)}), node identity "
                          f"({', '.join(NODE_KEYS)}) or key-holder policy key; refusing rather than ignoring it", party="client node", stage="setup")
        run = getattr(config.local if key in LOCAL_KEYS else config, key)
        try:
            pinned = config_from({key: value}, base=config)
        except ValueError as exc:  # the node's value does not fit the run's (f beside a stack without a rule)
            raise Refused(f"run config sets {key}={run!r}, this node's config {value!r}: {exc}", party="client node", stage="setup") from None
        if pinned != config:
            raise Refused(f"run config sets {key}={run!r}, this node's config {value!r}", party="client node", stage="setup")
    check_pinned(config, node_config)
    return config


def ledger_path(context: Context) -> Path:
    """The key holder node's ledger file: its node config `he-ledger-file` (one record across runs and restarts), else
    one a node and run under ~/.secagg/key-holder (a folder of the node's own, not the shared temporary one; the
    environment variable SECAGG_LEDGER_DIR names another, as the test suite does)."""
    configured = context.node_config.get("he-ledger-file")
    folder = Path(os.environ.get("SECAGG_LEDGER_DIR") or Path.home() / ".secagg" / "key-holder")
    default = folder / f"{context.node_id}-{context.run_id}.ledger.json"
    return Path(str(configured)) if configured else default


@contextlib.contextmanager
def _held_ledger(context: Context):
    """The key holder's ledger for one message, read and written back under an exclusive `flock` on
    `ledger_path` + ".lock", so concurrent messages see each other's releases; the file (written by atomic
    rename) is the record, and a copy stays in node state. A missing file while node state holds releases is
    refused; removing the node's own file and state together (nothing another party can do) resets it."""
    path = ledger_path(context)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            carried = str(context.state.config_records.get("ledger", ConfigRecord({"json": ""}))["json"])
            if not path.exists() and ReleaseLedger.from_json(carried).rounds:  # the record went missing: never start afresh
                raise Refused(f"the ledger file {path} is missing while node state holds releases", party="key holder", stage="decrypt")
            ledger = ReleaseLedger.from_json(path.read_text() if path.exists() else carried)
            try:
                yield ledger
            finally:
                text = ledger.to_json()
                _replace_file(path, text.encode())
                context.state.config_records["ledger"] = ConfigRecord({"json": text})
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_role(context: Context, role: str) -> None:
    """A node whose node config names its `role` acts only in that role (the message then fails at the ServerApp).

    Raises:
        Refused: naming the node's role and the one asked for.
    """
    mine = context.node_config.get("role")
    if mine is not None and mine != role:
        raise Refused(f"this node's role is {mine!r}, not {role!r}", party="client node", stage="setup")


def _secret(he: HeAggregation, context: Context) -> HeContext:
    """The key holder's secret context from its node state (parsed once a process: with Galois keys it is tens of MB)."""
    return _parsed_secret(he.params, context.state.config_records["he"]["secret"])


@lru_cache(maxsize=2)
def _parsed_secret(params, data: bytes) -> HeContext:
    return HeContext(params, ts.context_from(data))


def _model_path(context: Context) -> Path:
    """The hidden-state key holder node's model file, beside its ledger and read and written under the ledger's lock,
    one a run (the ledger may span runs, a model does not)."""
    path = ledger_path(context)
    return path.with_name(f"{path.name}.run{context.run_id}.model")


def _held_model(he: HiddenStateCKKS, secret: HeContext, context: Context) -> EncryptedVector:
    """The key holder node's copy of the encrypted model (called under the ledger's lock): from its model file, the
    record (review 20: Flower runs each message on a copy of node state and keeps the copy the later task returns, so a
    refused task could write back a model from before a release), else node state, else its own encryption of the
    initial model."""
    path = _model_path(context)
    if path.exists():
        return EncryptedVector.from_bytes(secret, path.read_bytes(), length=len(he.initial))
    if "he-model" not in context.state.config_records:
        return he.holder_model(secret)
    return EncryptedVector.from_bytes(secret, context.state.config_records["he-model"]["ct"], length=len(he.initial))


def _replace_file(path: Path, data: bytes) -> None:
    """Writes `data` to `path` by atomic rename (a reader sees the old file or the new one, never part of it)."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _keep_model(context: Context, ct: bytes) -> None:
    """Writes the key holder node's model (under the ledger's lock): its file, and a copy in node state."""
    _replace_file(_model_path(context), ct)
    context.state.config_records["he-model"] = ConfigRecord({"ct": ct})


HELD, BEFORE = "client-state", "client-state-before"  # node state: the stack's per-client state now, and at this round's start


def _role(stack: Protocol, context: Context, measurements: dict, simulated: bool):
    """This node's role for the round, rebuilt from its state and brought up to date by replaying its frames. The
    stack's per-client state (error-feedback memory) is restored to what it was at the round's start, so every
    rebuild encodes alike; the node's own partition id is its client id, whatever the server says. A signing
    stack's client gets its identity: on deployment its own (`node_identity`), in simulation the simulated
    identity of its position (the server seats positions: see `FlowerRounds.aggregate`). A two-server client is pinned
    (`RoundKeyPin`) to S1's key of its own node config (`second_server_key`), the run and the round it joined."""
    if "he-public" in context.state.config_records:
        he_protocol(stack).use_public_context(context.state.config_records["he-public"]["public"])
    state = context.state.config_records["round"]
    row = context.state.array_records["update"]["row"].numpy()
    c, u = int(context.node_config["partition-id"]), int(state["u"])
    stack.restore_client_state(c, {k: v.numpy() for k, v in context.state.array_records.get(BEFORE, ArrayRecord({})).items()})
    two_server = two_server_protocol(stack)
    if two_server is not None:  # S1's key from this node's own config, this run and the round it joined (`_join`)
        joined = int(context.state.config_records["joined"]["round"])
        two_server.pin_second_server(RoundKeyPin(second_server_key(dict(context.node_config), simulated), int(context.run_id), joined))
    identity = {}
    if signs(stack):
        identity["identity"] = ClientIdentity.simulated(u) if simulated else node_identity(dict(context.node_config))
    with client_ids({u: c}):
        role = stack.client_role(u, row, json.loads(state["public"]), SeededRandomness(bytes.fromhex(state["seed"])), measurements, **identity)
    for old in state["frames"]:
        try:
            role.handle(old)
        except ProtocolError:
            pass
    return role


def _first_replies(replies: Iterable[Message], position: dict[int, int], answered: set[int]) -> Iterator[tuple[int, Message]]:
    """(position, reply) for each asked node's first reply (`position`: node id -> position); a reply from a node not
    asked, or a node's second reply, is dropped. `answered` collects the positions that replied."""
    for reply in replies:
        u = position.get(reply.metadata.src_node_id)
        if u is None or u in answered:
            continue
        answered.add(u)
        yield u, reply


def _read(reply: Message, record: str, fields: dict[str, Callable], party: str, stage: str, *,
          optional: dict[str, Callable] | None = None, failed: type[ProtocolError] = Refused,
          malformed: type[ProtocolError] = MalformedMessage, refuses: bool = False) -> dict:
    """The fields of `party`'s reply (untrusted; a client's, or with `failed`, `malformed` = `Aborted` and `refuses` a
    non-client party's): its ConfigRecord `record`, each of `fields`, and each of `optional` it holds, parsed by its
    function (`_bytes`, `_text`, `_seconds`, ...: a missing field is parsed as None). With `refuses`, a record holding
    `error` not among `fields` is the party's refusal.

    Raises:
        failed: the node answered with an error (its app raised), naming its node id and the node's reason.
        malformed: no `record`, or a field that does not parse, naming the field, its value and why.
        Refused: with `refuses`, the party refused (its `error`)."""
    node = reply.metadata.src_node_id
    if reply.has_error():
        raise failed(f"its node {node} failed: {reply.error.reason}", party=party, stage=stage)
    answer = reply.content.config_records.get(record)
    if answer is None:
        raise malformed(f"its node {node} sent no {record!r} record", party=party, stage=stage)
    if refuses and "error" in answer and "error" not in fields:
        raise Refused(f"remote {party}: {answer['error']!s:.300}", party=party, stage=stage)
    parsed = {}
    for name, parse in [*fields.items(), *((n, p) for n, p in (optional or {}).items() if n in answer)]:
        try:
            parsed[name] = parse(answer.get(name))
        except (TypeError, ValueError) as exc:
            raise malformed(f"its node {node} sent {record}.{name} = {answer.get(name)!r:.40}: {exc!s:.80}", party=party, stage=stage) from None
    return parsed


@contextlib.contextmanager
def _naming(failed: list[ProtocolError]):
    """A `ProtocolError` that ends the round (below the protocol's threshold, a non-client party failing) raised again,
    same type, party and stage, its message followed by the reasons of the client nodes excluded this round (`failed`)."""
    try:
        yield
    except ProtocolError as exc:
        if not failed:
            raise
        reason = str(exc).removeprefix(f"{exc.party} at {exc.stage}: ")
        raise type(exc)(f"{reason} (client nodes excluded this round: {'; '.join(map(str, failed))})", party=exc.party, stage=exc.stage) from exc


def _seats(replies: list[tuple[int, Message]], config: ExperimentConfig) -> tuple[dict[int, int], dict[str, int | None]]:
    """(partition -> node, role -> node) from the nodes' hello replies ((node, reply), a node's first only: untrusted):
    each an `id` record with an int `partition` and a text `role` ("" or absent: none). S1 and the dealer (`ROLES`) are
    the nodes claiming the role, else those of partitions clients + k (k = 0 S1, 1 the dealer); a role a client
    partition claims, a role two nodes claim, or one node in both roles is refused.

    Raises:
        Refused: naming each node that refused or sent a malformed hello (its field and value), a partition without a
            node, a partition two nodes hold, or the nodes of a refused role claim."""
    refused, node_of, holders, claims = [], {}, {}, {role: [] for role in ROLES}
    for node, reply in replies:
        answer = None if reply.has_error() else reply.content.config_records.get("id")
        partition, role = (None, None) if answer is None else (answer.get("partition"), answer.get("role", ""))
        if reply.has_error() or answer is None or "error" in answer:
            refused.append(f"node {node}: {reply.error.reason if reply.has_error() else 'no id record' if answer is None else answer['error']}")
        elif isinstance(partition, bool) or not isinstance(partition, int):
            refused.append(f"node {node}: id.partition = {partition!r:.40}, not an int")
        elif not isinstance(role, str):
            refused.append(f"node {node}: id.role = {role!r:.40}, not text")
        else:
            node_of[partition] = node
            holders.setdefault(partition, []).append(node)
            if role in claims:
                claims[role].append((node, partition))
    if refused:
        raise Refused(f"nodes refused at start-up: {'; '.join(refused)}", party="server", stage="setup")
    missing = set(range(supernodes(config))) - set(node_of)
    if missing:
        raise Refused(f"no Flower node holds partitions {sorted(missing)} (the last one, for HE stacks, is the key holder; "
                      "for two-server stacks the last two are the second server and the dealer)", party="server", stage="setup")
    shared = {p: nodes for p, nodes in holders.items() if len(nodes) > 1}
    if shared:
        raise Refused("partitions held by more than one node: " + "; ".join(f"{p}: nodes {nodes}" for p, nodes in sorted(shared.items())),
                      party="server", stage="setup")
    roles: dict[str, int | None] = {}
    for k, role in enumerate(ROLES):
        claimed = claims[role]
        if len(claimed) > 1 or any(partition < config.clients for _, partition in claimed):
            raise Refused(f"role {role!r} claimed by " + ", ".join(f"node {node} (partition {p})" for node, p in claimed) +
                          f": one node of a partition >= {config.clients} (not a client's) may claim it", party="server", stage="setup")
        roles[role] = claimed[0][0] if claimed else node_of.get(config.clients + k)
    if two_server_nodes(config) and roles["second-server"] == roles["dealer"]:
        raise Refused(f"node {roles['dealer']} would be both the second server and the dealer", party="server", stage="setup")
    return node_of, roles


class FlowerRounds:
    """The server side: one aggregation round over Flower for `run_experiment`."""

    def __init__(self, grid: Grid, config: ExperimentConfig, client_keys: str | None = None) -> None:
        """`client_keys`: on deployment, the folder of the clients' public keys the server verifies signatures with
        (the run config's `client-keys`); a signing stack needs it. In simulation the server seats positions with
        simulated identities instead."""
        self.grid, self.config = grid, config
        nodes, deadline = list(grid.get_node_ids()), time.monotonic() + 120
        while len(nodes) < supernodes(config) and time.monotonic() < deadline:  # SuperNodes register asynchronously
            time.sleep(0.2)
            nodes = list(grid.get_node_ids())
        replies = grid.send_and_receive([Message(RecordDict(), dst_node_id=v, message_type="query.hello") for v in nodes])
        self.node_of, self.role_node = _seats(list(_first_replies(replies, {node: node for node in nodes}, set())), config)
        self.simulated = config.engine == "flower-sim"  # only a simulation hands parties their seeds
        self.directory = KeyDirectory() if self.simulated else (KeyDirectory.read(client_keys) if client_keys else None)
        self.he_public, self.he_signature = None, None
        self.released: tuple[float, float] | None = None  # hidden state, simulation: the released model's (loss, accuracy) as clients measured it
        if "key holder" in config.traits.observers:
            keys = self._reply(Message(RecordDict(), dst_node_id=self.node_of[config.clients], message_type="query.keys"), "he",
                               {"public": _bytes, "signature": _bytes}, KEY_HOLDER, "setup")
            self.he_public, self.he_signature = keys["public"], keys["signature"]

    def aggregate(self, r: int, chosen: np.ndarray, params: np.ndarray, stack: Protocol, dropouts: DropoutSchedule, seed: int) -> Output:
        """One round over the nodes of `chosen` (position u: partition chosen[u]); failing client nodes are excluded
        (see "When a node fails" in the module docstring).

        Raises:
            BelowThreshold: no client node left after the training step (naming each node and its reason), or the
                protocol's own, with too few clients left.
            Aborted: a key-holder, second-server or dealer node failed, answered nothing or a malformed reply (its node
                id and what was wrong), or S1 stopped the round.
            ProtocolError: whatever else the protocol raises to end the round; each of these errors' messages ends with the
                reasons of the client nodes excluded this round.
        """
        m, dim = len(chosen), len(params)
        if self.he_public is not None:
            he_protocol(stack).use_public_context(self.he_public)
        rng = SeededRandomness(seed)
        rng.fork("links")  # what secure_sum draws for its in-process transport
        meter, carrier, rejected, aborted = CostMeter(m), Carrier(m), [], set()
        two_server = two_server_protocol(stack)
        if two_server is not None:  # the second server's key for this round, from its own node
            key = self._query("second-server", "s1_key", {"round": r}, {"public": _hex, "signature": _hex}, carrier)
            two_server.use_second_server(key["public"], key["signature"], r)
        opened = stack.open_round(m, dim, rng)
        if opened.use_roster is not None:  # simulation: position u is simulated client u, as in process; deployment: the partitions
            if self.directory is None:
                raise Refused("this stack's clients sign: the run config needs client-keys (the clients' public-key folder, see `secagg keys`)",
                              party="server", stage="setup")
            opened.seat(list(range(m)) if self.simulated else [int(c) for c in chosen], self.directory)
        seeds = [(rng.bytes(32) + f"client {u}".encode()).hex() for u in range(m)]  # == rng.fork(f"client {u}")
        if not self.simulated:
            seeds = [""] * m  # a deployment's clients draw their own secrets from the OS
        model = ArrayRecord({"params": Array(params.astype(np.float32))})
        extra = {"he": ConfigRecord({"public": self.he_public, "signature": self.he_signature})} if self.he_public is not None else {}
        train = [Message(RecordDict({"model": model, "round": ConfigRecord({"round": r, "u": u, "seed": seeds[u], "public": json.dumps(opened.public)}), **extra}),
                         dst_node_id=self.node_of[int(c)], message_type="train.update") for u, c in enumerate(chosen)]
        measurements = {u: {} for u in range(m)}
        position = {self.node_of[int(c)]: u for u, c in enumerate(chosen)}
        failed: list[ProtocolError] = []  # the client nodes excluded this round, each named with its node's reason

        def exclude(u: int, error: ProtocolError) -> None:
            failed.append(error)
            rejected.append(error)
            aborted.add(u)

        meter.stage = "training"
        answered, schema = set(), stack.reported()
        for u, reply in _first_replies(self.grid.send_and_receive(train), position, answered):
            try:
                text = _read(reply, "m", {"measurements": _text}, f"client {u}", meter.stage)["measurements"]
                measurements[u] = parse_measurements(text, schema, sender=f"its node {reply.metadata.src_node_id}", party=f"client {u}", stage=meter.stage)
            except ProtocolError as exc:
                exclude(u, exc)
        aborted |= set(range(m)) - answered  # a node that did not answer: a dropout before the round
        if len(aborted) == m:
            raise BelowThreshold(f"no client node is left after the training step: {'; '.join(map(str, failed)) or 'none answered'}",
                                 party="server", stage="training")
        with _naming(failed):
            if opened.clients_ready is not None:
                opened.clients_ready(measurements)
            for stage in opened.stages:
                meter.stage = stage.name.lower()
                with meter.server():
                    requests = opened.server.requests()
                messages, asked = [], set()
                for u, frame in requests.items():
                    if dropouts.active(u, stage) and u not in aborted:
                        content = RecordDict({"f": ConfigRecord({"frame": frame})})
                        carrier.bytes_down[u] += _size(content)
                        messages.append(Message(content, dst_node_id=self.node_of[int(chosen[u])], message_type="query.frame"))
                        asked.add(u)
                replies = sorted((u, reply) for u, reply in _first_replies(self.grid.send_and_receive(messages), position, set()) if u in asked)
                for u, reply in replies:
                    asked.discard(u)
                    try:
                        answer = _read(reply, "f", {"cpu": _float, "aborted": _flag}, f"client {u}", meter.stage,
                                       optional={"frame": _bytes, "error": _text})
                    except ProtocolError as exc:
                        exclude(u, exc)
                        continue
                    carrier.bytes_up[u] += _size(reply.content)
                    meter.record_client(u, float(answer["cpu"]))
                    if answer["aborted"]:
                        aborted.add(u)
                    if "frame" not in answer:
                        if "error" in answer:  # the client role refused (e.g. S1's key): named, as the in-process driver names it
                            rejected.append(Refused(f"the client refused: {answer['error']}", party=f"client {u}", stage=meter.stage))
                        continue
                    try:
                        with meter.server():
                            opened.server.receive(answer["frame"], link=u)
                    except ProtocolError as exc:
                        rejected.append(exc)
                aborted |= asked  # asked and no answer: a dropout from this stage on
                with meter.server():
                    opened.server.close()
            link = self._two_server_link(meter, carrier, json.dumps(opened.public)) if two_server is not None else None
            return opened.finish(RoundEnd(meter, carrier, rejected, measurements, dropouts, key_holder=self._key_holder(meter, carrier),
                                          deliver=self._deliver(chosen, carrier, rejected), second_server=link))

    def evaluate(self, model, params: np.ndarray, test) -> tuple[float, float]:
        """(loss, accuracy) of the round's model. Hidden state: this ServerApp never holds the model, so the figures
        are those the clients measured on the model they opened (simulation), or NaN (deployment)."""
        if self.config.traits.output != "model":
            return evaluate(model, params, test)
        return self.released if self.released is not None else (float("nan"), float("nan"))

    def _deliver(self, chosen: np.ndarray, carrier: Carrier, rejected: list):
        """The channel to the clients after a round: payload u (a sealed model) to participant u; a client whose box
        does not open is named in `rejected`."""

        def deliver(payloads: dict[int, bytes]) -> None:
            messages = []
            for u, payload in payloads.items():
                content = RecordDict({"r": ConfigRecord({"box": payload})})
                carrier.bytes_down[u] += _size(content)
                messages.append(Message(content, dst_node_id=self.node_of[int(chosen[u])], message_type="query.release"))
            position = {self.node_of[int(chosen[u])]: u for u in payloads}
            for u, reply in _first_replies(self.grid.send_and_receive(messages), position, set()):
                try:
                    answer = _read(reply, "r", {}, f"client {u}", "model", optional={"error": _text, "loss": _float, "accuracy": _float})
                    if "error" not in answer and ("loss" in answer) != ("accuracy" in answer):
                        raise MalformedMessage(f"its node {reply.metadata.src_node_id} sent r.{'loss' if 'loss' in answer else 'accuracy'} "
                                               "without the other", party=f"client {u}", stage="model")
                except ProtocolError as exc:
                    rejected.append(exc)
                    continue
                if "error" in answer:
                    rejected.append(Refused(f"the model's box did not open: {answer['error']:.300}", party=f"client {u}", stage="model"))
                elif "loss" in answer:
                    self.released = (answer["loss"], answer["accuracy"])

        return deliver

    def _reply(self, message: Message, record: str, fields: dict[str, Callable], party: int, stage: str,
               carrier: Carrier | None = None) -> dict:
        """The reply of a non-client party's node (`party`: S1, the dealer or the key holder; untrusted like any node) to
        `message`, its bytes counted between S0 and it in `carrier`, read by `_read`: its ConfigRecord `record`, each of
        `fields` parsed by its function (`_bytes`, `_hex`, `_seconds`, ...). A record holding `error` other than among
        `fields` is the party's refusal.

        Raises:
            Aborted: naming the party, the stage and its node: no reply, an error reply (the node's reason), no `record`,
                or a field missing or that does not parse (naming the field and its value).
            Refused: the party refused (its `error`)."""
        node, name = message.metadata.dst_node_id, party_name(party)
        if carrier is not None:
            carrier.bytes_between[(SERVER, party)] = carrier.bytes_between.get((SERVER, party), 0) + _size(message.content)
        replies = [r for r in self.grid.send_and_receive([message]) if r.metadata.src_node_id == node]
        if not replies:
            raise Aborted(f"its node {node} sent no reply", party=name, stage=stage)
        if carrier is not None and not replies[0].has_error():
            carrier.bytes_between[(party, SERVER)] = carrier.bytes_between.get((party, SERVER), 0) + _size(replies[0].content)
        return _read(replies[0], record, fields, name, stage, failed=Aborted, malformed=Aborted, refuses=True)

    def _query(self, role: str, kind: str, record: dict, fields: dict[str, Callable], carrier: Carrier) -> dict:
        """One query to the node of `role` ("second-server" or "dealer"), its reply parsed as `_reply` does."""
        message = Message(RecordDict({"q": ConfigRecord(record)}), dst_node_id=self.role_node[role], message_type=f"query.{kind}")
        return self._reply(message, "q", fields, SECOND_SERVER if role == "second-server" else DEALER, kind, carrier)

    def _two_server_link(self, meter: CostMeter, carrier: Carrier, public: str) -> RemoteServers:
        """S0's link to the second server's and the dealer's nodes (protocols.two_server.remote)."""

        def ask(frames: list[bytes]) -> tuple[list[bytes], str | None]:
            answer = self._query("second-server", "s1", {"public": public, "frames": list(frames)},
                                 {"cpu": _seconds, "frames": _frames, "error": _text}, carrier)
            meter.record_party("second server", answer["cpu"])
            return answer["frames"], answer["error"] or None

        def deal(kind: str, args: tuple, index: int) -> tuple[bytes, bytes]:
            answer = self._query("dealer", "deal", {"kind": kind, "args": json.dumps(list(args)), "index": index, "public": public},
                                 {"cpu": _seconds, "seed": _bytes, "sealed": _bytes}, carrier)
            meter.record_party("dealer", answer["cpu"])
            return answer["seed"], answer["sealed"]

        return RemoteServers(ask, deal)

    def _key_holder(self, meter: CostMeter, carrier: Carrier):
        """The channel to the key holder node: a request frame and its parameters out, (payload, error bound) back."""

        def ask(frame: bytes, params: dict) -> tuple[bytes, float]:
            message = Message(RecordDict({"d": ConfigRecord({"frame": frame, "params": json.dumps(params)})}),
                              dst_node_id=self.node_of[self.config.clients], message_type="query.decrypt")
            answer = self._reply(message, "d", {"cpu": _seconds, "payload": _bytes, "bound": _seconds}, KEY_HOLDER, "decrypt", carrier)
            meter.record_party("key holder", answer["cpu"])
            return answer["payload"], answer["bound"]

        return ask


def _instance(kind: type, what: str) -> Callable:
    """The parse function of a field that must be a `kind` (the value itself; TypeError "not `what`" otherwise)."""

    def parse(value):
        if not isinstance(value, kind):
            raise TypeError(f"not {what}")
        return value

    return parse


_bytes, _text, _float, _flag = _instance(bytes, "bytes"), _instance(str, "text"), _instance(float, "a float"), _instance(bool, "a bool")


def _hex(value) -> bytes:
    return bytes.fromhex(_text(value))


def _seconds(value) -> float:
    """A finite number >= 0 (CPU seconds, an error bound)."""
    if not is_finite_number(value) or value < 0:
        raise ValueError("not a finite number >= 0")
    return float(value)


def _frames(value) -> list[bytes]:
    if not isinstance(value, list) or not all(isinstance(frame, bytes) for frame in value):
        raise TypeError("not a list of bytes")
    return list(value)


def config_from_run(run_config: dict) -> ExperimentConfig:
    """The experiment a deployment runs: the app's [tool.flwr.app.config] (see `write_app`), minus `out` and `client-keys`."""
    values = {k: v for k, v in dict(run_config).items() if k not in ("out", "client-keys")}
    return config_from({**values, "engine": "flower-deployment"})


def _deployment_main(grid: Grid, context: Context) -> None:
    config = config_from_run(context.run_config)
    keys = context.run_config.get("client-keys")
    result = run_experiment(config, remote=FlowerRounds(grid, config, str(keys) if keys else None))
    folder = save(result, Path(str(context.run_config.get("out", "results/flower-deployment"))))
    print(render(to_dict(result)), flush=True)
    print(f"results: {folder}", flush=True)


deployment_server_app = ServerApp()
deployment_server_app.main()(_deployment_main)
deployment_client_app = client_app()


def write_app(folder: Path, values: dict, out: Path, client_keys: Path | None = None) -> Path:
    """A Flower App project for `flwr run`: its pyproject names this module's deployment apps and carries the
    experiment's fields (`values`, e.g. from `fl.run_commands.build_config`) as the run config, with the server's
    copy of the clients' public-key folder (`client_keys`, as `client-keys`) for the stacks whose clients sign."""
    folder.mkdir(parents=True, exist_ok=True)
    extra = {"out": str(out), **({"client-keys": str(client_keys)} if client_keys else {})}
    fields = "\n".join(f"{k} = {json.dumps(v)}" for k, v in {**values, **extra}.items() if k != "engine")
    (folder / "pyproject.toml").write_text(f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "secagg-fl-app"
version = "1.0.0"
description = "The secagg-fl experiment as a Flower App (components live in the installed fl package)"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "secagg-fl"

[tool.flwr.app.components]
serverapp = "fl.flower_engine:deployment_server_app"
clientapp = "fl.flower_engine:deployment_client_app"

[tool.flwr.app.config]
{fields}
""")
    return folder


def run_flower_simulation(config: ExperimentConfig, on_round=None, *, build: Callable[..., Protocol] = build_stack) -> ExperimentResult:
    """`run_experiment` with every client a Flower SuperNode of the simulation engine (Ray); `build` makes the stack
    (as `fl.experiment.build_stack`) at the server and on every node, so it must be importable by Ray's workers."""
    holder: dict = {}
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        holder["result"] = run_experiment(config, on_round, remote=FlowerRounds(grid, config), build=build)

    run_simulation(server_app=server, client_app=client_app(config, build), num_supernodes=supernodes(config),
                   backend_config={"client_resources": {"num_cpus": 1}})
    if "result" not in holder:
        raise RuntimeError("the Flower simulation ended without a result (see its log above)")
    return holder["result"]


