"""Review 6: "S1 authenticates the two-server clients" on the deployment engine, attacked by the ServerApp (S0), which
writes the run config. S1's node builds its protocol from the run config, checked only against what its own node
config pins. The preset `two-server` takes its rule and f from the run config, and `min_clients` defaults to f + 2: so
S0's word set S1's threshold while `secagg flower-app` pinned only stack, active and noise_multiplier; it now also pins
f (stated in the run config too) and the preset's fields (`node_pins`), and an unpinned S1 refuses. Called as a SuperNode calls the ClientApp (`FakeGrid`, no SuperLink), as
tests/fl/test_flower_two_server_pin.py does."""

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from fl.experiment import build_stack, local_datasets
from fl.flower_engine import FlowerRounds, _client_setup, checked_against_node, client_app, config_from_run, node_pins
from fl.models import get_flat
from fl.remote_two_server import two_server_protocol
from protocols.core.errors import ProtocolError
from protocols.core.pki import provision
from protocols.core.schedule import DropoutSchedule
from secagg.randomness import SeededRandomness
from tests.fl.test_review3_flower_pki import FakeGrid

CLIENTS = 4
RUN = {"stack": "two-server", "clients": CLIENTS, "data": "breast_cancer", "model": "logreg", "sample_fraction": 1.0, "dropout": 0.0,
       "f": 1}  # f as `secagg flower-app` writes it into the run config (derived from the rest: 1)
PROVISIONED = config_from_run(RUN)  # what the operator provisioned the nodes for (f 1, min_clients 3)
PINS = node_pins(PROVISIONED)  # `secagg flower-app`'s pins

pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki") / "keys"
    provision(folder, CLIENTS, SeededRandomness(61))
    return folder


def _nodes(pki):
    clients = [{"second-server-key": str(pki / "second-server.pub"), "signing-key": str(pki / "keys" / f"{c}.pem"),
                "client-keys": str(pki / "clients"), **PINS} for c in range(CLIENTS)]
    return clients + [{"role": "second-server", "second-server-signing-key": str(pki / "keys" / "second-server.pem"),
                       "dealer-key": str(pki / "dealer.pub"), "client-keys": str(pki / "clients"), **PINS},
                      {"role": "dealer", "dealer-signing-key": str(pki / "keys" / "dealer.pem"),
                       "second-server-key": str(pki / "second-server.pub"), **PINS}]


def _s1_protocol(run: dict):
    """The protocol S1's node runs for a run config S0 wrote (as its `s1` query builds it), its node pinned as printed."""
    return two_server_protocol(_client_setup(checked_against_node(config_from_run(run), {"role": "second-server", **PINS}))[2])


def _aggregate(pki, run, chosen):
    config = config_from_run(run)
    grid = FakeGrid(client_app(None), run, _nodes(pki))
    params = get_flat(local_datasets(config)[1])
    return FlowerRounds(grid, config, str(pki / "clients")).aggregate(1, np.asarray(chosen), params, build_stack(config, len(params), params),
                                                                       DropoutSchedule(), 5)


def test_control_the_provisioned_s1_takes_part_with_three_signed_clients_and_refuses_two(pki):
    """The control: the run config the nodes were provisioned for: S1 (min_clients = f + 2 = 3) runs with three
    clients and stops the round when S0 asks only two."""
    assert _s1_protocol(RUN).min_clients == 3
    out = _aggregate(pki, RUN, [0, 1, 2])  # krum: one of the three selected
    assert len(out.included) == 1 and set(out.included) <= {0, 1, 2} and not out.rejected
    assert next(r for r in out.reports if r.layer == "two-server").guarantee.parameters["min_clients"] == 3
    with pytest.raises(ProtocolError, match="min_clients = 3"):
        _aggregate(pki, RUN, [0, 1])


def test_s0_writing_f_0_in_the_run_config_does_not_lower_s1s_min_clients(pki):
    run = {**RUN, "f": 0, "rule": "norm_bounding"}
    try:
        assert _s1_protocol(run).min_clients >= _s1_protocol(RUN).min_clients  # fails today: 2 < 3
    except ProtocolError:
        pass  # S1's node refusing such a run config is a fix too
    with pytest.raises(ProtocolError):  # today the round runs with two clients, included (0, 1)
        _aggregate(pki, run, [0, 1])


@pytest.mark.parametrize("rule", ["multi_krum", "norm_bounding", "coordinate_median"])
def test_s0_naming_another_rule_in_the_run_config_is_refused_by_s1s_node(rule):
    assert PROVISIONED.rule != rule
    with pytest.raises(ProtocolError, match="rule"):
        _s1_protocol({**RUN, "rule": rule})


def test_s1s_node_that_pins_f_and_rule_refuses_a_run_config_that_changes_them():
    """The workaround available today: a run provisioned with an explicit f, and S1's node config pinning f and rule
    too, refuses S0's other values (naming them); S1 then keeps min_clients = 3."""
    provisioned = {**RUN, "f": 1}
    pinned = {"role": "second-server", **PINS, "f": 1, "rule": PROVISIONED.rule}
    config = checked_against_node(config_from_run(provisioned), pinned)
    assert two_server_protocol(_client_setup(config)[2]).min_clients == 3
    for change in ({"f": 0}, {"rule": "norm_bounding"}, {"f": None}):
        with pytest.raises(ProtocolError, match=f"run config sets {next(iter(change))}="):
            checked_against_node(config_from_run({**provisioned, **change}), pinned)


@pytest.mark.parametrize("stack", ["two-server", "ddp+two-server"])
def test_s1s_min_clients_follows_only_what_its_node_pins_for_each_two_server_preset(stack):
    """Pinned as flower-app prints it, S1 keeps min_clients = 3 (refusing f=0); pinned as flower-app printed it before
    (stack, active, noise_multiplier), S1 refuses at start-up, naming what it does not pin, rather than take S0's f."""
    run = {**RUN, "stack": stack}
    provisioned = config_from_run(run)
    old = {"role": "second-server", "stack": provisioned.stack, "active": provisioned.active, "noise_multiplier": provisioned.noise_multiplier}

    def s1(r, pins):
        return two_server_protocol(_client_setup(checked_against_node(config_from_run(r), pins))[2]).min_clients

    assert s1(run, {"role": "second-server", **node_pins(provisioned)}) == 3
    with pytest.raises(ProtocolError, match="run config sets f=0"):
        s1({**run, "f": 0}, {"role": "second-server", **node_pins(provisioned)})
    missing = "clip, rule, f" if stack == "two-server" else "bits, clip, mechanism, rule, f"
    for r in (run, {**run, "f": 0}):
        with pytest.raises(ProtocolError, match=f"does not pin {missing} "):
            s1(r, old)


@pytest.mark.parametrize("node, field", [(CLIENTS, "f"), (CLIENTS, "rule"), (0, "f"), (2, "clip")])
def test_an_s1_or_client_node_without_a_pin_refuses_at_start_up_naming_it(pki, node, field):
    """An S1 or client node whose node config lacks one of `node_pins` (f, rule, clip) stops the deployment at start-up
    (its hello refuses, naming the field), so an unpinned deployment never takes S0's word for them silently."""
    nodes = _nodes(pki)
    del nodes[node][field]
    with pytest.raises(ProtocolError, match=f"nodes refused at start-up: node {100 + node}: .*does not pin {field} "):
        FlowerRounds(FakeGrid(client_app(None), RUN, nodes), PROVISIONED, str(pki / "clients"))
