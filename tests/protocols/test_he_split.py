"""The HE protocols' split rounds as another engine drives them (`open_round`, `client_role`, a remote key holder
through `RoundEnd.key_holder`, boxes through `RoundEnd.deliver`): the hidden-state model reaches each client in a
box only it opens, and a client whose signature (ciphertext or box key) fails under the seated directory is left
out while the round goes on. Clients sign with long-term identities (`protocols.core.pki`, simulated here)."""

import numpy as np
import pytest

from protocols.core.driver import CostMeter, drive
from protocols.core.errors import MalformedMessage, Refused
from protocols.core.pki import ClientIdentity, KeyDirectory
from protocols.core.protocol import RoundEnd
from protocols.core.schedule import DropoutSchedule
from protocols.core.transport import InProcessTransport
from protocols.he.aggregation import CKKSAggregation
from protocols.he.hidden_state import HiddenStateCKKS
from protocols.he.policy import KeyHolderPolicy, ReleaseLedger
from secagg.randomness import SeededRandomness

D = 12


def _round(protocol, x, *, corrupt=None, remote=None, identities=None):
    """One split round; `corrupt(measurements)` edits what clients announced; `remote`: (key holder factory, boxes)
    to play the engine of a remote key holder that delivers the boxes; `identities`: the key position i signs with
    (default its own simulated identity)."""
    rng = SeededRandomness(3)
    n = len(x)
    opened = protocol.open_round(n, D, rng)
    opened.seat(list(range(n)), KeyDirectory())
    identities = identities or list(range(n))
    measurements = {i: {} for i in range(n)}
    clients = [protocol.client_role(i, x[i], opened.public, rng.fork(f"client {i}"), measurements[i], identity=ClientIdentity.simulated(identities[i]))
               for i in range(n)]
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
        keys = dict(enumerate(KeyDirectory().for_roster(params["roster"])))  # its own directory, through the roster
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


def test_a_client_signing_with_another_key_or_a_malformed_announcement_is_left_out_and_the_round_goes_on(sum_keys):
    x = np.random.default_rng(2).normal(0, 0.1, (4, D))
    protocol = CKKSAggregation(min_clients=1)
    protocol.use_secret_context(sum_keys.secret)
    out, _ = _round(protocol, x, identities=[1, 1, 2, 3])  # position 0 signs with client 1's key: not its directory's
    assert out.included == (1, 2, 3) and np.max(np.abs(out.result - x[[1, 2, 3]].sum(0))) <= out.reports[0].guarantee.numeric_error
    assert [e.party for e in out.rejected] == ["server"]

    def bad_box(measurements):
        measurements[1]["hidden-state"]["box_signature"] = "00" * 64
        measurements[2]["hidden-state"] = "not a dict"

    hidden = HiddenStateCKKS(initial=np.zeros(D), weight=1.0, min_clients=1)
    hidden.use_secret_context(sum_keys.secret)
    out, _ = _round(hidden, x, corrupt=bad_box)
    assert out.included == (0, 1, 2, 3) and out.reports[0].guarantee.parameters["sealed_to"] == 2  # their inputs count, they get no model
    assert [e.party for e in out.rejected] == ["client 1"]


def test_a_box_key_of_the_aggregator_own_is_refused_by_the_key_holder_own_directory(sum_keys, monkeypatch):
    """The aggregator replaces client 0's announced box key by one it signs with a key of its own (and skips its
    own check): the key holder verifies box keys against its own directory (through the roster) and releases nothing."""
    from protocols.he import hidden_state
    from protocols.he.release import box_key_message
    from secagg.agreement import X25519Agreement
    from secagg.signatures import Signer

    sybil, box = Signer.generate(SeededRandomness(9)), X25519Agreement.generate(SeededRandomness(10))
    hidden = HiddenStateCKKS(initial=np.zeros(D), weight=1.0, min_clients=1)
    hidden.use_secret_context(sum_keys.secret)

    def forged(self, current, rejected):
        session = current.session
        return {0: (box.public_bytes(), sybil.sign(box_key_message(session, 0, box.public_bytes())))}

    monkeypatch.setattr(hidden_state.HiddenStateCKKS, "_box_keys", forged)
    ledger, delivered = ReleaseLedger(), {}

    def holder(params):
        keys = dict(enumerate(KeyDirectory().for_roster(params["roster"])))
        return hidden.key_holder(params, client_keys=keys, policy=KeyHolderPolicy("hidden", min_clients=1), ledger=ledger,
                                 model=hidden.holder_model(sum_keys.secret))

    with pytest.raises(Refused, match="box key of client 0 is not signed"):
        _round(hidden, np.zeros((3, D)), remote=(holder, delivered))
    assert delivered == {}
