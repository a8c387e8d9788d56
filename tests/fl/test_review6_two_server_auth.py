"""Review 6: "S1 authenticates the two-server clients" on the deployment engine, attacked by the ServerApp (S0), which
writes the run config. S1's node builds its protocol from the run config, checked only against what its own node
config pins; `secagg flower-app` prints the pins stack, active and noise_multiplier. The preset `two-server` takes its
rule and f from the run config, and `min_clients` defaults to f + 2: so S0's word sets S1's threshold unless the
node pins more. Called as a SuperNode calls the ClientApp (`FakeGrid`, no SuperLink), as
tests/fl/test_flower_two_server_pin.py does."""

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from fl.experiment import build_stack, local_datasets
from fl.flower_engine import FlowerRounds, _client_setup, checked_against_node, client_app, config_from_run
from fl.models import get_flat
from fl.remote_two_server import two_server_protocol
from protocols.core.errors import ProtocolError
from protocols.core.pki import provision
from protocols.core.schedule import DropoutSchedule
from secagg.randomness import SeededRandomness
from tests.fl.test_review3_flower_pki import FakeGrid

CLIENTS = 4
RUN = {"stack": "two-server", "clients": CLIENTS, "data": "breast_cancer", "model": "logreg", "sample_fraction": 1.0, "dropout": 0.0}
PROVISIONED = config_from_run(RUN)  # what the operator provisioned the nodes for (f derived: 1, min_clients 3)
PINS = {"stack": PROVISIONED.stack, "active": PROVISIONED.active, "noise_multiplier": PROVISIONED.noise_multiplier}  # `secagg flower-app`'s pins

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


@pytest.mark.xfail(strict=True, reason="S1's min_clients is S0's word on deployment: the run config's f=0 (not pinned by "
                   "`secagg flower-app`, which pins stack, active, noise_multiplier) makes S1 build min_clients = f + 2 = 2 "
                   "and take part with two clients; with one colluder that is one honest input under norm_bounding's sum")
def test_s0_writing_f_0_in_the_run_config_does_not_lower_s1s_min_clients(pki):
    run = {**RUN, "f": 0, "rule": "norm_bounding"}
    try:
        assert _s1_protocol(run).min_clients >= _s1_protocol(RUN).min_clients  # fails today: 2 < 3
    except ProtocolError:
        pass  # S1's node refusing such a run config is a fix too
    with pytest.raises(ProtocolError):  # today the round runs with two clients, included (0, 1)
        _aggregate(pki, run, [0, 1])


@pytest.mark.parametrize("rule", ["multi_krum", "norm_bounding", "coordinate_median"])
@pytest.mark.xfail(strict=True, reason="the preset two-server takes its rule from the run config (S0's word) and the "
                   "printed node pins do not include it: S1 runs whatever rule S0 names, e.g. norm_bounding (a plain sum) "
                   "or the coordinate median (an input's value a coordinate) on a node provisioned for krum")
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
@pytest.mark.xfail(strict=True, reason="both two-server presets build S1's f, hence min_clients = f + 2, from the run "
                   "config's f (S0's word) when S1's node pins what `secagg flower-app` prints")
def test_s1s_min_clients_follows_only_what_its_node_pins_for_each_two_server_preset(stack):
    run = {**RUN, "stack": stack}
    provisioned = config_from_run(run)
    pins = {"role": "second-server", "stack": provisioned.stack, "active": provisioned.active, "noise_multiplier": provisioned.noise_multiplier}

    def s1(r):
        return two_server_protocol(_client_setup(checked_against_node(config_from_run(r), pins))[2]).min_clients

    assert s1(run) == 3
    try:
        assert s1({**run, "f": 0}) == 3  # fails today: 2
    except ProtocolError:
        pass  # refusing the run config is a fix too
