"""Two-server clients on the Flower deployment engine pin the second server's key, attacked by the ServerApp (S0),
which writes every message: it names a key of its own as S1's round key in a train.update (no signature, its own
signature, S1's signature of S1's key beside it) or replays S1's signed key of an earlier round. Each client node
checks S1's signature under `second-server-key` from its own node config, for this run and the round it joined,
before it seals anything: it answers the share request with a refusal and no frame, and S0 names it `Refused`.
A client node without `second-server-key` is refused at start-up. Called as a SuperNode calls the ClientApp (no
SuperLink): `FakeGrid` hands each message to the ClientApp with that node's own Context."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

flwr = pytest.importorskip("flwr")

from fl.experiment import build_stack, local_datasets
from fl.flower_engine import FlowerRounds, client_app, config_from_run, node_pins
from fl.models import get_flat
from protocols.core.errors import ProtocolError, Refused
from protocols.core.messages import Kind
from protocols.core.pki import load_signer, provision, roster_digest
from protocols.core.pki import simulated_signer as simulated_client_signer
from protocols.core.schedule import DropoutSchedule
from protocols.core.wire import Frame, decode_frame, encode_frame
from protocols.two_server.identities import round_key_message, share_message, simulated_signer
from protocols.two_server.remote import two_server_public
from protocols.two_server.sealing import associated_data
from secagg.agreement import X25519Agreement
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer
from tests.fl.test_review3_flower_pki import FakeGrid

CLIENTS = 4
RUN = {"stack": "two-server", "clients": CLIENTS, "data": "breast_cancer", "model": "logreg", "sample_fraction": 1.0, "dropout": 0.0,
       "f": 1}  # f stated, as `secagg flower-app` writes it
S0_KEY = X25519Agreement.generate(SeededRandomness(b"S0's own key"))
RUN_ID = 7  # FakeGrid's run id

pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki") / "keys"
    provision(folder, CLIENTS, SeededRandomness(53))
    return folder


def _nodes(pki, client_extra=None, run=RUN):
    """The node configs `secagg flower-app --keys` prints for `run`: each node's keys and the pins (`node_pins`)."""
    pins = node_pins(config_from_run(run))
    clients = [{"second-server-key": str(pki / "second-server.pub"), "signing-key": str(pki / "keys" / f"{c}.pem"), "client-keys": str(pki / "clients"),
                **pins, **(client_extra or {})} for c in range(CLIENTS)]
    return clients + [{"role": "second-server", "second-server-signing-key": str(pki / "keys" / "second-server.pem"), "dealer-key": str(pki / "dealer.pub"),
                       "client-keys": str(pki / "clients"), **pins},
                      {"role": "dealer", "dealer-signing-key": str(pki / "keys" / "dealer.pem"), "second-server-key": str(pki / "second-server.pub"), **pins}]


def _deployment(pki, intercept=None, nodes=None):
    config = config_from_run(RUN)
    grid = FakeGrid(client_app(None), RUN, nodes or _nodes(pki), intercept)
    params = get_flat(local_datasets(config)[1])
    return FlowerRounds(grid, config, str(pki / "clients")), build_stack(config, len(params), params), params, grid


def _frame_answers(grid):
    return [reply.content.config_records["f"] for kind, reply in grid.replies if kind == "query.frame"]


def _substitute(make):
    """An intercept: every train.update's two-server parameters get `make(round, their params)` (S0's key, signature)."""
    def intercept(msg):
        if msg.metadata.message_type == "train.update":
            record = msg.content.config_records["round"]
            public = json.loads(record["public"])
            inner = two_server_public(public)
            key, signature = make(int(record["round"]), inner)
            inner["second_server"] = key.hex()
            inner.pop("second_server_signature", None)
            if signature is not None:
                inner["second_server_signature"] = signature.hex()
            record["public"] = json.dumps(public)
        return msg
    return intercept


def test_control_the_honest_two_server_round_on_the_deployment_engine_takes_every_client(pki):
    rounds, stack, params, grid = _deployment(pki)
    out = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5)
    assert list(out.rejected) == []
    assert all("frame" in a and "error" not in a for a in _frame_answers(grid)) and len(_frame_answers(grid)) == CLIENTS
    assert np.all(np.isfinite(out.result))


FORGERIES = ("no signature", "S0's own signer", "the simulated S1", "S1's signature of S1's key")


@given(forgery=st.sampled_from(FORGERIES), key=st.one_of(st.just(S0_KEY.public_bytes()), st.binary(min_size=32, max_size=32)))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_a_key_s0_names_as_s1s_gets_a_refusal_from_every_client_not_a_share(pki, forgery, key):
    own = Signer.generate(SeededRandomness(b"S0's signer"))

    def make(r, inner):
        signature = {"no signature": None,
                     "S0's own signer": own.sign(round_key_message(7, key, r)),
                     "the simulated S1": simulated_signer("second-server").sign(round_key_message(7, key, r)),
                     "S1's signature of S1's key": bytes.fromhex(inner["second_server_signature"])}[forgery]
        return key, signature

    rounds, stack, params, grid = _deployment(pki, _substitute(make))
    with pytest.raises(ProtocolError):  # typed: the round ends without a share (S1 or the rule's threshold stops it)
        rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5)
    answers = _frame_answers(grid)
    assert len(answers) == CLIENTS
    for answer in answers:
        assert "frame" not in answer and answer["aborted"] and "not signed by the second server" in answer["error"]


def test_s1s_signed_key_of_the_previous_round_is_refused(pki):
    """S0 replays round 1's key and S1's signature of it in round 2 (S1 signed a fresh key for round 2)."""
    seen = {}

    def make(r, inner):
        if r == 1:
            seen["old"] = (bytes.fromhex(inner["second_server"]), bytes.fromhex(inner["second_server_signature"]))
        return seen["old"]

    rounds, stack, params, grid = _deployment(pki, _substitute(make))
    rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5)  # round 1 as S1 signed it: honest
    assert all("frame" in a for a in _frame_answers(grid))
    grid.replies.clear()
    with pytest.raises(ProtocolError):
        rounds.aggregate(2, np.arange(CLIENTS), params, stack, DropoutSchedule(), 6)
    answers = _frame_answers(grid)
    assert len(answers) == CLIENTS and all("frame" not in a and "round 2" in a["error"] for a in answers)


def test_a_refusal_is_named_at_s0_and_the_round_goes_on_without_the_refusing_client(pki):
    """S0 substitutes its key for client 0 alone (the honest S0 of a misconfigured node sees the same): the three
    others' shares make the round (f = 1 needs 3), and client 0 is named `Refused`."""
    def intercept(msg):
        if msg.metadata.message_type == "train.update" and msg.metadata.dst_node_id == 100:
            return _substitute(lambda r, inner: (S0_KEY.public_bytes(), None))(msg)
        return msg

    rounds, stack, params, _ = _deployment(pki, intercept)
    out = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5)
    refused = [e for e in out.rejected if isinstance(e, Refused)]
    assert [e.party for e in refused] == ["client 0"] and "not signed by the second server" in str(refused[0])
    assert 0 not in out.included and len(out.included) >= 1


def test_a_client_node_without_the_second_servers_key_is_refused_at_start_up(pki):
    nodes = _nodes(pki)
    del nodes[2]["second-server-key"]
    with pytest.raises(Refused, match="second-server-key"):
        _deployment(pki, nodes=nodes)


def test_a_client_checks_the_key_of_its_own_config(pki, tmp_path):
    """A client node whose `second-server-key` is another S1's refuses the real S1's signed key: the key checked is
    the node's own, never one S0 relays."""
    other = tmp_path / "other"
    provision(other, 1, SeededRandomness(54))
    assert load_signer(other / "keys" / "second-server.pem").public_bytes() != load_signer(pki / "keys" / "second-server.pem").public_bytes()
    nodes = _nodes(pki)
    nodes[1]["second-server-key"] = str(other / "second-server.pub")
    rounds, stack, params, _ = _deployment(pki, nodes=nodes)
    out = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5)
    assert [e.party for e in out.rejected if isinstance(e, Refused)] == ["client 1"]


# ---------------------------------------------------------------- S1 authenticates the clients (their signing-key, its client-keys)

def _forge_share(u, forge):
    """An intercept: in S0's relayed frames to S1, `forge(payload, public) -> payload` rewrites client u's sealed share
    (payload: u32 position | blob(signature) | sealed)."""
    seen = {}

    def intercept(msg):
        if msg.metadata.message_type == "train.update":
            seen["public"] = two_server_public(json.loads(msg.content.config_records["round"]["public"]))
        if msg.metadata.message_type == "query.s1":
            frames = []
            for data in msg.content.config_records["q"]["frames"]:
                frame = decode_frame(data, party="S0", stage="attack")
                if frame.kind == Kind.SHARE_VECTOR and int.from_bytes(frame.payload[:4], "big") == u:
                    data = encode_frame(Frame(frame.kind, frame.session, frame.sender, frame.recipient, forge(frame.payload, seen["public"])))
                frames.append(data)
            msg.content.config_records["q"]["frames"] = frames
        return msg

    return intercept


def _flip_signature(payload, public):
    return payload[:8] + bytes([payload[8] ^ 1]) + payload[9:]


def _sign_as_the_simulated_client(payload, public):
    """S0 signs client 1's genuine sealed share as the simulation would (`pki.simulated_signer(1)`, a public key)."""
    u, sealed = int.from_bytes(payload[:4], "big"), payload[8 + 64:]
    ad = associated_data(bytes.fromhex(public["session"]), u, Kind.SHARE_VECTOR)
    message = share_message(RUN_ID, 1, ad, u, roster_digest(public["roster"]), bytes.fromhex(public["second_server"]), sealed)
    return payload[:8] + simulated_client_signer(u).sign(message) + sealed


@pytest.mark.parametrize("forge", [_flip_signature, _sign_as_the_simulated_client], ids=["a flipped signature bit", "the simulated key's signature"])
def test_s1s_node_excludes_a_share_s0_relays_without_its_clients_signature_and_the_round_goes_on(pki, forge):
    """The deployment round with provisioned keys; S0 relays client 1's genuine sealed share with a signature that is not
    client 1's under S1's own client-keys: S1 excludes client 1 (named at S0), the three others make the round."""
    rounds, stack, params, _ = _deployment(pki, _forge_share(1, forge))
    out = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5)
    assert [e.party for e in out.rejected] == ["client 1"] and "second server refused" in str(out.rejected[0])
    assert 1 not in out.included and set(out.included) <= {0, 2, 3}


def test_the_deployment_round_states_whose_client_keys_it_used(pki):
    rounds, stack, params, _ = _deployment(pki)
    out = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5)
    guarantee = next(r for r in out.reports if r.layer == "two-server").guarantee
    assert guarantee.parameters["client_keys"] == str(pki / "clients") and guarantee.parameters["min_clients"] == 3
    assert "simulated" not in guarantee.parameters["client_keys"] and "S1 checks with its own copy" in guarantee.notes


@pytest.mark.parametrize("bad", [None, "", "a file", "an empty folder"])
def test_s1s_node_without_its_own_client_keys_is_refused_at_start_up_naming_them(pki, tmp_path, bad):
    nodes = _nodes(pki)
    paths = {"": "", "a file": str(pki / "dealer.pub"), "an empty folder": str(tmp_path)}
    if bad is None:
        del nodes[CLIENTS]["client-keys"]
    else:
        nodes[CLIENTS]["client-keys"] = paths[bad]
    with pytest.raises(Refused, match="client-keys") as caught:
        _deployment(pki, nodes=nodes)
    assert f"node {100 + CLIENTS}" in str(caught.value)
