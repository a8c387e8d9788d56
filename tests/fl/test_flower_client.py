"""The Flower ClientApp's own guarantees, without starting a deployment: outside the simulation a client
draws its secrets from its own OS CSPRNG whatever seed the server sends, and refuses a run whose
experiment fields disagree with what its node config pins."""

import json

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from fl.flower_engine import _client_setup, checked_against_node, client_app, config_from_run  # noqa: E402
from fl.models import get_flat  # noqa: E402
from protocols.core.errors import Refused  # noqa: E402
from secagg import SeededRandomness  # noqa: E402

VALUES = {"clients": 3, "rounds": 1, "stack": "secagg+", "data": "breast_cancer", "model": "logreg", "sample_fraction": 1.0}
SENT_SEED = "ab" * 32


def _train(app, values):
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 1
    config = config_from_run(values)
    _, model, stack = _client_setup(config)
    params = get_flat(model)
    public = stack.open_round(3, len(params), SeededRandomness(1)).public
    msg = Message(RecordDict({"model": ArrayRecord({"params": Array(params.astype(np.float32))}),
                              "round": ConfigRecord({"round": 1, "u": 0, "seed": SENT_SEED, "public": json.dumps(public)})}),
                  dst_node_id=1, message_type="train.update")
    context = Context(run_id=1, node_id=1, node_config={"partition-id": 0, "num-partitions": 3}, state=RecordDict(), run_config=values)
    reply = app(msg, context)
    return reply, context


def test_a_deployment_client_never_takes_the_servers_seed():
    reply, context = _train(client_app(), VALUES)  # config=None: the deployment ClientApp
    assert not reply.has_error()
    assert context.state.config_records["round"]["seed"] != SENT_SEED
    reply, context = _train(client_app(config_from_run(VALUES)), VALUES)  # the simulation hands the seed on
    assert context.state.config_records["round"]["seed"] == SENT_SEED


def test_a_node_refuses_a_run_that_changes_the_fields_it_pins():
    config = config_from_run(VALUES)
    assert checked_against_node(config, {"partition-id": 0, "num-partitions": 3, "stack": "secagg+"}) is config
    with pytest.raises(Refused, match="noise_multiplier=.*this node's config 0.8"):
        checked_against_node(config, {"partition-id": 0, "noise_multiplier": 0.8})
    with pytest.raises(Refused, match="lr"):
        checked_against_node(config, {"lr": 10.0})
