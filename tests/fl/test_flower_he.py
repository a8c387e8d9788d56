"""HE stacks on Flower, with every node's ClientApp called in this process as a SuperNode calls it (a grid that
hands each message to its node's app and keeps every reply the ServerApp receives): hidden state keeps the model
from the ServerApp on both engines, and the key-holder node's robust policy is its own."""

import json
import os

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common.serde import recorddict_to_proto
from flwr.supercore.task_identity import TaskIdentity
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fl.experiment import ExperimentConfig, run_experiment
from fl.flower_engine import FlowerRounds, client_app, he_protocol
from protocols.core.messages import Kind
from protocols.core.pki import provision, provision_key_holder
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.key_holder import accepted_distances
from protocols.he.messages import DecryptRequest, Target, digest, signed_message
from protocols.he.policy import KeyHolderPolicy, session_of
from protocols.he.release import open_box, parse_model_release
from protocols.robust.rules import krum_select
from protocols.testing import AggregatorStep, aggregator_requests, check_releases
from secagg.agreement import X25519Agreement
from secagg.errors import InvalidTag
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

RUN = {"data": "breast_cancer", "model": "logreg", "clients": 3, "rounds": 2, "dropout": 0.0, "seed": 0}


class LocalGrid:
    """A Flower Grid whose nodes are ClientApps of this process; `received` keeps every reply, `sent` every message."""

    def __init__(self, app, contexts: dict[int, Context]) -> None:
        self.app, self.contexts, self.sent, self.received = app, contexts, [], []

    def get_node_ids(self):
        return list(self.contexts)

    def send_and_receive(self, messages):
        self.sent += list(messages)
        replies = [self.app(m, self.contexts[m.metadata.dst_node_id]) for m in messages]
        self.received += replies
        return replies


@pytest.fixture
def task(monkeypatch):
    for name, value in (("_run_id", 7), ("_task_id", 1), ("_node_id", 0)):  # what a SuperLink sets before a ServerApp runs
        monkeypatch.setattr(TaskIdentity, name, value)


def _grid(config: ExperimentConfig, tmp_path, *, deployed: bool, holder_config: dict | None = None) -> LocalGrid:
    """Deployed: keys provisioned as `secagg keys` does (each client node its own key file and the key holder's
    public key, the key holder its he-client-keys folder and its signing key; `client_keys`, the server's copy)."""
    nodes = config.clients + 1
    run_config = {**RUN, "stack": config.stack}
    contexts, folder = {}, tmp_path / "keys"
    if deployed:
        provision(folder, config.clients, SeededRandomness(13))
    for v in range(1, nodes + 1):
        node_config = {"partition-id": v - 1, "num-partitions": nodes}
        if deployed:
            node_config |= ({"he-client-keys": str(folder / "clients"), "he-signing-key": str(folder / "keys" / "key-holder.pem")} if v == nodes else
                            {"signing-key": str(folder / "keys" / f"{v - 1}.pem"), "client-keys": str(folder / "clients"),
                             "he-key-holder-key": str(folder / "key-holder.pub")})
        if v == nodes:
            node_config |= {"he-ledger-file": str(tmp_path / "ledger.json"), **(holder_config or {})}
        contexts[v] = Context(run_id=7, node_id=v, node_config=node_config, state=RecordDict(), run_config=run_config)
    grid = LocalGrid(client_app(None if deployed else config), contexts)
    grid.client_keys = str(folder / "clients") if deployed else None
    return grid


def _holds(data: bytes, values: np.ndarray) -> tuple[bool, bool]:
    """Whether `data` holds `values` as consecutive float32 (exactly), or as consecutive float64 within the float32
    rounding (what the key holder sealed), at any byte offset."""
    as_f32 = values.astype("<f4").tobytes() in data
    for offset in range(8):
        window = np.nan_to_num(np.frombuffer(data[offset: offset + (len(data) - offset) // 8 * 8], "<f8"), nan=0.0, posinf=0.0, neginf=0.0)
        close = [np.abs(window[k: len(window) - len(values) + 1 + k] - v) <= 1e-7 * max(1.0, abs(v)) for k, v in enumerate(values)]
        if np.any(np.logical_and.reduce(close)):
            return as_f32, True
    return as_f32, False


def _bytes(messages) -> bytes:
    return b"".join(recorddict_to_proto(m.content).SerializeToString() for m in messages)


@pytest.mark.parametrize("deployed", [False, True])
def test_the_server_app_never_receives_the_hidden_state_model(task, tmp_path, deployed):
    """Who receives what: the key-holder node sends the ServerApp the re-encrypted model and one sealed box a client;
    each client opens its own. The ServerApp holds no secret key, its result is NaN, and no reply it receives carries
    a model's values (float32 as clients train on them, or the float64 the key holder sealed); in simulation the clients
    report the model's test loss and accuracy, in deployment nothing."""
    config = ExperimentConfig(engine="flower-deployment" if deployed else "flower-sim", stack="hidden-state", **RUN)
    grid = _grid(config, tmp_path, deployed=deployed, holder_config={"he-round-type": "hidden", "he-min-clients": 2})  # the run's: a node refuses another (review 14)
    rounds = FlowerRounds(grid, config, grid.client_keys)
    models, aggregators = [], []
    original = rounds.aggregate

    def aggregate(r, chosen, params, stack, dropouts, seed):
        out = original(r, chosen, params, stack, dropouts, seed)
        released = [grid.contexts[v].state.array_records["released"]["params"].numpy() for v in range(1, config.clients + 1)]
        assert all(np.array_equal(m, released[0]) for m in released)  # every client opened the same model
        models.append(released[0])
        aggregators.append(he_protocol(stack))
        assert np.all(np.isnan(out.result))
        return out

    rounds.aggregate = aggregate
    result = run_experiment(config, remote=rounds)
    assert [r.included for r in result.rounds] == [(0, 1, 2)] * 2 and len(models) == 2
    assert all(h.keys.secret is None for h in aggregators)  # the ServerApp's contexts are public: it cannot decrypt
    received = _bytes(grid.received)
    for model in models:
        assert _holds(received, model[:3]) == (False, False), "a reply to the ServerApp carries the model"
    assert _holds(received + np.float64(models[-1][:3]).astype("<f8").tobytes(), models[-1][:3]) == (False, True)  # the search finds one
    holder_replies = [m for m in grid.received if m.metadata.message_type == "query.decrypt"]
    assert len(holder_replies) == 2
    for reply in holder_replies:
        _, boxes = parse_model_release(reply.content.config_records["d"]["payload"], 3, len(models[0]), 1 << 24, party="test", stage="test")
        assert sorted(boxes) == [0, 1, 2]
        with pytest.raises(InvalidTag):  # the ServerApp's own X25519 key does not open a client's box
            open_box(X25519Agreement.generate(SeededRandomness(1)), b"\0" * 8, 0, boxes[0], len(models[0]), party="test", stage="test")
    figures = [m.content.config_records["r"] for m in grid.received if m.metadata.message_type == "query.release"]
    if deployed:
        assert all(not dict(f) for f in figures) and all(np.isnan(r.loss) for r in result.rounds)
    else:
        assert all(np.isfinite(r.loss) and 0 < r.accuracy <= 1 for r in result.rounds)
        assert result.rounds[-1].loss == pytest.approx(float(figures[-1]["loss"]))


SIGNERS = [Signer.generate(SeededRandomness(4).fork(str(i))) for i in range(4)]  # the clients' long-term keys
CLIENT_KEYS = {i: s.public_bytes() for i, s in enumerate(SIGNERS)}


@pytest.fixture(scope="module")
def robust_node(tmp_path_factory):
    """The key-holder node of a deployment whose node config declares a robust policy and its clients' keys
    (`he-client-keys`, inline), with its keys made."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (("_run_id", 7), ("_task_id", 1), ("_node_id", 0)):
            patch.setattr(TaskIdentity, name, value)
        app = client_app(None)
        folder = tmp_path_factory.mktemp("kh")
        node_config = {"partition-id": 3, "num-partitions": 4, "he-ledger-file": str(folder / "ledger.json"),
                       "he-signing-key": str(provision_key_holder(folder, SeededRandomness(14)).parent / "keys" / "key-holder.pem"),
                       "he-round-type": "robust", "he-rule": "multi_krum", "he-f": 1, "he-min-clients": 2, "he-norm-bound": 1.0,
                       "he-client-keys": json.dumps({str(i): k.hex() for i, k in CLIENT_KEYS.items()})}
        context = Context(run_id=7, node_id=4, node_config=node_config, state=RecordDict(), run_config={**RUN, "stack": "ckks-robust"})
        public = app(Message(RecordDict(), dst_node_id=4, message_type="query.keys"), context).content.config_records["he"]["public"]
        yield app, context, public


def test_a_server_app_that_runs_another_robust_rule_is_refused_by_name(robust_node):
    """The node's rule, f, m and norm_bound are its config's; an aggregator that states other ones (here f = 2) is
    refused before any decryption, naming the field, and the ledger records nothing."""
    from secagg.he import HeContext
    from secagg.he_params import preset

    app, context, public = robust_node
    public_ctx = HeContext.from_bytes(preset("ckks-8192"), public)
    assert not public_ctx.has_galois_keys  # the Galois keys stay with the key holder
    signers = SIGNERS[:3]
    session = session_of(1, b"mism")
    cts = [public_ctx.encrypt(np.full(10, 0.1 * i)).to_bytes() for i in range(3)]
    manifest = {i: (digest(cts[i]), signers[i].sign(signed_message(session, i, 3, digest(cts[i])))) for i in range(3)}
    frame = encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER,
                               DecryptRequest(Target.SCALARS, manifest, b"", dict(enumerate(cts))).encode()))
    for asks, field in (({"round_type": "robust", "rule": "multi_krum", "f": 2, "m": None, "norm_bound": 1.0}, "f=2"),
                        ({"round_type": "sum"}, "round_type='sum'")):
        params = {"session": session.hex(), "length": 10, "asks": asks, "roster": [0, 1, 2]}
        content = RecordDict({"d": ConfigRecord({"frame": frame, "params": json.dumps(params)})})
        answer = app(Message(content, dst_node_id=4, message_type="query.decrypt"), context).content.config_records["d"]
        assert "Refused" in answer["error"] and field in answer["error"] and "payload" not in answer
    assert json.loads(context.state.config_records["ledger"]["json"]) == {}


def _decrypt(app, context, session: bytes, request: DecryptRequest, asks: dict, roster: list[int], length: int = 10) -> ConfigRecord:
    """One decrypt message to the key-holder node: the aggregator sends the roster, never keys."""
    frame = encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, request.encode()))
    params = {"session": session.hex(), "length": length, "asks": asks, "roster": list(roster)}
    content = RecordDict({"d": ConfigRecord({"frame": frame, "params": json.dumps(params)})})
    return app(Message(content, dst_node_id=4, message_type="query.decrypt"), context).content.config_records["d"]


D = 10
ROBUST_ASKS = {"round_type": "robust", "rule": "multi_krum", "f": 1, "m": None, "norm_bound": 1.0}
HONEST = [AggregatorStep(s, t, c, "relay", b"") for s in (0, 1) for t, c in ((Target.SCALARS, (0, 1, 2, 3)), (Target.SELECTED_SUM, None))]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=aggregator_requests(4, 2, max_steps=5), pki=st.booleans())
@example(steps=HONEST, pki=True)
def test_no_request_sequence_of_a_server_app_gets_a_release_that_violates_the_node_policy(robust_node, tmp_path, steps, pki):
    """The deviating aggregator of `protocols.testing.aggregator_requests` (any targets, sessions, client lists,
    swapped or missing inputs, forged extra bytes such as forged distances or a forged rule), against the key-holder
    node as Flower calls it: each message rebuilds the key holder from the node's config and its ledger file, and
    every release it makes obeys the node's policy (`check_releases`); the honest sequence is released in full. A node
    without `he-client-keys` (pki False) releases nothing: on deployment its own PKI is mandatory."""
    from secagg.he import HeContext
    from secagg.he_params import preset

    app, context, public = robust_node
    signers = SIGNERS
    node_config = {**context.node_config, "he-ledger-file": str(tmp_path / f"ledger-{os.urandom(4).hex()}.json")}
    if not pki:
        del node_config["he-client-keys"]
    node = Context(run_id=7, node_id=4, node_config=node_config, state=RecordDict({"he": context.state.config_records["he"]}), run_config=context.run_config)
    public_ctx = HeContext.from_bytes(preset("ckks-8192"), public)
    x = np.random.default_rng(6).normal(0, 0.1, (4, D))
    cts = [public_ctx.encrypt(row).to_bytes() for row in x]
    sessions = [session_of(1, b"aaaa"), session_of(2, b"bbbb"), session_of(1, b"fake")]  # the last one no client signed
    policy = KeyHolderPolicy.from_config(node_config)
    releases, selections = [], {}
    for step in steps:
        session = sessions[step.session]
        sign_for = session if step.session < 2 else session_of(7, b"real")
        clients = step.clients if step.clients is not None else selections.get(session, (0, 1, 2))
        manifest = {i: (digest(cts[i]), signers[i].sign(signed_message(sign_for, i, 4, digest(cts[i])))) for i in clients}
        inputs = {i: cts[i] for i in clients}
        if step.inputs == "swap" and len(clients) >= 2:
            a, b = clients[:2]
            inputs[a], inputs[b] = inputs[b], inputs[a]
        request = DecryptRequest(step.target, manifest, cts[0], None if step.inputs == "none" else inputs, step.extra)
        answer = _decrypt(app, node, session, request, ROBUST_ASKS, range(4))
        if "error" in answer:
            continue
        released = np.frombuffer(answer["payload"][4:], "<f8")
        releases.append((session, step.target, clients))
        if step.target == Target.SCALARS:
            accepted, dist = accepted_distances(sorted(clients), released)
            selections[session] = tuple(accepted[i] for i in krum_select(dist, policy.f, policy.selected_count(len(accepted))))
    check_releases(policy, releases, selection=selections.get)
    if not pki:
        assert releases == []
    if steps == HONEST:
        assert [t for _, t, _ in releases] == [Target.SCALARS, Target.SELECTED_SUM] * 2


def test_a_server_app_cannot_get_the_hidden_model_with_a_box_key_of_its_own(task, tmp_path):
    """Against the hidden-state key-holder node with its own PKI: a box key the ServerApp signs itself is refused
    (nothing is decrypted), the honest request's model is sealed to the clients (the ServerApp's own X25519 key opens
    no box, client 1's opens its own), and a second MODEL in the round, or the round under another session, is refused."""
    from fl.experiment import local_datasets
    from fl.models import get_flat
    from protocols.he.release import box_key_message, encode_box_keys
    from secagg.he import HeContext
    from secagg.he_params import preset

    d = len(get_flat(local_datasets(ExperimentConfig(stack="hidden-state", **RUN))[1]))
    signers = [Signer.generate(SeededRandomness(8).fork(str(i))) for i in range(3)]
    keys = {i: s.public_bytes() for i, s in enumerate(signers)}
    node_config = {"partition-id": 3, "num-partitions": 4, "he-ledger-file": str(tmp_path / "ledger.json"), "he-round-type": "hidden",
                   "he-min-clients": 2, "he-client-keys": json.dumps({str(i): k.hex() for i, k in keys.items()}),
                   "he-signing-key": str(provision_key_holder(tmp_path, SeededRandomness(14)).parent / "keys" / "key-holder.pem")}
    app = client_app(None)
    context = Context(run_id=7, node_id=4, node_config=node_config, state=RecordDict(), run_config={**RUN, "stack": "hidden-state"})
    public = HeContext.from_bytes(preset("ckks-8192-sum"), app(Message(RecordDict(), dst_node_id=4, message_type="query.keys"),
                                                               context).content.config_records["he"]["public"])
    x = np.random.default_rng(9).normal(0, 0.1, (3, d))
    cts = [public.encrypt(row).to_bytes() for row in x]
    session = session_of(1, b"hide")
    boxes = [X25519Agreement.generate(SeededRandomness(10).fork(str(i))) for i in range(3)]
    mine, sybil = X25519Agreement.generate(SeededRandomness(11)), Signer.generate(SeededRandomness(12))

    def request(announced):
        manifest = {i: (digest(cts[i]), signers[i].sign(signed_message(session, i, 3, digest(cts[i])))) for i in range(3)}
        return DecryptRequest(Target.MODEL, manifest, b"", dict(enumerate(cts)), encode_box_keys(announced))

    honest = {i: (b.public_bytes(), signers[i].sign(box_key_message(session, i, b.public_bytes()))) for i, b in enumerate(boxes)}
    forged = {**honest, 0: (mine.public_bytes(), sybil.sign(box_key_message(session, 0, mine.public_bytes())))}
    asks = {"round_type": "hidden"}
    assert "box key of client 0 is not signed" in _decrypt(app, context, session, request(forged), asks, range(3), d)["error"]
    assert "he-model" not in context.state.config_records
    answer = _decrypt(app, context, session, request(honest), asks, range(3), d)
    _, sealed = parse_model_release(answer["payload"], 3, d, 1 << 24, party="test", stage="test")
    with pytest.raises(InvalidTag):
        open_box(mine, session, 0, sealed[0], d, party="test", stage="test")
    opened = open_box(boxes[1], session, 1, sealed[1], d, party="test", stage="test")
    initial = get_flat(local_datasets(ExperimentConfig(stack="hidden-state", **RUN))[1])
    assert np.max(np.abs(opened - (initial + x.sum(0)))) < 1e-2  # the node's own copy of the initial model, plus the inputs
    assert "he-model" in context.state.config_records
    assert "not allowed after" in _decrypt(app, context, session, request(honest), asks, range(3), d)["error"]
    assert "another session" in _decrypt(app, context, session_of(1, b"next"), request(honest), asks, range(3), d)["error"]


def test_engine_constraints_of_hidden_state_name_the_field():
    with pytest.raises(ValueError, match="sample_fraction must be 1"):
        ExperimentConfig(engine="flower-sim", stack="hidden-state", sample_fraction=0.5, clients=10)
    ExperimentConfig(engine="flower-sim", stack="ckks-robust")


def test_a_stale_node_state_written_back_by_a_refused_task_does_not_roll_the_hidden_model_back(task, tmp_path):
    """Review 20: Flower 1.42 runs each message as its own ClientApp task on a copy of the node's state, and the state the
    later task returns wins. Task A releases round 1's model; task B, started from the state before A (no model), is
    refused (the ledger file, under its lock, says round 1 was released) and its stale state is written back. Round 2
    must then add to round 1's model (the node's model file, written under the ledger's lock, is the record), not to the
    initial model: a node that read the model from node state alone released initial + x_2."""
    import copy

    from fl.experiment import local_datasets
    from fl.models import get_flat
    from protocols.he.release import box_key_message, encode_box_keys
    from secagg.he import HeContext
    from secagg.he_params import preset

    initial = get_flat(local_datasets(ExperimentConfig(stack="hidden-state", **RUN))[1])
    d = len(initial)
    signers = [Signer.generate(SeededRandomness(21).fork(str(i))) for i in range(3)]
    node_config = {"partition-id": 3, "num-partitions": 4, "he-ledger-file": str(tmp_path / "ledger.json"), "he-round-type": "hidden",
                   "he-min-clients": 2, "he-client-keys": json.dumps({str(i): s.public_bytes().hex() for i, s in enumerate(signers)}),
                   "he-signing-key": str(provision_key_holder(tmp_path, SeededRandomness(14)).parent / "keys" / "key-holder.pem")}
    app = client_app(None)
    context = Context(run_id=7, node_id=4, node_config=node_config, state=RecordDict(), run_config={**RUN, "stack": "hidden-state"})
    public = HeContext.from_bytes(preset("ckks-8192-sum"), app(Message(RecordDict(), dst_node_id=4, message_type="query.keys"),
                                                               context).content.config_records["he"]["public"])
    box = X25519Agreement.generate(SeededRandomness(22))
    x = np.random.default_rng(23).normal(0, 0.1, (2, 3, d))  # rounds 1 and 2, three clients

    def request(session, r):
        cts = [public.encrypt(row).to_bytes() for row in x[r]]
        manifest = {i: (digest(cts[i]), signers[i].sign(signed_message(session, i, 3, digest(cts[i])))) for i in range(3)}
        boxes = encode_box_keys({1: (box.public_bytes(), signers[1].sign(box_key_message(session, 1, box.public_bytes())))})
        return DecryptRequest(Target.MODEL, manifest, b"", dict(enumerate(cts)), boxes)

    first, second = session_of(1, b"roll"), session_of(2, b"roll")
    stale = Context(run_id=7, node_id=4, node_config=node_config, state=copy.deepcopy(context.state), run_config=context.run_config)
    assert "payload" in _decrypt(app, context, first, request(first, 0), {"round_type": "hidden"}, range(3), d)  # task A releases
    assert "not allowed after" in _decrypt(app, stale, first, request(first, 0), {"round_type": "hidden"}, range(3), d)["error"]  # task B
    answer = _decrypt(app, stale, second, request(second, 1), {"round_type": "hidden"}, range(3), d)  # B's state was written back
    _, sealed = parse_model_release(answer["payload"], 3, d, 1 << 24, party="test", stage="test")
    opened = open_box(box, second, 1, sealed[1], d, party="test", stage="test")
    assert np.max(np.abs(opened - (initial + x[0].sum(0) + x[1].sum(0)))) < 1e-2, "round 2 added to a model without round 1"
