"""The HE protocols' split rounds as another engine drives them (`open_round`, `client_role`, a remote key holder
through `RoundEnd.key_holder`, boxes through `RoundEnd.deliver`): the hidden-state model reaches each client in a
box only it opens, and a client whose announcement is malformed is left out while the round goes on."""

import numpy as np
import pytest

from protocols.core.driver import CostMeter, drive
from protocols.core.errors import MalformedMessage
from protocols.core.protocol import RoundEnd
from protocols.core.schedule import DropoutSchedule
from protocols.core.transport import InProcessTransport
from protocols.he.aggregation import CKKSAggregation
from protocols.he.hidden_state import HiddenStateCKKS
from protocols.he.policy import KeyHolderPolicy, ReleaseLedger
from secagg.randomness import SeededRandomness

D = 12


def _round(protocol, x, *, corrupt=None, remote=None):
    """One split round; `corrupt(measurements)` edits what clients announced; `remote`: (key holder factory, boxes)
    to play the engine of a remote key holder that delivers the boxes."""
    rng = SeededRandomness(3)
    n = len(x)
    opened = protocol.open_round(n, D, rng)
    measurements = {i: {} for i in range(n)}
    clients = [protocol.client_role(i, x[i], opened.public, rng.fork(f"client {i}"), measurements[i]) for i in range(n)]
    if corrupt is not None:
        corrupt(measurements)
    opened.clients_ready(measurements)
    transport, meter = InProcessTransport(n, SeededRandomness(4)), CostMeter(n)
    rejected = drive(opened.server, clients, opened.stages, DropoutSchedule(), transport, meter)
    end = RoundEnd(meter, transport, rejected, measurements)
    if remote is not None:
        make, delivered = remote

        def ask(frame, params):
            holder = make(params)
            return holder.handle(frame), holder.last_bound

        end.key_holder, end.deliver = ask, delivered.update
    return opened.finish(end), clients


def test_a_remote_key_holder_seals_the_model_to_each_client_only(sum_keys):
    protocol = HiddenStateCKKS(initial=np.linspace(-1, 1, D), weight=0.5, min_clients=1)
    protocol.use_secret_context(sum_keys.secret)
    x = np.random.default_rng(1).normal(0, 0.1, (4, D))
    ledger, delivered, holders = ReleaseLedger(), {}, []

    def holder(params):  # the key holder as a node rebuilds it: its own policy, ledger and model copy
        keys = {int(u): bytes.fromhex(k) for u, k in params["client_keys"].items()}
        h = protocol.key_holder(params, client_keys=keys, policy=KeyHolderPolicy("hidden", min_clients=1), ledger=ledger,
                                model=protocol.holder_model(sum_keys.secret))
        holders.append(h)
        return h

    out, clients = _round(protocol, x, remote=(holder, delivered))
    assert np.all(np.isnan(out.result)) and sorted(delivered) == [0, 1, 2, 3]  # the aggregator does not know the model
    released = holders[-1].released
    assert np.max(np.abs(released - (protocol.initial + 0.5 * x.sum(0)))) <= out.reports[0].guarantee.numeric_error
    for u, client in enumerate(clients):
        assert np.array_equal(client.open_release(delivered[u]), released)
        with pytest.raises(MalformedMessage, match="does not open"):  # another client's box, or a box altered on the way
            client.open_release(delivered[(u + 1) % 4])
        with pytest.raises(MalformedMessage, match="does not open"):
            client.open_release(delivered[u][:-1] + bytes([delivered[u][-1] ^ 1]))
    assert out.reports[0].guarantee.parameters["sealed_to"] == 4


def test_a_malformed_announcement_leaves_its_client_out_and_the_round_goes_on(sum_keys):
    x = np.random.default_rng(2).normal(0, 0.1, (4, D))

    def corrupt(measurements):
        measurements[0]["ckks"]["signing_key"] = "not hex"
        measurements[1]["ckks"] = "not a dict"

    protocol = CKKSAggregation(min_clients=1)
    protocol.use_secret_context(sum_keys.secret)
    out, _ = _round(protocol, x, corrupt=corrupt)
    assert out.included == (2, 3) and np.max(np.abs(out.result - x[[2, 3]].sum(0))) <= out.reports[0].guarantee.numeric_error
    assert {e.party for e in out.rejected} >= {"server"} and len(out.rejected) == 2

    def bad_box(measurements):
        measurements[1]["hidden-state"]["box_signature"] = "00" * 64

    hidden = HiddenStateCKKS(initial=np.zeros(D), weight=1.0, min_clients=1)
    hidden.use_secret_context(sum_keys.secret)
    out, _ = _round(hidden, x, corrupt=bad_box)
    assert out.included == (0, 1, 2, 3) and out.reports[0].guarantee.parameters["sealed_to"] == 3  # its input counts, it gets no model
    assert [e.party for e in out.rejected] == ["client 1"]
