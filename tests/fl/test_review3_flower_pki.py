"""Review 3 (issue 14): the Flower PKI, the key-holder node and active SecAgg+ on the deployment engine, attacked
as the guarantees' adversaries would: a deviating ServerApp (it writes every message and the run config), colluding
clients, an operator's missing or malformed key file. No SuperLink: a `FakeGrid` hands each message to the
ClientApp with that node's own Context, as a SuperNode would, and `FlowerRounds` is the honest ServerApp's round.

The breaks found (xfail strict) are fixed (branch fix14) and stay as regression tests beside the defences that held."""

import contextlib
import json
import shutil
from itertools import combinations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, NoEncryption, PrivateFormat, PublicFormat
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

flwr = pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict  # noqa: E402

from fl.experiment import build_stack, local_datasets  # noqa: E402
from fl.flower_engine import FlowerRounds, client_app, config_from_run, node_identity  # noqa: E402
from fl.models import get_flat  # noqa: E402
from protocols.core.errors import BelowThreshold, ProtocolError, Refused  # noqa: E402
from protocols.core.pki import provision  # noqa: E402
from protocols.core.schedule import DropoutSchedule, Stage  # noqa: E402
from protocols.core.wire import Reader, decode_frame  # noqa: E402
from protocols.he.messages import parse_ciphertext  # noqa: E402
from secagg.he import EncryptedVector, HeContext  # noqa: E402
from secagg.he_params import preset  # noqa: E402
from secagg.randomness import SeededRandomness  # noqa: E402

CLIENTS = 5  # active SecAgg+ at n = 5: k = 4, t = 3, so a round goes on with one client dropped
MASKING = {"stack": "secagg+", "active": True, "clients": CLIENTS, "data": "breast_cancer", "model": "logreg", "sample_fraction": 1.0}


pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki") / "keys"
    provision(folder, CLIENTS + 1, SeededRandomness(31))  # one more identity than clients: an outsider's
    return folder


class FakeGrid:
    """Flower's Grid as the ServerApp sees it: node ids, and send_and_receive, which hands each message to the
    ClientApp under its destination node's own Context (node config, node state) and returns the replies.
    `intercept(msg) -> msg | None` lets a test play the deviating ServerApp (None: not sent)."""

    def __init__(self, app, run_config, node_configs, intercept=None):
        self.app, self.intercept, self.replies = app, intercept, []
        self.contexts = {100 + p: Context(run_id=7, node_id=100 + p, node_config={"num-partitions": CLIENTS, "partition-id": p, **nc},
                                          state=RecordDict(), run_config=run_config) for p, nc in enumerate(node_configs)}

    def get_node_ids(self):
        return list(self.contexts)

    def send_and_receive(self, messages, timeout=None):
        out = []
        for msg in messages:
            msg = self.intercept(msg) if self.intercept else msg
            if msg is None:
                continue
            try:
                out.append(self.app(msg, self.contexts[msg.metadata.dst_node_id]))
            except Exception as exc:  # noqa: BLE001 - what a SuperNode sends back for an app that raised
                out.append(Message(error=Error(code=0, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg))
            self.replies.append((msg.metadata.message_type, out[-1]))
        return out


def client_nodes(pki, n=CLIENTS):
    return [{"signing-key": str(pki / "keys" / f"{c}.pem"), "client-keys": str(pki / "clients"), "he-key-holder-key": str(pki / "key-holder.pub")}
            for c in range(n)]


def masking_round(pki, intercept=None):
    """(rounds, stack, params, grid): the honest deployment ServerApp of active SecAgg+ over 5 provisioned client nodes."""
    run_config = dict(MASKING)
    config = config_from_run(run_config)
    grid = FakeGrid(client_app(None), run_config, client_nodes(pki), intercept)
    rounds = FlowerRounds(grid, config, str(pki / "clients"))
    params = get_flat(local_datasets(config)[1])
    return rounds, build_stack(config, len(params), params), params, grid


def rows(grid):
    """Each node's local update of its last train.update (what it put under the masks), by partition."""
    return {ctx.node_config["partition-id"]: ctx.state.array_records["update"]["row"].numpy().astype(np.float64)
            for ctx in grid.contexts.values() if "update" in ctx.state.array_records}


def test_control_the_honest_active_round_on_the_deployment_engine_sums_the_nodes_updates(pki):
    rounds, stack, params, grid = masking_round(pki)
    out = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5)
    assert np.max(np.abs(out.result - sum(rows(grid).values()))) < 1e-3


def test_a_server_that_reruns_a_round_without_the_victim_gets_the_victims_update(pki):
    """Active SecAgg+ promises the server only the survivors' sum, once a round. Every node rebuilds its update from the
    train.update message alone (model, `round` -> its training seed), accepts any number of them, and joins any
    fresh session: the server re-sends round 1 with the victim (client 0) dropped before its masked input."""
    rounds, stack, params, grid = masking_round(pki)
    with_victim = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5).result
    victim = rows(grid)[0]
    try:
        without = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule({0: Stage.MASKED_INPUT}), 6).result
    except BelowThreshold as exc:  # the defence: every node refuses a round at or below the last one it joined
        assert all(f"client {u} at training" in str(exc) for u in range(CLIENTS)) and "already joined round 1" in str(exc)
        return
    leaked = with_victim - without
    assert np.max(np.abs(leaked - victim)) > 1e-2, "the server recovered the victim's update from two sums of one round"


HE = {"stack": "ckks", "clients": CLIENTS, "data": "breast_cancer", "model": "logreg", "sample_fraction": 1.0}


def test_the_key_holder_node_releases_the_sum_without_the_victim_in_the_next_session_round(pki, tmp_path):
    """Issue 14: "the sum without the victim was released after the sum with it". The ledger now refuses a second sum in
    one (run, round) and any earlier round; the deviating ServerApp leaves the ledger alone and runs its round 1 twice:
    its aggregator numbers sessions 1 then 2, while both train.update messages carry round 1 and the same model,
    so every node re-encrypts the same update. The key holder (policy min_clients=2, flood 2**10 x bound) releases both."""
    run_config = dict(HE)
    config = config_from_run(run_config)
    holder = {"he-client-keys": str(pki / "clients"), "he-signing-key": str(pki / "keys" / "key-holder.pem"), "he-ledger-file": str(tmp_path / "ledger.json"), "he-min-clients": 2}
    grid = FakeGrid(client_app(None), run_config, client_nodes(pki) + [holder])
    rounds = FlowerRounds(grid, config, str(pki / "clients"))
    params = get_flat(local_datasets(config)[1])
    stack = build_stack(config, len(params), params)
    with_victim = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5).result
    victim = rows(grid)[0]
    try:
        without = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule({0: Stage.MASKED_INPUT}), 6).result
    except BelowThreshold as exc:  # the defence: a node refuses a round it joined, and a session not of the round it is told
        assert all(f"client {u} at training" in str(exc) for u in range(CLIENTS))
        assert "already joined round 1" in str(exc) or "is not one of round 1" in str(exc)
        return
    assert np.max(np.abs(with_victim - without - victim)) > 1e-2, "the aggregator recovered the victim's update from two releases"


# --- a deviating ServerApp seats rosters and positions of its choosing, per client --------------------------------

MUTATIONS = ("swap", "outsider", "twice", "short", "position", "negative", "beyond")


def _masking_public(public):
    """The masking protocol's own parameters inside the layers' (clip > discretize > secagg+)."""
    return public if "roster" in public else _masking_public(public["inner"])


def _mutated(public, u, how):
    """(public, u) as the deviating server rewrites them for one client (in place)."""
    inner = _masking_public(public)
    roster = list(inner["roster"])
    if how == "swap":
        a = (u + 1) % len(roster)
        roster[u], roster[a] = roster[a], roster[u]
        u = a  # the client really sits at its new position: its view is consistent, only different from the others'
    elif how == "outsider":
        roster[(u + 1) % len(roster)] = CLIENTS  # a provisioned id of no node in this round (a colluder's, say)
    elif how == "twice":
        roster[(u + 1) % len(roster)] = roster[u]
    elif how == "short":
        roster = roster[:-1]
    elif how == "negative":
        u -= len(roster)  # roster[u] is still this client under Python's indexing
    elif how == "beyond":
        u += len(roster)
    else:
        u = (u + 1) % len(roster)
    inner["roster"] = roster
    return public, u


@given(victims=st.dictionaries(st.integers(0, CLIENTS - 1), st.sampled_from(MUTATIONS), min_size=1, max_size=2))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_clients_given_other_rosters_or_positions_never_count_beside_the_others(pki, victims):
    """README: each client verifies position v with the key of roster[v] from its own directory and refuses a roster that
    does not seat it at its position, lists a client twice or names an id its directory lacks; signatures verify under
    no other roster. The server tells 1-2 clients a different roster or position in train.update. Whatever the outcome,
    a round that completes sums the inputs of clients that all saw the honest roster (at least t + 1 = 4 of them)."""

    def intercept(msg):
        if msg.metadata.message_type != "train.update":
            return msg
        cfg = msg.content.config_records["round"]
        u = int(cfg["u"])
        if u in victims:
            public, u2 = _mutated(json.loads(cfg["public"]), u, victims[u])
            cfg["public"], cfg["u"] = json.dumps(public), u2
        return msg

    rounds, stack, params, grid = masking_round(pki, intercept)
    try:
        out = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5)
    except ProtocolError as exc:
        event(f"refused: {type(exc).__name__}")
        return  # refused or aborted: nothing released
    updates = rows(grid)
    honest = [c for c in range(CLIENTS) if c not in victims]
    sums = [sum(updates[c] for c in subset) for size in range(4, len(honest) + 1) for subset in combinations(honest, size)]
    event(f"completed with {len(out.included)} inputs")
    assert any(np.max(np.abs(out.result - s)) < 1e-3 for s in sums), f"released a sum that counts a client shown another roster ({victims})"


def test_a_node_refuses_a_replayed_frame_and_its_round_goes_on(pki):
    """A node keeps every frame it got (refused ones too) and rebuilds its role by replaying them. The server, before each
    stage's frame, re-sends the node the previous stage's frame (and, after the round, the unmasking request): each
    replay is refused, and the round, rebuilt over the refused frames, still sums every update."""
    last, refused = {}, []

    def replay(node, frame):
        msg = Message(RecordDict({"f": ConfigRecord({"frame": frame})}), dst_node_id=node, message_type="query.frame")
        answer = grid.app(msg, grid.contexts[node]).content.config_records["f"]
        refused.append("frame" not in answer and bool(answer["error"]))

    def intercept(msg):
        if msg.metadata.message_type == "query.frame":
            node = msg.metadata.dst_node_id
            if node in last:
                replay(node, last[node])
            last[node] = msg.content.config_records["f"]["frame"]
        return msg

    rounds, stack, params, grid = masking_round(pki, intercept)
    out = rounds.aggregate(1, np.arange(CLIENTS), params, stack, DropoutSchedule(), 5)
    for node, frame in last.items():
        replay(node, frame)
    assert len(refused) == CLIENTS * (len(Stage) - 1) + CLIENTS and all(refused)
    assert np.max(np.abs(out.result - sum(rows(grid).values()))) < 1e-3


# --- a client whose key file is missing or malformed -------------------------------------------------------------

def _write_bad(folder, how):
    key = Ed25519PrivateKey.generate()
    data = {"garbage": b"not a key", "empty": b"", "der": key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()),
            "x25519": X25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
            "encrypted": key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw"))}
    path = folder / f"{how}.pem"
    if how == "folder":
        path.mkdir()
    elif how != "missing":
        path.write_bytes(data[how])
    return path


@pytest.mark.parametrize("how", ["missing", "garbage", "empty", "der", "x25519", "folder"])
def test_a_malformed_signing_key_file_is_refused_naming_the_file(pki, tmp_path, how):
    path = _write_bad(tmp_path, how)
    with pytest.raises(Refused, match="signing key file"):
        node_identity({"partition-id": 0, "signing-key": str(path), "client-keys": str(pki / "clients")})


def test_an_encrypted_signing_key_file_is_refused_naming_the_file(pki, tmp_path):
    path = _write_bad(tmp_path, "encrypted")
    with pytest.raises(Refused, match="signing key file"):
        node_identity({"partition-id": 0, "signing-key": str(path), "client-keys": str(pki / "clients")})


def _directory_with(pki, tmp_path, how):
    folder = tmp_path / "clients"
    shutil.copytree(pki / "clients", folder)
    target = folder / "1.pub"
    if how == "folder":
        target.unlink()
        target.mkdir()
    elif how == "private":
        target.write_bytes((pki / "keys" / "1.pem").read_bytes())
    elif how == "x25519":
        target.write_bytes(X25519PrivateKey.generate().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    elif how == "stray":
        (folder / "notes.txt").write_text("x")
    elif how == "garbage":
        target.write_bytes(b"\x00" * 40)
    return folder


@pytest.mark.parametrize("how", ["private", "x25519", "stray", "garbage"])
def test_a_malformed_key_folder_is_refused_naming_the_file(pki, tmp_path, how):
    folder = _directory_with(pki, tmp_path, how)
    with pytest.raises(Refused, match="client key"):
        node_identity({"partition-id": 0, "signing-key": str(pki / "keys" / "0.pem"), "client-keys": str(folder)})


def test_a_key_folder_holding_a_folder_named_like_a_key_is_refused(pki, tmp_path):
    folder = _directory_with(pki, tmp_path, "folder")
    with pytest.raises(Refused, match="client key"):
        node_identity({"partition-id": 0, "signing-key": str(pki / "keys" / "0.pem"), "client-keys": str(folder)})


def test_the_aggregator_cannot_read_a_clients_update_by_forwarding_its_own_public_key(pki, tmp_path):
    """README (HE): the aggregator collects and adds; a key holder, which must not collude with it, decrypts only what its
    own policy allows. On Flower the key holder sends its public context "which the ServerApp forwards to the clients":
    the deviating ServerApp forwards a context of its own key set instead, and reads the victim's signed ciphertext."""
    own = HeContext.generate(preset("ckks-8192-sum"))

    def intercept(msg):
        if msg.metadata.message_type == "train.update":
            msg.content.config_records["he"]["public"] = own.public().to_bytes()
        return msg

    run_config = dict(HE)
    config = config_from_run(run_config)
    holder = {"he-client-keys": str(pki / "clients"), "he-signing-key": str(pki / "keys" / "key-holder.pem"), "he-ledger-file": str(tmp_path / "ledger.json")}
    grid = FakeGrid(client_app(None), run_config, client_nodes(pki) + [holder], intercept)
    rounds = FlowerRounds(grid, config, str(pki / "clients"))
    params = get_flat(local_datasets(config)[1])
    with contextlib.suppress(ProtocolError):  # the key holder cannot decrypt the sum: the round may fail; too late
        rounds.aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    sent = [reply.content.config_records["f"]["frame"] for kind, reply in grid.replies
            if kind == "query.frame" and reply.metadata.src_node_id == 100 and not reply.has_error() and "frame" in reply.content.config_records["f"]]
    trained = [reply for kind, reply in grid.replies if kind == "train.update" and reply.metadata.src_node_id == 100]
    assert sent or (trained[0].has_error() and "not signed by the key holder" in trained[0].error.reason), "the victim neither sent nor refused"
    for data in sent:  # every frame the victim sent: none is its update under the aggregator's key
        victim = rows(grid)[0]
        frame = decode_frame(data, party="aggregator", stage="masked_input")
        ciphertext, _ = parse_ciphertext(Reader(frame.payload, party="aggregator", stage="masked_input"), 1 << 24)
        read = own.decrypt(EncryptedVector.from_bytes(own, ciphertext, length=len(victim)))
        clipped = victim * min(1.0, config.clip / np.linalg.norm(victim))
        assert np.max(np.abs(read - clipped)) > 1e-2, "the aggregator decrypted the victim's update with its own key"


def test_a_node_provisioned_for_active_secagg_refuses_a_run_config_that_downgrades_it(pki):
    """Issue 14 item 5: a client checks the stack parameters it is sent against its own node config. The operator
    followed README / `secagg flower-app --keys` for an active secagg+ deployment (node line: partition-id, num-partitions,
    signing-key, client-keys). The deviating ServerApp writes stack=plain into the run config it sends."""
    run_config = {**MASKING, "stack": "plain", "active": False}
    config = config_from_run(run_config)
    grid = FakeGrid(client_app(None), run_config, client_nodes(pki))
    rounds = FlowerRounds(grid, config, str(pki / "clients"))
    params = get_flat(local_datasets(config)[1])
    with contextlib.suppress(ProtocolError):  # a node that refused: the defence
        rounds.aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    sent = [reply.content.config_records["f"]["frame"] for kind, reply in grid.replies
            if kind == "query.frame" and reply.metadata.src_node_id == 100 and "frame" in reply.content.config_records["f"]]
    victim = rows(grid).get(0)
    clear = victim is not None and any(victim.astype("<f8").tobytes() in frame or victim.astype("<f4").tobytes() in frame for frame in sent)
    assert not clear, "the node sent its update in the clear to a server that downgraded the stack"


def test_a_node_that_pins_its_stack_refuses_the_downgrade(pki):
    """The defence the check offers when the operator pins stack and active in the node config."""
    run_config = {**MASKING, "stack": "plain", "active": False}
    nodes = [{**nc, "stack": "secagg+", "active": True} for nc in client_nodes(pki)]
    grid = FakeGrid(client_app(None), run_config, nodes)
    config = config_from_run(run_config)
    rounds = FlowerRounds(grid, config, str(pki / "clients"))
    params = get_flat(local_datasets(config)[1])
    with pytest.raises(BelowThreshold, match="this node's config"):  # every node refuses: no client is left
        rounds.aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)


SIGNATURES = ("none", "garbage", "other run", "simulated key holder", "another context")


@given(how=st.sampled_from(SIGNATURES))
@settings(max_examples=len(SIGNATURES) * 2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_a_client_encrypts_only_under_the_context_its_key_holder_signed_for_this_run(pki, tmp_path_factory, how):
    """The fix of the break above, attacked: the deviating ServerApp forwards the key holder's real context without its
    signature, with garbage, with the key holder's own signature of another run, a context it signed as the simulated key
    holder, or the real signature over a context of its own. Every client node refuses before it sends any input."""
    from protocols.core.pki import load_signer, simulated_key_holder_signer
    from protocols.he.context_signature import sign_context

    own = HeContext.generate(preset("ckks-8192-sum")).public().to_bytes()
    holder_key = load_signer(pki / "keys" / "key-holder.pem")

    def intercept(msg):
        if msg.metadata.message_type == "train.update":
            he = msg.content.config_records["he"]
            if how == "none":
                if "signature" in he:  # one record is shared by every train.update of the round
                    del he["signature"]
            elif how == "garbage":
                he["signature"] = b"\x00" * 64
            elif how == "other run":
                he["signature"] = sign_context(holder_key, 8, he["public"])
            elif how == "simulated key holder":
                he["public"], he["signature"] = own, sign_context(simulated_key_holder_signer(), 7, own)
            else:
                he["public"] = own
        return msg

    run_config = dict(HE)
    config = config_from_run(run_config)
    holder = {"he-client-keys": str(pki / "clients"), "he-signing-key": str(pki / "keys" / "key-holder.pem"),
              "he-ledger-file": str(tmp_path_factory.mktemp("l") / "ledger.json")}
    grid = FakeGrid(client_app(None), run_config, client_nodes(pki) + [holder], intercept)
    rounds = FlowerRounds(grid, config, str(pki / "clients"))
    params = get_flat(local_datasets(config)[1])
    with pytest.raises(BelowThreshold, match="not signed by the key holder for run 7"):  # every node refuses: no client is left
        rounds.aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    trained = [reply for kind, reply in grid.replies if kind == "train.update"]
    assert len(trained) == CLIENTS and all(reply.has_error() and "not signed by the key holder" in reply.error.reason for reply in trained)
    assert not [kind for kind, _ in grid.replies if kind == "query.frame"], "a frame went out"


def test_control_the_honest_ckks_round_on_the_deployment_engine_sums_the_nodes_updates(pki, tmp_path):
    """The property above can fail: with the key holder's signed context forwarded as it is, the round sums every update."""
    run_config = dict(HE)
    config = config_from_run(run_config)
    holder = {"he-client-keys": str(pki / "clients"), "he-signing-key": str(pki / "keys" / "key-holder.pem"), "he-ledger-file": str(tmp_path / "l.json")}
    grid = FakeGrid(client_app(None), run_config, client_nodes(pki) + [holder])
    rounds = FlowerRounds(grid, config, str(pki / "clients"))
    params = get_flat(local_datasets(config)[1])
    out = rounds.aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    clipped = [row * min(1.0, config.clip / np.linalg.norm(row)) for row in rows(grid).values()]
    assert np.max(np.abs(out.result - sum(clipped))) < 1e-2


@pytest.mark.parametrize("session", [None, "zz" * 8, "00" * 4, 5])
def test_a_ckks_client_refuses_a_session_that_is_not_of_the_round_it_is_told(pki, tmp_path, session):
    """The key holder's ledger keys releases by the session's round; a client that computed its update for `round` 2
    must not sign it under a session of round 1 (the aggregator's first session), nor under a malformed session."""

    def intercept(msg):
        if msg.metadata.message_type == "train.update" and session is not None:
            cfg = msg.content.config_records["round"]
            cfg["public"] = json.dumps({**json.loads(cfg["public"]), "session": session})
        return msg

    run_config = dict(HE)
    config = config_from_run(run_config)
    holder = {"he-client-keys": str(pki / "clients"), "he-signing-key": str(pki / "keys" / "key-holder.pem"), "he-ledger-file": str(tmp_path / "l.json")}
    grid = FakeGrid(client_app(None), run_config, client_nodes(pki) + [holder], intercept)
    rounds = FlowerRounds(grid, config, str(pki / "clients"))
    params = get_flat(local_datasets(config)[1])
    with pytest.raises(BelowThreshold, match="is not one of round 2"):  # the stack's first session is of round 1; every node refuses
        rounds.aggregate(2, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), 5)
    assert not [kind for kind, _ in grid.replies if kind == "query.frame"], "a frame went out"
