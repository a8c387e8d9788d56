"""Review 3 (issue 14): the Flower key-holder node and the start-up refusals, attacked by a deviating ServerApp
(it writes every request, its parameters and the run config) and by a node operator's missing key folder.
Called as a SuperNode calls the ClientApp (no SuperLink). The breaks found (xfail strict) are fixed (branch fix14); their tests stay as regression tests."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

flwr = pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict  # noqa: E402

from fl.experiment import build_stack, local_datasets  # noqa: E402
from fl.flower_engine import FlowerRounds, client_app, config_from_run  # noqa: E402
from fl.models import get_flat  # noqa: E402
from protocols.core.errors import Refused  # noqa: E402
from protocols.core.messages import Kind  # noqa: E402
from protocols.core.pki import ClientIdentity, provision, provision_key_holder  # noqa: E402
from protocols.core.schedule import DropoutSchedule  # noqa: E402
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame  # noqa: E402
from protocols.he.messages import DecryptRequest, Target, digest, signed_message  # noqa: E402
from protocols.he.policy import KeyHolderPolicy, session_of  # noqa: E402
from protocols.testing import check_releases  # noqa: E402
from secagg.he import HeContext  # noqa: E402
from secagg.he_params import preset  # noqa: E402
from secagg.randomness import SeededRandomness  # noqa: E402
from tests.fl.test_review3_flower_pki import FakeGrid, client_nodes  # noqa: E402

CLIENTS = 4
RUN = {"stack": "ckks", "clients": CLIENTS, "data": "breast_cancer", "model": "logreg"}
VALUES = [np.full(10, float(c + 1)) for c in range(CLIENTS)]  # client c's input: all c + 1


pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki") / "keys"
    provision(folder, CLIENTS, SeededRandomness(41))
    return folder, [ClientIdentity.load(c, folder / "keys" / f"{c}.pem", folder).signer for c in range(CLIENTS)]


def _context(node_config):
    return Context(run_id=7, node_id=1, node_config={"num-partitions": CLIENTS, "partition-id": CLIENTS, **node_config},
                   state=RecordDict(), run_config=RUN)


@pytest.fixture(scope="module")
def node(pki, tmp_path_factory):
    """(app, its keys' state, each client's ciphertext, the public context): the key-holder node, policy sum with
    he-min-clients 2."""
    folder, _ = pki
    app = client_app(None)
    context = _context({"he-client-keys": str(folder / "clients"), "he-signing-key": str(folder / "keys" / "key-holder.pem"), "he-min-clients": 2,
                        "he-ledger-file": str(tmp_path_factory.mktemp("l") / "ledger.json")})
    reply = app(Message(RecordDict(), dst_node_id=1, message_type="query.keys"), context).content.config_records["he"]
    public = HeContext.from_bytes(preset("ckks-8192-sum"), reply["public"])
    return app, context.state.config_records["he"], [public.encrypt(v).to_bytes() for v in VALUES], public


SESSIONS = (session_of(1, b"aaaa"), session_of(1, b"bbbb"), session_of(2, b"cccc"), session_of(0, b"dddd"))
EXTRA = st.fixed_dictionaries({}, optional={"min_clients": st.sampled_from([0, 1]), "flood_bits": st.just(0), "recompute": st.just(False),
                                            "round_type": st.sampled_from(["robust", "hidden"]), "rule": st.just("krum"), "f": st.just(3)})
REQUEST = st.tuples(
    st.sampled_from([Target.SUM, *Target]),                          # any kind (SUM twice as often)
    st.integers(0, len(SESSIONS) - 1),                               # any session, old rounds and a second nonce too
    st.sampled_from([None, None, 0, 1, 2, 3]),                       # the session its clients signed: this one, or any (a replay)
    st.lists(st.integers(0, CLIENTS - 1), min_size=1, max_size=CLIENTS, unique=True),  # listed clients (position = id)
    st.sampled_from(["sum", "victim", "victim x1024"]),             # the ciphertext to decrypt: the sum, or client 0's alone
    EXTRA,                                                           # policy fields smuggled into the parameters
    st.sampled_from([True, True, False]),                            # params' session is the frame's, or the next one's
)


@given(requests=st.lists(REQUEST, min_size=1, max_size=5))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_request_sequence_gets_only_releases_the_nodes_own_policy_allows(pki, node, tmp_path_factory, requests):
    """Issue 14 item 1 on Flower: the node's policy comes from its node config (sum, min_clients 2, flood 10 bits,
    recompute), never from a request or the aggregator's parameters; its ledger keeps one sum a round, rounds going
    forward. The aggregator sends any kind, any session (with clients' signatures of that or another session), any
    payload (the victim's ciphertext alone, scaled up), and smuggles policy fields into the parameters. Every
    release obeys the node's policy and is the sum of the listed clients' own inputs (whatever payload was sent)."""
    _, signers = pki
    app, keys, cts, public = node
    context = _context({"he-client-keys": str(pki[0] / "clients"), "he-min-clients": 2,
                        "he-ledger-file": str(tmp_path_factory.mktemp("l") / "ledger.json")})
    context.state.config_records["he"] = keys  # the same key set; a deployment of its own (fresh ledger)
    releases = []
    for target, s, signed, listed, payload, extra, same in requests:
        session = SESSIONS[s]
        signed = s if signed is None else signed
        manifest = {u: (digest(cts[u]), signers[u].sign(signed_message(SESSIONS[signed], u, CLIENTS, digest(cts[u])))) for u in listed}
        victim = public.encrypt(VALUES[0] * (1024 if payload == "victim x1024" else 1)).to_bytes()
        body = DecryptRequest(target, manifest, victim if payload != "sum" else cts[listed[0]], {u: cts[u] for u in listed}).encode()
        frame = encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, body))
        params = {"session": (session if same else SESSIONS[(s + 1) % len(SESSIONS)]).hex(), "length": 10, "roster": list(range(CLIENTS)), **extra}
        content = RecordDict({"d": ConfigRecord({"frame": frame, "params": json.dumps(params)})})
        answer = app(Message(content, dst_node_id=1, message_type="query.decrypt"), context).content.config_records["d"]
        if "payload" not in answer:
            event(f"refused: {answer['error'][:50]}")
            continue
        event(f"released {target.name}")
        assert signed == s, "released over signatures of another session"
        releases.append((session, target, tuple(sorted(listed))))
        released = np.frombuffer(answer["payload"][4:], "<f8")
        assert np.max(np.abs(released - sum(VALUES[u] for u in listed))) < 1e-2, f"released {released[:3]}, not the listed clients' sum"
    check_releases(KeyHolderPolicy(min_clients=2), releases)


def test_control_the_honest_sum_is_released(pki, node, tmp_path):
    """The property above can fail: the honest request of clients 0..2 in round 1 is released as their sum."""
    _, signers = pki
    app, keys, cts, _ = node
    context = _context({"he-client-keys": str(pki[0] / "clients"), "he-min-clients": 2, "he-ledger-file": str(tmp_path / "l.json")})
    context.state.config_records["he"] = keys
    session = SESSIONS[0]
    manifest = {u: (digest(cts[u]), signers[u].sign(signed_message(session, u, 4, digest(cts[u])))) for u in range(3)}
    frame = encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, DecryptRequest(Target.SUM, manifest, b"", {u: cts[u] for u in range(3)}).encode()))
    content = RecordDict({"d": ConfigRecord({"frame": frame, "params": json.dumps({"session": session.hex(), "length": 10, "roster": [0, 1, 2, 3]})})})
    answer = app(Message(content, dst_node_id=1, message_type="query.decrypt"), context).content.config_records["d"]
    assert np.max(np.abs(np.frombuffer(answer["payload"][4:], "<f8") - 6.0)) < 1e-2


def test_the_key_holder_refuses_to_start_with_a_missing_client_key_folder(tmp_path):
    context = _context({"he-client-keys": str(tmp_path / "no-such-folder"), "he-ledger-file": str(tmp_path / "l.json"),
                        "he-signing-key": str(provision_key_holder(tmp_path).parent / "keys" / "key-holder.pem")})  # refused for the folder alone
    reply = client_app(None)(Message(RecordDict(), dst_node_id=1, message_type="query.keys"), context).content.config_records["he"]
    assert "public" not in reply, "the key holder started without a readable client key folder"


def _deployment(pki, tmp_path, drop_key_of=None):
    nodes = client_nodes(pki[0], CLIENTS)
    if drop_key_of is not None:
        del nodes[drop_key_of]["signing-key"]
    holder = {"he-client-keys": str(pki[0] / "clients"), "he-signing-key": str(pki[0] / "keys" / "key-holder.pem"), "he-ledger-file": str(tmp_path / "l.json")}
    return FakeGrid(client_app(None), RUN, nodes + [holder])


def test_a_client_node_without_its_signing_key_is_refused_at_start_up(pki, tmp_path):
    with pytest.raises(Refused, match="signing-key"):
        FlowerRounds(_deployment(pki, tmp_path, drop_key_of=2), config_from_run(RUN), str(pki[0] / "clients"))


def test_a_client_node_without_its_signing_key_takes_no_part_in_a_round(pki, tmp_path):
    """The defence that holds also after start-up: a node whose key went missing since (here: its node config's
    signing-key) refuses the round, naming its missing key, before any input is sent. The server excludes that client
    (`Refused`, naming it, its node and the node's reason) and the round goes on: the sum holds the other inputs only."""
    config = config_from_run(RUN)
    grid = _deployment(pki, tmp_path)
    rounds = FlowerRounds(grid, config, str(pki[0] / "clients"))
    del grid.contexts[102].node_config["signing-key"]
    params = get_flat(local_datasets(config)[1])
    out = rounds.aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 3)
    [excluded] = [e for e in out.rejected if e.party == "client 2"]
    assert isinstance(excluded, Refused) and excluded.stage == "training" and "node 102" in str(excluded) and "needs signing-key" in str(excluded)
    assert out.included == (0, 1, 3)
    assert not [r for kind, r in grid.replies if kind == "query.frame" and r.metadata.src_node_id == 102], "the refusing node was asked for its input"
    updates = {c: grid.contexts[100 + c].state.array_records["update"]["row"].numpy().astype(np.float64) for c in range(CLIENTS)}
    clipped = {c: row * min(1.0, config.clip / np.linalg.norm(row)) for c, row in updates.items()}
    assert np.max(np.abs(out.result - sum(clipped[c] for c in (0, 1, 3)))) < 1e-2
    assert np.max(np.abs(out.result - sum(clipped.values()))) > 1e-2, "client 2's update is in the sum"


def test_a_deployment_node_never_takes_the_servers_seed(pki, tmp_path):
    """Issue 14 item 5: whatever seed train.update carries, a deployment node draws its own (the role is rebuilt from it)."""
    grid = _deployment(pki, tmp_path)
    context = grid.contexts[100]
    params = get_flat(local_datasets(config_from_run(RUN))[1])
    sent = "ab" * 32
    msg = Message(RecordDict({"model": ArrayRecord({"params": Array(params.astype(np.float32))}),
                              "round": ConfigRecord({"round": 1, "u": 0, "seed": sent, "public": json.dumps({"session": session_of(1, b"zzzz").hex(), "d": len(params)})})}),
                  dst_node_id=100, message_type="train.update")
    with pytest.raises(ValueError, match="layer"):  # parameters no stack accepts: the role is refused, after the seed is stored
        grid.app(msg, context)
    assert context.state.config_records["round"]["seed"] != sent
