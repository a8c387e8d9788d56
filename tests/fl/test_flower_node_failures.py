"""A client node that fails on Flower is excluded and the round goes on where the protocol allows: the round's
result equals the in-process round with those clients dropped at that stage (a dropout before the round for a
failed training step; the protocol's dropout recovery after that), every failing node is named (`Refused`: the
client, its node, the stage, the node's reason), and a round the protocol cannot finish ends with the protocol's
typed error whose message keeps the nodes' reasons. Nodes are called as a SuperNode calls the ClientApp
(`FakeGrid`, simulation engine: the in-process seeds), and a node fails by raising (a refusal of its own, a crash)
or by never answering."""

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

flwr = pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Message, RecordDict

from fl.experiment import ExperimentConfig, build_stack, local_datasets
from fl.flower_engine import FlowerRounds, client_app
from fl.models import get_flat
from protocols.core.errors import Aborted, BelowThreshold, MalformedMessage, ProtocolError, Refused
from protocols.core.schedule import DropoutSchedule
from protocols.core.secure_sum import secure_sum
from secagg.randomness import SeededRandomness
from tests.fl.test_review3_flower_pki import CLIENTS, FakeGrid

pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py
SEED = 5
HOW = {"refuses": lambda: Refused("its key no longer loads", party="client node", stage="setup"),
       "crashes": lambda: OSError("disk full"), "is silent": None}
REASON = {"refuses": "its key no longer loads", "crashes": "OSError: disk full"}


def _config(stack: str) -> ExperimentConfig:
    return ExperimentConfig(engine="flower-sim", stack=stack, clients=CLIENTS, data="breast_cancer", model="logreg",
                            sample_fraction=1.0, dropout=0.0)


class Failures:
    """Node 100 + u fails at its k-th message of the round for `fails[u] = (k, how)`: k = 0 its train.update, k = j its
    j-th frame (the round's stage j - 1); it raises `HOW[how]` (the SuperNode sends back an error) or never answers."""

    def __init__(self, app, fails: dict[int, tuple[int, str]]) -> None:
        self.app, self.fails, self.seen, self.raising, self.fired = app, fails, {}, {}, {}

    def intercept(self, msg):
        if msg.metadata.message_type not in ("train.update", "query.frame"):
            return msg
        u = msg.metadata.dst_node_id - 100
        k = self.seen[u] = self.seen.get(u, -1) + 1
        if self.fails.get(u, (None,))[0] != k:
            return msg
        self.fired[u] = self.fails[u][1]
        if HOW[self.fails[u][1]] is None:
            return None
        self.raising[id(msg)] = HOW[self.fails[u][1]]  # the message stays alive until the app gets it: its id is not reused
        return msg

    def __call__(self, msg, context):
        failure = self.raising.pop(id(msg), None)
        if failure is not None:
            raise failure()
        return self.app(msg, context)


def _flower_round(config: ExperimentConfig, fails: dict):
    failures = Failures(client_app(config), fails)
    grid = FakeGrid(failures, {}, [{} for _ in range(config.clients + 2 * ("two-server" in config.stack))], failures.intercept)
    params = get_flat(local_datasets(config)[1])
    rounds = FlowerRounds(grid, config)
    try:
        out = rounds.aggregate(1, np.arange(config.clients), params, build_stack(config, len(params), params), DropoutSchedule(), SEED)
    except ProtocolError as exc:
        out = exc
    rows = [grid.contexts[100 + u].state.array_records["update"]["row"].numpy() if "update" in grid.contexts[100 + u].state.array_records
            else np.zeros(len(params), np.float32) for u in range(config.clients)]  # a node that never trained: its row is never used
    return out, np.stack(rows), failures.fired, params


def _in_process(config: ExperimentConfig, rows: np.ndarray, fails: dict, params: np.ndarray):
    stack = build_stack(config, len(params), params)
    stages = stack.open_round(config.clients, len(params), SeededRandomness(0)).stages
    drops = {u: stages[max(k - 1, 0)] for u, (k, _) in fails.items() if k <= len(stages)}  # a failed training step: a dropout before the first stage
    try:
        return secure_sum(rows, protocol=stack, dropouts=DropoutSchedule(drops), seed=SEED)
    except ProtocolError as exc:
        return exc


def _check(config: ExperimentConfig, fails: dict):
    flower, rows, fired, params = _flower_round(config, fails)
    here = _in_process(config, rows, fails, params)
    raised = {u: how for u, how in fired.items() if how != "is silent"}
    if isinstance(flower, ProtocolError):
        event(f"{config.stack}: {type(flower).__name__} at {flower.stage}")
        assert all(f"its node {100 + u} failed: " in str(flower) and REASON[how] in str(flower) for u, how in raised.items()), str(flower)
        if flower.stage == "training":  # no client node left after the training step: each one failed there
            assert len(fired) == config.clients and isinstance(flower, BelowThreshold)
        elif isinstance(flower, Aborted) and flower.party == "second server":  # S1, remote, stops the round with the error S0 would raise
            assert isinstance(here, BelowThreshold) and str(here) in str(flower), f"in process: {here!r}; on Flower: {flower!r}"
        else:
            assert type(here) is type(flower), f"in process: {here!r}; on Flower: {flower!r}"
        return
    event(f"{config.stack}: {len(flower.included)} of {config.clients} included")
    assert not isinstance(here, Exception), f"in process: {here!r}; on Flower: {flower.included}"
    assert flower.included == here.included and np.array_equal(flower.result, here.result)
    named = {e.party: e for e in flower.rejected if isinstance(e, Refused) and "its node " in str(e)}
    assert set(named) == {f"client {u}" for u in raised}
    for u, how in raised.items():
        assert f"its node {100 + u} failed: " in str(named[f"client {u}"]) and REASON[how] in str(named[f"client {u}"])
    assert not {u for u in fired if fails[u][0] == 0} & set(flower.included), "the input of a node that failed its training step is in the result"


def failures(stages: int, most: int = CLIENTS):
    """Which of the round's clients fail (at most `most`), at which of their messages (0: training, j: stage j - 1), and how."""
    return st.dictionaries(st.integers(0, CLIENTS - 1), st.tuples(st.integers(0, stages), st.sampled_from(sorted(HOW))), max_size=most)


SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}


@given(fails=failures(1))
@settings(max_examples=12, **SETTINGS)
def test_plain_on_flower_with_failing_nodes_gives_the_in_process_round_with_those_clients_dropped(fails):
    _check(_config("plain"), fails)


@given(fails=failures(4, most=3))
@settings(max_examples=40, **SETTINGS)
def test_secagg_plus_on_flower_with_failing_nodes_gives_the_in_process_round_with_those_clients_dropped(fails):
    """n = 5, k = 4, t = 3: a client that fails before its masked input is a dropout whose masks the others recover;
    the unmasking stage needs t + 1 answers; fewer end the round (BelowThreshold) in both engines."""
    _check(_config("secagg+"), fails)


@given(fails=failures(1, most=3))
@settings(max_examples=10, **SETTINGS)
def test_two_server_on_flower_with_failing_nodes_gives_the_in_process_round_with_those_clients_dropped(fails):
    """Krum with f = 1 needs 2f + 1 = 3 inputs; the dealer draws from its own CSPRNG, and Krum's result is exact."""
    _check(_config("two-server"), fails)


# --- what still ends the round: a failing non-client party, missing nodes at start-up ---------------------------------

def _crashing(app, node: int, kind: str):
    """The ClientApp, except that node `node` raises on every message of type `kind`."""
    def call(msg, context):
        if msg.metadata.dst_node_id == node and msg.metadata.message_type == kind:
            raise OSError("the node's disk is gone")
        return app(msg, context)
    return call


@pytest.mark.parametrize("kind, party", [("query.s1_key", "second server"), ("query.s1", "second server"), ("query.deal", "dealer")])
def test_a_failing_second_server_or_dealer_node_ends_the_round_aborted_naming_it_and_its_reason(kind, party):
    config = _config("two-server")
    node = 100 + CLIENTS + (party == "dealer")
    grid = FakeGrid(_crashing(client_app(config), node, kind), {}, [{} for _ in range(CLIENTS + 2)])
    params = get_flat(local_datasets(config)[1])
    with pytest.raises(Aborted, match=f"its node {node} failed: OSError: the node's disk is gone") as caught:
        FlowerRounds(grid, config).aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), SEED)
    assert caught.value.party == party


def test_a_failing_key_holder_node_ends_the_round_aborted_naming_it_and_its_reason():
    config = _config("ckks")
    node = 100 + CLIENTS
    grid = FakeGrid(_crashing(client_app(config), node, "query.decrypt"), {}, [{} for _ in range(CLIENTS + 1)])
    params = get_flat(local_datasets(config)[1])
    with pytest.raises(Aborted, match=f"its node {node} failed: OSError: the node's disk is gone") as caught:
        FlowerRounds(grid, config).aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), SEED)
    assert (caught.value.party, caught.value.stage) == ("key holder", "decrypt")


def test_a_key_holder_node_that_fails_to_make_its_keys_stops_the_start_up():
    config = _config("ckks")
    grid = FakeGrid(_crashing(client_app(config), 100 + CLIENTS, "query.keys"), {}, [{} for _ in range(CLIENTS + 1)])
    with pytest.raises(Aborted, match=f"its node {100 + CLIENTS} failed: OSError"):
        FlowerRounds(grid, config)


def test_a_partition_without_a_node_stops_the_start_up_naming_it():
    config = _config("ckks")
    grid = FakeGrid(client_app(config), {}, [{} for _ in range(CLIENTS)] + [{"partition-id": 0}])  # a sixth node, none the key holder's
    with pytest.raises(Refused, match=rf"no Flower node holds partitions \[{CLIENTS}\]"):
        FlowerRounds(grid, config)


# --- a node's reply that is not of the expected shape: its client is excluded too -------------------------------------

MALFORMED = {  # (message type, the reply's records) a deviating node sends instead of its reply
    "no training record": ("train.update", dict),
    "measurements not JSON": ("train.update", lambda: {"m": ConfigRecord({"measurements": "{not json"})}),
    "measurements a JSON list": ("train.update", lambda: {"m": ConfigRecord({"measurements": "[1, 2]"})}),
    "no frame record": ("query.frame", dict),
    "cpu missing": ("query.frame", lambda: {"f": ConfigRecord({"aborted": False})}),
    "aborted not a bool": ("query.frame", lambda: {"f": ConfigRecord({"cpu": 0.0, "aborted": "no"})}),
    "frame not bytes": ("query.frame", lambda: {"f": ConfigRecord({"cpu": 0.0, "aborted": False, "frame": "00ff"})}),
}


@pytest.mark.parametrize("how", sorted(MALFORMED))
@pytest.mark.parametrize("stack", ["plain", "secagg+"])
def test_a_malformed_reply_excludes_its_client_and_the_round_goes_on(stack, how):
    """Node 101 answers its first message of `how`'s type with a reply of another shape: S0 names client 1
    (`MalformedMessage`, naming the field) and the round equals the in-process round with client 1 dropped there."""
    kind, records = MALFORMED[how]
    config = _config(stack)
    app = client_app(config)

    def deviating(msg, context):
        reply = app(msg, context)
        if msg.metadata.dst_node_id == 101 and msg.metadata.message_type == kind and not context.state.config_records.get("deviated"):
            context.state.config_records["deviated"] = ConfigRecord({"done": True})
            return Message(RecordDict(records()), reply_to=msg)
        return reply

    grid = FakeGrid(deviating, {}, [{} for _ in range(CLIENTS)])
    params = get_flat(local_datasets(config)[1])
    out = FlowerRounds(grid, config).aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), SEED)
    [named] = [e for e in out.rejected if e.party == "client 1"]
    assert isinstance(named, MalformedMessage) and "its node 101 sent" in str(named)
    rows = np.stack([grid.contexts[100 + u].state.array_records["update"]["row"].numpy() for u in range(CLIENTS)])
    here = _in_process(config, rows, {1: (0 if kind == "train.update" else 1, "")}, params)
    assert out.included == here.included and 1 not in out.included and np.array_equal(out.result, here.result)
