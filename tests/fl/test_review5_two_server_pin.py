"""Review 5: the ServerApp (an active S0, never colluding with S1 or the dealer, possibly with some clients) attacks
"two-server clients pin S1's key" on the deployment engine. The xfail(strict) tests are breaks: they fail today
because the attack succeeds. The others are attacks that held (or breaks since fixed), kept as regression tests. Nodes are called as a
SuperNode calls the ClientApp (`FakeGrid`: each message handed to the app under that node's own Context)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

flwr = pytest.importorskip("flwr")

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from flwr.app import ConfigRecord, Message, RecordDict

from fl.experiment import build_stack, local_datasets
from fl.flower_engine import FlowerRounds, client_app, config_from_run, node_pins
from fl.models import get_flat
from protocols.core.errors import Aborted, BelowThreshold, ProtocolError, Refused
from protocols.core.pki import ClientIdentity, KeyDirectory, load_public_key, provision
from protocols.core.pki import simulated_signer as simulated_signer_of
from protocols.core.schedule import DropoutSchedule
from protocols.core.wire import Reader, decode_frame
from protocols.two_server import TwoServerRobust
from protocols.two_server.identities import check_round_key, simulated_signer
from protocols.two_server.remote import second_server_step, two_server_public
from secagg.agreement import X25519Agreement
from secagg.randomness import SeededRandomness, SystemRandomness
from secagg.signatures import Signer
from tests.fl.test_flower_two_server_pin import CLIENTS, RUN, S0_KEY, _frame_answers, _nodes, _substitute
from tests.fl.test_review3_flower_pki import FakeGrid
from tests.protocols.split_round import Identities, split_round

pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py
S1_NODE = 100 + CLIENTS  # FakeGrid: node id 100 + partition id; S1 is partition `clients`


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki5") / "keys"
    provision(folder, CLIENTS, SeededRandomness(55))
    return folder


def _deployment(run, nodes, intercept=None):
    config = config_from_run(run)
    grid = FakeGrid(client_app(None), run, nodes, intercept)
    params = get_flat(local_datasets(config)[1])
    return config, grid, params


def _s1_key(grid, record: dict) -> ConfigRecord:
    """S0 asks S1's node for a round key, as FlowerRounds does (`record`: what S0 writes in the query)."""
    msg = Message(RecordDict({"q": ConfigRecord(record)}), dst_node_id=S1_NODE, message_type="query.s1_key")
    return grid.app(msg, grid.contexts[S1_NODE]).content.config_records["q"]


# ---------------------------------------------------------------- breaks

def test_a_two_server_client_node_refuses_a_stack_without_a_second_server(pki):
    """Was a break (the node sent its update in the clear): like signing-key, second-server-key now refuses a stack
    without a second server (review 6: a node it makes a two-server node refuses to run without its pins, the stack
    first); each node's error reaches S0 as its failed training step, naming the key; with every node refusing, the round ends."""
    run = {**{k: v for k, v in RUN.items() if k != "f"}, "stack": "plain"}  # S0 writes the run config; the node pins no stack
    config, grid, params = _deployment(run, [{k: v for k, v in nc.items() if k not in node_pins(config_from_run(RUN))} for nc in _nodes(pki)[:CLIENTS]])
    try:
        rounds = FlowerRounds(grid, config, str(pki / "clients"))
        rounds.aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    except BelowThreshold as exc:  # refused at every node: S0 names each client's failed training step and its reason
        assert "it holds a second-server-key) does not pin stack" in str(exc)
        assert all(f"client {u} at training: its node {100 + u} failed" in str(exc) for u in range(CLIENTS))
        assert all("frame" not in a for a in _frame_answers(grid))
        return
    answers = _frame_answers(grid)
    row = grid.contexts[100].state.array_records["update"]["row"].numpy()
    clear = decode_frame(answers[0]["frame"], party="S0", stage="read").payload[4:]  # plain: u32 length, then float32 values
    assert not np.array_equal(np.frombuffer(clear, "<f4"), row), "S0 read client 0's update in the clear"
    assert all("frame" not in a for a in answers)


def test_a_client_node_whose_key_stops_loading_is_excluded_and_the_round_goes_on(pki, tmp_path):
    """Was a break (S0 raised an untyped RuntimeError and the whole round was lost): a client node whose
    second-server-key no longer loads (file replaced after start-up) raises out of train.update; S0 names that client
    `Refused` with its node's reason, sends it nothing more, and the round goes on with the other clients' inputs."""
    nodes = _nodes(pki)
    key = tmp_path / "second-server.pub"
    key.write_bytes((pki / "second-server.pub").read_bytes())
    nodes[2]["second-server-key"] = str(key)
    config, grid, params = _deployment(RUN, nodes)
    rounds = FlowerRounds(grid, config, str(pki / "clients"))  # start-up check passes
    key.write_bytes(b"not a key")  # e.g. rotated or truncated on disk before round 1
    out = rounds.aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    assert [e.party for e in out.rejected if isinstance(e, Refused)] == ["client 2"]
    assert "node 102" in str(out.rejected[0]) and "second-server-key" in str(out.rejected[0]) and out.rejected[0].stage == "training"
    assert 2 not in out.included and len(out.included) >= 1
    assert not [r for kind, r in grid.replies if kind == "query.frame" and r.metadata.src_node_id == 102], "client 2 was asked for a frame"


FORGED = ("unsigned", "S0's own keys under their ids", "the simulated keys of their ids", "the honest client's signature")


@given(forgery=st.sampled_from(FORGED))
@settings(max_examples=8, deadline=None)
def test_s0_alone_cannot_isolate_an_honest_input_by_sealing_its_own_inputs_under_the_other_clients_names(forgery):
    """Was a break (S1 authenticated no client): S0 discards the other clients' bundles (as if they dropped out) and
    seals inputs of its own choosing (zeros) under their names to S1's genuine, signed key, signing them as best it can
    without their keys. S1 checks each share's signature under its own copy of the clients' keys: only the honest
    client's verifies, 1 < min_clients = 3 authenticated clients remain, and S1 stops the round: S0 opens nothing."""
    bits, n, d, run, round_number = 10, 5, 4, 7, 3

    def protocol():  # S0 writes the run config: a rule whose result is the sum of the (unclipped) inputs
        return TwoServerRobust(bits=bits, rule="norm_bounding", tau=4096.0)

    signers = {c: Signer.generate(SeededRandomness(f"client {c}'s own key".encode())) for c in range(n)}  # S0 holds none of them
    directory = KeyDirectory({c: s.public_bytes() for c, s in signers.items()}, "the provisioned keys")  # public: S0 and S1 have it
    x0 = np.random.default_rng(9).integers(0, 1 << bits, d).astype(np.uint16)  # the honest client's ring elements
    s1 = simulated_signer("second-server")  # S1's identity; on Flower the key of each client's own node config
    x = np.zeros((n, d), np.uint16)  # S0's own inputs: zeros
    x[0] = x0
    honest, clients = protocol(), []

    def roles(opened):
        clients.append(honest.client_role(0, x[0], opened.public, SystemRandomness(), {}, identity=ClientIdentity(0, signers[0], directory)))
        for j in range(1, n):  # S0's own inputs under ids 1..n-1: signed with keys it holds, never theirs
            own = simulated_signer_of(j) if forgery == "the simulated keys of their ids" else Signer.generate(SeededRandomness(f"S0 as {j}".encode()))
            clients.append(protocol().client_role(j, x[j], opened.public, SeededRandomness(j), {},
                                                  identity=ClientIdentity(j, own, KeyDirectory({c: own.public_bytes() for c in range(n)}, "S0's"))))
        return clients

    def held(opened, rejected):
        assert rejected == [] and not clients[0].aborted
        collected = opened.server.signatures
        for j in range(1, n):
            collected[j] = {"unsigned": b"", "the honest client's signature": collected[0]}.get(forgery, collected[j])

    with pytest.raises(Aborted, match="min_clients = 3") as stopped:  # S1's round key (fresh): its secret stays with S1
        split_round(protocol(), x, 7, identities=Identities(s1, run, round_number, directory, signers), clients=honest, roles=roles, held=held)
    assert "1 inputs reached both servers" in str(stopped.value)


# ---------------------------------------------------------------- attacks that held

def _x25519_pem(path):
    key = x25519.X25519PrivateKey.generate().public_key()
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


BAD_KEY_FILES = {
    "S1's private key PEM": lambda pki, tmp: pki / "keys" / "second-server.pem",
    "an X25519 public key PEM": lambda pki, tmp: _x25519_pem(tmp / "x25519.pub"),
    "a directory": lambda pki, tmp: pki,
    "bytes that are no PEM": lambda pki, tmp: (tmp / "junk.pub").write_bytes(b"\x00\xffjunk") and tmp / "junk.pub",
    "a file that does not exist": lambda pki, tmp: tmp / "missing.pub",
    "an empty path": lambda pki, tmp: "",
}


@pytest.mark.parametrize("bad", sorted(BAD_KEY_FILES))
def test_a_client_node_with_a_bad_second_server_key_file_is_refused_at_start_up_naming_the_field(pki, tmp_path, bad):
    nodes = _nodes(pki)
    nodes[1]["second-server-key"] = str(BAD_KEY_FILES[bad](pki, tmp_path))
    config, grid, _ = _deployment(RUN, nodes)
    with pytest.raises(Refused, match="second-server-key") as caught:
        FlowerRounds(grid, config, str(pki / "clients"))
    assert "node 101" in str(caught.value)


def test_two_keys_s1_signs_for_one_round_leave_s1_one_secret_the_first_key_opens_nothing(pki):
    """S0 asks S1 twice for round 1: both keys carry a valid signature for (run 7, round 1), so a pinned client would
    seal to either; but S1's node keeps only the last secret (state replaced, not appended), so a share sealed to the
    first key opens nowhere: S1 stops a round whose parameters carry it, and S0 never held its secret."""
    _, grid, _ = _deployment(RUN, _nodes(pki))
    first, second = _s1_key(grid, {"round": 1}), _s1_key(grid, {"round": 1})
    s1_public = load_public_key(pki / "second-server.pub")
    for key in (first, second):
        check_round_key(s1_public, 7, bytes.fromhex(key["public"]), bytes.fromhex(key["signature"]), 1)
    assert first["public"] != second["public"]
    state = dict(grid.contexts[S1_NODE].state.config_records["s1"])
    held = X25519Agreement.from_private_bytes(bytes.fromhex(state["secret"]))
    assert held.public_bytes().hex() == second["public"]
    assert sum(isinstance(v, str) and len(v) == 64 for v in state.values()) == 1  # one 32-byte secret in the node's state
    config = config_from_run(RUN)
    stack = build_stack(config, 31, None)
    protocol = stack
    while not hasattr(protocol, "pin_second_server"):
        protocol = protocol.inner
    protocol.use_second_server(bytes.fromhex(first["public"]), bytes.fromhex(first["signature"]), 1)
    public = two_server_public(protocol.open_round(CLIENTS, 31, SeededRandomness(1)).public)
    step = second_server_step(protocol, public, held, [])
    assert step.done and "another second-server key" in step.error


@pytest.mark.parametrize("asked", [{"round": 2}, {"round": 0}, {}], ids=["the next round", "round 0", "no round"])
def test_s1s_key_signed_for_a_round_s0_names_other_than_the_joined_one_is_refused(pki, asked):
    """S0 asks S1 to sign this round's key for another round than the one it sends the clients (1): S1 signs what S0
    asks, but each client checks the round it joined, so every client refuses and sends nothing."""
    def intercept(msg):
        if msg.metadata.message_type == "query.s1_key":
            msg.content.config_records["q"] = ConfigRecord(asked)
        return msg

    config, grid, params = _deployment(RUN, _nodes(pki), intercept)
    with pytest.raises(ProtocolError):
        FlowerRounds(grid, config, str(pki / "clients")).aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    answers = _frame_answers(grid)
    assert len(answers) == CLIENTS and all("frame" not in a and "round 1" in a["error"] for a in answers)


def test_a_refusing_client_asked_again_still_sends_nothing(pki):
    """After a refusal S0 sends the same share request again (the node rebuilds its role and replays its frames): still
    a refusal, no seed frame, no sealed share."""
    requests = []

    def intercept(msg):
        if msg.metadata.message_type == "query.frame" and msg.metadata.dst_node_id == 100:
            requests.append(msg)
        return _substitute(lambda r, inner: (S0_KEY.public_bytes(), None))(msg)

    config, grid, params = _deployment(RUN, _nodes(pki), intercept)
    with pytest.raises(ProtocolError):
        FlowerRounds(grid, config, str(pki / "clients")).aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    for _ in range(2):
        again = grid.app(requests[0], grid.contexts[100]).content.config_records["f"]
        assert "frame" not in again and again["aborted"] and "not signed by the second server" in again["error"]


def _seed_of(bundle_frame: bytes) -> bytes:
    r = Reader(decode_frame(bundle_frame, party="S0", stage="read").payload, party="S0", stage="read")
    return decode_frame(r.blob(1 << 31), party="S0", stage="read").payload


def test_a_request_sent_twice_gets_a_second_split_sealed_to_the_same_signed_key_only(pki):
    """S0 sends an honest client the share request twice: the node answers with a fresh split (another seed) of the same
    input. Both S1 shares are sealed to the one key S1 signed for this round, whose secret only S1 has and which runs one
    program (S1's node state holds the frames of one round per key): S0 gets two uniform seeds, nothing it can open."""
    requests = []

    def intercept(msg):
        if msg.metadata.message_type == "query.frame" and msg.metadata.dst_node_id == 100:
            requests.append(msg)
        return msg

    config, grid, params = _deployment(RUN, _nodes(pki), intercept)
    rounds = FlowerRounds(grid, config, str(pki / "clients"))
    rounds.aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    first = _frame_answers(grid)[0]
    again = grid.app(requests[0], grid.contexts[100]).content.config_records["f"]
    assert _seed_of(first["frame"]) != _seed_of(again["frame"])
    public = two_server_public(json.loads(grid.contexts[100].state.config_records["round"]["public"]))
    held = X25519Agreement.from_private_bytes(bytes.fromhex(grid.contexts[S1_NODE].state.config_records["s1"]["secret"]))
    assert public["second_server"] == held.public_bytes().hex()  # the one key of this round, S1's


def test_the_pin_reaches_the_two_server_protocol_inside_the_ddp_layers(pki):
    """ddp+two-server (clip > discretize > skellam > two-server): S0 names its own key; the node finds the two-server
    protocol under the noise layers and pins it, so every client refuses and sends nothing."""
    run = {**RUN, "stack": "ddp+two-server"}
    config, grid, params = _deployment(run, _nodes(pki, run=run), _substitute(lambda r, inner: (S0_KEY.public_bytes(), None)))
    with pytest.raises(ProtocolError):
        FlowerRounds(grid, config, str(pki / "clients")).aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    answers = _frame_answers(grid)
    assert len(answers) == CLIENTS and all("frame" not in a and "not signed by the second server" in a["error"] for a in answers)


def test_s1_signs_only_a_key_of_its_own_whatever_s0_writes_in_its_queries(pki):
    """S0 writes its own key and secret into the s1_key query and the s1 query: S1 signs a fresh key of its own, and its
    node state keeps that key's secret (a key S0 chose never gets S1's signature)."""
    _, grid, _ = _deployment(RUN, _nodes(pki))
    mine = {"public": S0_KEY.public_bytes().hex(), "secret": S0_KEY.private_bytes().hex()}
    signed = _s1_key(grid, {"round": 1, **mine})
    assert signed["public"] != mine["public"]
    msg = Message(RecordDict({"q": ConfigRecord({"public": "{}", "frames": [], "secret": mine["secret"]})}),
                  dst_node_id=S1_NODE, message_type="query.s1")
    grid.app(msg, grid.contexts[S1_NODE])
    held = grid.contexts[S1_NODE].state.config_records["s1"]["secret"]
    assert held != mine["secret"]
    assert X25519Agreement.from_private_bytes(bytes.fromhex(held)).public_bytes().hex() == signed["public"]
