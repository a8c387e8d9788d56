"""The client PKI on the Flower deployment engine, called as Flower calls the apps (no SuperLink): the key-holder
node counts only inputs signed by distinct clients of its own `he-client-keys` folder whatever roster, keys and
signatures a deviating aggregator sends, refuses to start without the folder, and a client node of a signing
stack refuses to run without its own signing key and key folder."""

import json
import tomllib

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

flwr = pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Context, Message, RecordDict  # noqa: E402

from fl.cli import main  # noqa: E402
from fl.flower_engine import client_app, config_from_run, node_identity, write_app  # noqa: E402
from protocols.core.errors import Refused  # noqa: E402
from protocols.core.messages import Kind  # noqa: E402
from protocols.core.pki import ClientIdentity, KeyDirectory, provision  # noqa: E402
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame  # noqa: E402
from protocols.he.messages import DecryptRequest, Target, digest, signed_message  # noqa: E402
from protocols.he.policy import KeyHolderPolicy, session_of  # noqa: E402
from protocols.testing import check_releases  # noqa: E402
from secagg.he import HeContext  # noqa: E402
from secagg.he_params import preset  # noqa: E402
from secagg.randomness import SeededRandomness  # noqa: E402
from secagg.signatures import Signer  # noqa: E402

CLIENTS = 4
RUN = {"stack": "ckks", "clients": CLIENTS, "data": "breast_cancer", "model": "logreg"}
SESSIONS = (session_of(1, b"aaaa"), session_of(2, b"bbbb"))
SYBIL = Signer.generate(SeededRandomness(99))  # the aggregator's own key
ROSTERS = {"seated": [0, 1, 2, 3], "swapped": [1, 0, 2, 3], "sybil ids": [0, 7, 8, 9], "twice": [0, 0, 1, 2]}


pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py


def _context(node_config):
    return Context(run_id=7, node_id=1, node_config={"num-partitions": CLIENTS, **node_config}, state=RecordDict(), run_config=RUN)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki") / "keys"
    provision(folder, CLIENTS, SeededRandomness(9))
    return folder, [ClientIdentity.load(c, folder / "keys" / f"{c}.pem", folder).signer for c in range(CLIENTS)]


@pytest.fixture(scope="module")
def holder(pki, tmp_path_factory):
    """The key-holder node with the provisioned folder as he-client-keys; one module-wide ledger, as a real node keeps."""
    folder, _ = pki
    app = client_app(None)
    context = _context({"partition-id": CLIENTS, "he-min-clients": 2, "he-client-keys": str(folder / "clients"),
                        "he-signing-key": str(folder / "keys" / "key-holder.pem"),
                        "he-ledger-file": str(tmp_path_factory.mktemp("ledger") / "ledger.json")})
    reply = app(Message(RecordDict(), dst_node_id=1, message_type="query.keys"), context).content.config_records["he"]
    public = HeContext.from_bytes(preset("ckks-8192-sum"), reply["public"])
    return KeyHolderNode(app, context, [public.encrypt(np.full(10, float(c + 1))).to_bytes() for c in range(CLIENTS)])


class KeyHolderNode(tuple):
    """(app, context, one ciphertext a client), with a short repr for Hypothesis's reports."""

    def __new__(cls, app, context, cts):
        return super().__new__(cls, (app, context, cts))

    def fresh(self, ledger_file):
        """The same node (its keys) with a new ledger file and node state: another deployment's key holder."""
        context = _context({**dict(self[1].node_config), "he-ledger-file": str(ledger_file)})
        context.state.config_records["he"] = self[1].state.config_records["he"]
        return context

    def __repr__(self):
        return "KeyHolderNode(...)"


def test_the_key_holder_node_refuses_to_start_without_its_client_keys(tmp_path):
    app = client_app(None)
    reply = app(Message(RecordDict(), dst_node_id=1, message_type="query.keys"),
                _context({"partition-id": CLIENTS, "he-ledger-file": str(tmp_path / "l.json")})).content.config_records["he"]
    assert "public" not in reply and "he-client-keys" in reply["error"]


def _decrypt(app, context, session, manifest, inputs, roster):
    frame = encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, DecryptRequest(Target.SUM, manifest, b"", inputs).encode()))
    sybil_keys = {str(u): SYBIL.public_bytes().hex() for u in range(CLIENTS)}  # relayed as the client keys: never read
    params = {"session": session.hex(), "length": 10, "roster": roster, "client_keys": sybil_keys, "min_clients": 1}
    content = RecordDict({"d": ConfigRecord({"frame": frame, "params": json.dumps(params)})})
    return app(Message(content, dst_node_id=1, message_type="query.decrypt"), context).content.config_records["d"]


STEP = st.tuples(st.integers(0, 1), st.sampled_from(sorted(ROSTERS)),
                 st.dictionaries(st.integers(0, CLIENTS - 1), st.sampled_from(["genuine", "sybil", "stale"]), max_size=CLIENTS))


HONEST = [(0, "seated", {0: "genuine", 1: "genuine"}), (1, "seated", {1: "genuine", 2: "genuine", 3: "genuine"})]


@given(steps=st.lists(STEP, min_size=1, max_size=4))
@example(steps=HONEST)
@example(steps=[(0, "swapped", {2: "genuine", 3: "genuine"})])  # positions the swap leaves seated
@example(steps=[(0, "swapped", {0: "genuine", 1: "genuine"})])  # the swapped ones: client 0's signature at client 1's seat
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_a_deviating_aggregator_gets_only_releases_of_distinct_provisioned_clients(pki, holder, tmp_path_factory, steps):
    """The aggregator picks, per request, a roster (seated, two clients swapped, Sybil ids of its own, a client twice),
    relays Sybil keys as client keys, and signs each listed position genuinely (client u at position u, this session),
    with a Sybil key, or with client u's signature of the other session (a replay). Every release lists only genuine signatures, each at a
    position the roster seats its signer at (a swapped roster's unswapped positions may be released), at least
    min_clients of them, and obeys the node's policy."""
    _, signers = pki
    app, _, cts = holder
    context = holder.fresh(tmp_path_factory.mktemp("ledger") / "ledger.json")  # each example is its own deployment
    releases = []
    for s, roster_name, listed in steps:
        session, other = SESSIONS[s], SESSIONS[1 - s]
        manifest = {}
        for u, how in sorted(listed.items()):
            h = digest(cts[u])
            signer = SYBIL if how == "sybil" else signers[u]
            manifest[u] = (h, signer.sign(signed_message(other if how == "stale" else session, u, CLIENTS, h)))
        answer = _decrypt(app, context, session, manifest, {u: cts[u] for u in manifest}, ROSTERS[roster_name])
        if "payload" not in answer:
            continue
        # a release needs a roster of provisioned, distinct clients and, at every listed position, the genuine signature
        # of this session by the client the roster seats there (here client u signed position u)
        assert roster_name in ("seated", "swapped") and set(listed.values()) == {"genuine"} \
            and all(ROSTERS[roster_name][u] == u for u in listed), f"released {listed} under roster {roster_name}"
        releases.append((session, Target.SUM, tuple(sorted(listed))))
    check_releases(KeyHolderPolicy(min_clients=2), releases)
    if steps == HONEST:
        assert len(releases) == 2


def test_the_honest_aggregator_gets_its_release(pki, holder, tmp_path):
    _, signers = pki
    app, context, cts = holder
    session = session_of(5, b"good")
    manifest = {u: (digest(cts[u]), signers[u].sign(signed_message(session, u, 4, digest(cts[u])))) for u in range(3)}
    answer = _decrypt(app, context, session, manifest, {u: cts[u] for u in range(3)}, [0, 1, 2, 3])
    released = np.frombuffer(answer["payload"][4:], "<f8")
    assert np.max(np.abs(released - 6.0)) < 1e-3


def test_a_deployment_client_of_a_signing_stack_needs_its_own_key_and_folder(pki):
    folder, signers = pki
    with pytest.raises(Refused, match="needs signing-key and client-keys"):
        node_identity({"partition-id": 1})
    with pytest.raises(Refused, match="needs client-keys"):
        node_identity({"partition-id": 1, "signing-key": str(folder / "keys" / "1.pem")})
    with pytest.raises(Refused, match="signing key of client 2 is not the directory's"):
        node_identity({"partition-id": 2, "signing-key": str(folder / "keys" / "1.pem"), "client-keys": str(folder / "clients")})
    identity = node_identity({"partition-id": 1, "signing-key": str(folder / "keys" / "1.pem"), "client-keys": str(folder)})
    assert identity.cid == 1 and identity.signer.public_bytes() == signers[1].public_bytes()


def test_secagg_keys_provisions_once_and_the_app_carries_the_servers_copy(tmp_path, capsys):
    assert main(["keys", "--out", str(tmp_path / "keys"), "--clients", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "keys" / "clients").iterdir()) == ["0.pub", "1.pub", "2.pub"]
    assert main(["keys", "--out", str(tmp_path / "keys"), "--clients", "3"]) == 2  # never overwritten
    assert "refusing to overwrite" in capsys.readouterr().err
    values = {"clients": 3, "stack": "secagg+", "active": True}
    app = write_app(tmp_path / "app", values, tmp_path / "out", tmp_path / "keys" / "clients")
    run_config = tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert run_config["client-keys"] == str(tmp_path / "keys" / "clients")
    config = config_from_run(run_config)  # the experiment never sees the server's key folder
    assert config.active and config.stack == "secagg+"


def _node_lines(argv, capsys):
    """Each --node-config of `secagg flower-app` (argv), parsed as a SuperNode parses it."""
    from flwr.common.config import parse_config_args

    assert main(["flower-app", *argv]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "flower-supernode" in line]
    return [parse_config_args([line.split("--node-config '")[1].split("'")[0]]) for line in lines]


@pytest.mark.parametrize("stack", [["--set", "stack=secagg+", "--set", "active=true"], ["--set", "stack=ckks"]])
def test_every_node_line_of_flower_app_pins_the_stack_and_loads_its_keys(tmp_path, capsys, stack):
    """Review 3 (breaks 3, 4): the node lines `secagg flower-app --keys` prints pin stack, active and noise_multiplier (a run
    config that downgrades them is refused), and name every key a node loads at start-up: its identity, and for ckks the
    key holder's public key (client nodes) and signing key (the key holder)."""
    from fl.flower_engine import _key_holder_signer, checked_against_node, key_holder_key

    main(["keys", "--out", str(tmp_path / "keys"), "--clients", "3"])
    capsys.readouterr()
    nodes = _node_lines([str(tmp_path / "app"), "--keys", str(tmp_path / "keys"), "--set", "clients=3", *stack], capsys)
    run_config = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    honest = config_from_run(run_config)
    assert len(nodes) == 3 + (honest.stack == "ckks")
    for nc in nodes:
        assert checked_against_node(honest, nc) == honest
        for downgrade in ({"stack": "plain", "active": False}, {"noise_multiplier": 0.0}, *([{"active": False}] if honest.active else [])):
            with pytest.raises(Refused, match="this node's config"):
                checked_against_node(config_from_run({**run_config, **downgrade}), nc)
    for nc in nodes[:3]:
        node_identity(nc)
        if honest.stack == "ckks":
            assert key_holder_key(nc, False) == key_holder_key({"he-key-holder-key": str(tmp_path / "keys" / "key-holder.pub")}, False)
    if honest.stack == "ckks":
        _key_holder_signer(nodes[3])


def test_two_server_node_lines_load_s1s_and_the_dealers_identities_and_refuse_without_them(tmp_path, capsys):
    """F16: `secagg flower-app --keys` gives S1 and the dealer each its own signing key and the other's public key, S1
    the clients' public keys, and every client node S1's public key and its own signing key; a node without them is
    refused at start-up; S1 signs round keys the dealer and the clients verify, the dealer batches and the clients the
    shares S1 verifies."""
    from fl.remote_two_server import node_identity_keys, second_server_client_keys, second_server_key

    main(["keys", "--out", str(tmp_path / "keys"), "--clients", "3"])
    capsys.readouterr()
    nodes = _node_lines([str(tmp_path / "app"), "--keys", str(tmp_path / "keys"), "--set", "clients=3", "--set", "stack=ddp+two-server"], capsys)
    s1, dealer = nodes[3], nodes[4]
    assert s1["role"] == "second-server" and dealer["role"] == "dealer"
    s1_signer, dealer_public = node_identity_keys(s1, "second-server", False)
    dealer_signer, s1_public = node_identity_keys(dealer, "dealer", False)
    assert s1_signer.public_bytes() == s1_public and dealer_signer.public_bytes() == dealer_public != s1_public
    for nc in nodes[:3]:  # each client node pins S1's key (it seals S1's share only to a round key S1 signed)
        assert second_server_key(nc, False) == s1_public
        with pytest.raises(Refused, match="second-server-key"):
            second_server_key({k: v for k, v in nc.items() if k != "second-server-key"}, False)
    for role, nc in (("second-server", s1), ("dealer", dealer)):
        for missing in nc:
            if missing.endswith("-key"):
                with pytest.raises(Refused, match=missing):
                    node_identity_keys({k: v for k, v in nc.items() if k != missing}, role, False)
    # S1 verifies each client's signed share under its own copy of the clients' keys; each client signs with its own key
    assert second_server_client_keys(s1, False).keys == KeyDirectory.read(tmp_path / "keys").keys and "client-keys" not in dealer
    with pytest.raises(Refused, match="client-keys"):
        second_server_client_keys({k: v for k, v in s1.items() if k != "client-keys"}, False)
    for c, nc in enumerate(nodes[:3]):
        assert node_identity(nc).cid == c and node_identity(nc).signer.public_bytes() == KeyDirectory.read(tmp_path / "keys").key(c)


@pytest.mark.parametrize("stack, fields", [("two-server", ("clip", "rule", "f")),
                                           ("ddp+two-server", ("bits", "clip", "mechanism", "rule", "f"))])
def test_two_server_node_lines_pin_f_and_the_presets_fields_and_the_run_config_states_f(tmp_path, capsys, stack, fields):
    """Review 6 break 2: every node line of a two-server `secagg flower-app` pins f and the fields the preset reads (what
    decides the servers' program and min_clients = f + 2), the run config states the same f; S1's node pinned so refuses
    S0's f=0 and another rule, and one whose line lacks any of them refuses naming it."""
    from fl.flower_engine import checked_against_node

    main(["keys", "--out", str(tmp_path / "keys"), "--clients", "4"])
    capsys.readouterr()
    nodes = _node_lines([str(tmp_path / "app"), "--keys", str(tmp_path / "keys"), "--set", "clients=4", "--set", f"stack={stack}"], capsys)
    run_config = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    honest = config_from_run(run_config)
    assert run_config["f"] == honest.f == 1
    for nc in nodes:
        assert all(nc[k] == getattr(honest, k) for k in ("stack", "active", "noise_multiplier", *fields)), nc
    s1 = nodes[4]
    assert checked_against_node(honest, s1) == honest
    for change in ({"f": 0}, {"rule": "norm_bounding"}, {"clip": 10.0}):
        with pytest.raises(Refused, match=f"run config sets {next(iter(change))}="):
            checked_against_node(config_from_run({**run_config, **change}), s1)
    for node in (s1, nodes[0]):  # S1 and a client node
        for field in fields:
            with pytest.raises(Refused, match=f"does not pin {field} "):
                checked_against_node(honest, {k: v for k, v in node.items() if k != field})
    assert checked_against_node(honest, {k: v for k, v in nodes[5].items() if k not in fields}) == honest  # the dealer runs no rule
