"""The Flower key-holder node of the deployment engine, called as Flower calls it (no SuperLink): its policy
comes from its node config whatever the aggregator's parameters say, and its ledger lives in node state,
so a new session cannot reopen a round although each message builds a new KeyHolder."""

import json

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fl.flower_engine import client_app
from protocols.core.messages import Kind
from protocols.core.pki import provision_key_holder
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.messages import DecryptRequest, Target, digest, signed_message
from protocols.he.policy import session_of
from secagg.he import HeContext
from secagg.he_params import preset
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

RUN = {"stack": "ckks", "clients": 3, "data": "breast_cancer", "model": "logreg"}


def _node(monkeypatch, node_config, ledger_file):
    for name, value in (("_run_id", 7), ("_task_id", 1), ("_node_id", 0)):  # what a SuperNode sets before calling the app
        monkeypatch.setattr(TaskIdentity, name, value)
    app = client_app(None)
    signing_key = provision_key_holder(ledger_file.parent / "key-holder").parent / "keys" / "key-holder.pem"  # its own identity
    context = Context(run_id=7, node_id=1, node_config={"partition-id": 3, "num-partitions": 4, "he-ledger-file": str(ledger_file),
                                                        "he-signing-key": str(signing_key), **node_config},
                      state=RecordDict(), run_config=RUN)
    public = app(Message(RecordDict(), dst_node_id=1, message_type="query.keys"), context).content.config_records["he"]["public"]
    return app, context, HeContext.from_bytes(preset("ckks-8192-sum"), public)


def _signers(tag):
    return [Signer.generate(SeededRandomness(1).fork(f"{tag}{i}")) for i in range(3)]


def _pki(signers):
    return json.dumps({str(i): s.public_bytes().hex() for i, s in enumerate(signers)})


@pytest.fixture
def node(monkeypatch, tmp_path):
    return _node(monkeypatch, {"he-min-clients": 3, "he-client-keys": _pki(_signers(""))}, tmp_path / "ledger.json")


def _ask(app, context, session, ids, cts, signers, roster=(0, 1, 2)):
    """A decrypt message whose manifest is signed by `signers`, whose params relay their keys as the client keys."""
    manifest = {i: (digest(cts[i]), signers[i].sign(signed_message(session, i, len(roster), digest(cts[i])))) for i in ids}
    frame = encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, DecryptRequest(Target.SUM, manifest, b"", {i: cts[i] for i in ids}).encode()))
    params = {"session": session.hex(), "length": 10, "client_keys": {str(i): s.public_bytes().hex() for i, s in enumerate(signers)},
              "min_clients": 1, "flood_bits": 0, "seed": "00" * 32, "roster": list(roster)}  # what a deviating aggregator would like
    content = RecordDict({"d": ConfigRecord({"frame": frame, "params": json.dumps(params)})})
    return app(Message(content, dst_node_id=1, message_type="query.decrypt"), context).content.config_records["d"]


def test_the_node_takes_client_keys_from_its_own_config_not_from_the_aggregator(monkeypatch, tmp_path):
    """Review finding 3: with `he-client-keys` in its node config, keys the aggregator registers (and signs with) are refused."""
    clients, sybils = _signers(""), _signers("sybil")
    app, context, public = _node(monkeypatch, {"he-min-clients": 3, "he-client-keys": _pki(clients)}, tmp_path / "ledger.json")
    cts = [public.encrypt(np.full(10, float(i))).to_bytes() for i in range(3)]
    assert "signature of client 0 does not verify" in _ask(app, context, session_of(1, b"aaaa"), [0, 1, 2], cts, sybils)["error"]
    assert "payload" in _ask(app, context, session_of(1, b"aaaa"), [0, 1, 2], cts, clients)


def test_the_node_obeys_its_own_policy_and_ledger(node):
    app, context, public = node
    signers = _signers("")
    cts = [public.encrypt(np.full(10, float(i))).to_bytes() for i in range(3)]

    def ask(session, ids):
        return _ask(app, context, session, ids, cts, signers)

    first, other = session_of(1, b"aaaa"), session_of(1, b"bbbb")
    assert "at least 3 required" in ask(first, [0, 1])["error"]  # node config: he-min-clients = 3
    released = np.frombuffer(ask(first, [0, 1, 2])["payload"][4:], "<f8")
    assert np.max(np.abs(released - 3.0)) < 1e-3 and not np.all(released == 3.0)  # flooded (flood_bits 10, not the aggregator's 0)
    assert "another session" in ask(other, [1, 2, 0])["error"]
    assert "not allowed after" in ask(first, [0, 1, 2])["error"]
    assert json.loads(context.state.config_records["ledger"]["json"])["7/1"]["released"] == [int(Target.SUM)]
