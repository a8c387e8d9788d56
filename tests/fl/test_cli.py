"""The `secagg demo` command on a small configuration."""

import pytest

from fl.cli import main
from fl.demo import DemoConfig, run_demo


def test_demo_prints_the_per_layer_report(capsys):
    assert main(["demo", "--clients", "12", "--dim", "50", "--dropout", "0.2", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "| secagg+ |" in out and "| plain-sum |" in out
    assert "threat model: honest-but-curious server" in out and "dropouts tolerated" in out


@pytest.mark.parametrize("protocol", ["secagg", "secagg+", "plain"])
def test_demo_decodes_within_the_fixed_point_bound(protocol):
    result = run_demo(DemoConfig(clients=10, dim=40, dropout=0.1, protocol=protocol, seed=1))
    assert result.max_error <= result.error_bound


def test_bad_configuration_names_the_field(capsys):
    assert main(["demo", "--clients", "2"]) == 2
    assert "clients must be >= 3" in capsys.readouterr().err
