"""Review 4: the fixes of review 3 on deployment, attacked by the ServerApp (it writes every message): a client
encrypts only under a public context its key holder signed for this run (`he-key-holder-key`), and a node whose
node config names its `role` (second-server, dealer) acts only in it. Called as a SuperNode calls the ClientApp.

All held: another run's signature, the simulated key holder's signature (of the real context or of the
ServerApp's own key set), a missing signature are refused before any encryption; a dealer node refuses to act
as S1 and S1 as the dealer. Noted, not a break: a node with no `role` acts in any role (as documented)."""

import json

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

from fl.experiment import local_datasets
from fl.flower_engine import _client_setup, config_from_run
from fl.models import get_flat
from protocols.core.errors import Refused
from protocols.core.pki import simulated_key_holder_signer
from protocols.he.context_signature import sign_context
from secagg.he import HeContext
from secagg.he_params import preset
from secagg.randomness import SeededRandomness
from tests.fl.test_review3_flower_key_holder import CLIENTS, RUN, _deployment, pki  # noqa: F401

pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py

HOLDER = 100 + CLIENTS


@pytest.fixture
def grid(pki, tmp_path):  # noqa: F811
    return _deployment(pki, tmp_path)


def _keys(grid):
    reply = grid.app(Message(RecordDict(), dst_node_id=HOLDER, message_type="query.keys"), grid.contexts[HOLDER])
    return reply.content.config_records["he"]


def _update(grid, node, he, r=1):
    """The ServerApp's train.update of round r to `node`, with the `he` record it chooses."""
    config = config_from_run(RUN)
    params = get_flat(local_datasets(config)[1])
    public = json.loads(json.dumps(_client_setup(config)[2].open_round(CLIENTS, len(params), SeededRandomness(r)).public))
    public["inner"]["session"] = f"{r:08x}" + public["inner"]["session"][8:]
    records = {"model": ArrayRecord({"params": Array(params.astype(np.float32))}),
               "round": ConfigRecord({"round": r, "u": node - 100, "seed": "", "public": json.dumps(public)})}
    if he is not None:
        records["he"] = ConfigRecord(he)
    return grid.app(Message(RecordDict(records), dst_node_id=node, message_type="train.update"), grid.contexts[node])


def test_the_key_holders_signed_context_is_accepted(grid):
    """The baseline the attacks below depart from: the honest message is taken (else they would prove nothing)."""
    he = _keys(grid)
    _update(grid, 100, {"public": he["public"], "signature": he["signature"]})
    assert "he-public" in grid.contexts[100].state.config_records


def test_another_runs_signature_is_refused(grid):
    he = _keys(grid)  # signed for run 7
    grid.contexts[101].run_id = 8
    with pytest.raises(Refused, match="not signed by the key holder"):
        _update(grid, 101, {"public": he["public"], "signature": he["signature"]})
    assert "he-public" not in grid.contexts[101].state.config_records and "update" not in grid.contexts[101].state.array_records


@pytest.mark.parametrize("forgery", ["simulated signer, real context", "simulated signer, own key set", "no signature"])
def test_a_context_the_key_holder_did_not_sign_is_refused(grid, forgery):
    he = _keys(grid)
    public = he["public"]
    if forgery == "simulated signer, own key set":
        public = HeContext.generate(preset("ckks-8192-sum")).public().tenseal.serialize(save_secret_key=False)
    record = {"public": public} if forgery == "no signature" else {"public": public, "signature": sign_context(simulated_key_holder_signer(), 7, public)}
    with pytest.raises(Refused, match="not signed by the key holder"):
        _update(grid, 102, record)
    assert "he-public" not in grid.contexts[102].state.config_records


def _query(grid, node, kind):
    return grid.app(Message(RecordDict({"q": ConfigRecord({})}), dst_node_id=node, message_type=f"query.{kind}"), grid.contexts[node])


@pytest.mark.parametrize("role,kind", [("dealer", "s1_key"), ("dealer", "s1"), ("second-server", "deal")])
def test_a_node_acts_only_in_the_role_its_config_names(grid, role, kind):
    grid.contexts[103].node_config["role"] = role
    with pytest.raises(Refused, match=f"role is '{role}'"):
        _query(grid, 103, kind)
    assert "s1" not in grid.contexts[103].state.config_records


def test_a_node_without_a_role_answers_as_the_second_server(grid, pki):  # noqa: F811  (the imported fixture)
    """As documented (`_check_role`: only a node whose config names its role is bound to it): noted, not a break.
    On deployment it answers only with S1's identity in its node config (F16); without it the query is refused."""
    with pytest.raises(Refused, match="second-server-signing-key"):
        _query(grid, 103, "s1_key")
    grid.contexts[103].node_config.update({"second-server-signing-key": str(pki[0] / "keys" / "second-server.pem"),
                                           "dealer-key": str(pki[0] / "dealer.pub")})
    reply = _query(grid, 103, "s1_key")
    assert len(bytes.fromhex(reply.content.config_records["q"]["public"])) == 32
