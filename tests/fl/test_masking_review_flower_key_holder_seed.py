"""Review attack on the Flower key-holder node (a deployment ClientApp): does it take the server's seed?

Claims attacked: fl/flower_engine.py module docstring "the key holder draws its flooding noise from its
own (the server sends them no seed)"; issue 14: "Flooding noise always comes from the key holder's own
CSPRNG"; common standards: "Secrets come from the OS CSPRNG; seeds only in simulation". The server
(aggregator) writes the decrypt request, so a deviating one simply puts a seed in it.

Held since the he-keyholder merge: `KeyHolder` takes no randomness at all (it draws from `SystemRandomness`
itself), and the deployment node passes only its own policy, client keys, ledger and run id. The reviewer's version
expected an `rng` argument; adapted to check that nothing but those reaches the key holder.
"""

import inspect
import json

import pytest

flwr = pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Context, Message, RecordDict  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

import fl.flower_engine as engine  # noqa: E402
from protocols.core.errors import MalformedMessage  # noqa: E402
from protocols.core.pki import provision_key_holder  # noqa: E402
from protocols.he.key_holder import KeyHolder  # noqa: E402

VALUES = {"clients": 3, "rounds": 1, "stack": "ckks", "data": "breast_cancer", "model": "logreg", "sample_fraction": 1.0}


def test_a_deployment_key_holder_never_seeds_its_noise_from_the_request(monkeypatch, tmp_path):
    seen = []

    class Stop:
        decrypted = ()
        last_bound = 0.0

        def handle(self, frame):
            raise MalformedMessage("stop", party="key holder", stage="test")

    def key_holder(self, params, **kw):
        seen.append(kw)
        return Stop()

    monkeypatch.setattr(engine.HeAggregation, "key_holder", key_holder)
    app = engine.client_app()  # deployment: config comes from the run
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 1
    context = Context(run_id=1, node_id=1, node_config={"partition-id": 3, "num-partitions": 4, "he-ledger-file": str(tmp_path / "ledger.json"),
                                                  "he-client-keys": json.dumps({"0": "11" * 32}),
                                                  "he-signing-key": str(provision_key_holder(tmp_path).parent / "keys" / "key-holder.pem")},
                      state=RecordDict(), run_config=VALUES)
    app(Message(RecordDict({}), dst_node_id=1, message_type="query.keys"), context)
    params = {"seed": "ab" * 32, "session": "00" * 8, "client_keys": {}, "roster": [0]}
    msg = Message(RecordDict({"d": ConfigRecord({"params": json.dumps(params), "frame": b""})}), dst_node_id=1, message_type="query.decrypt")
    app(msg, context)
    assert seen, "the key holder was never built"
    # client_keys: the node's own PKI (he-client-keys, mandatory on deployment) through the roster; never a seed
    assert set(seen[0]) == {"client_keys", "policy", "ledger", "run"}, f"the key holder got {sorted(seen[0])} besides its own policy, keys, ledger and run"
    assert not {"rng", "seed"} & set(inspect.signature(KeyHolder).parameters), "a KeyHolder can be handed its randomness"
    assert "SystemRandomness()" in inspect.getsource(KeyHolder.__init__), "the key holder's noise is not the OS CSPRNG's"
