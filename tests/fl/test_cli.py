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
    assert result.error <= result.expected


def test_bad_configuration_names_the_field(capsys):
    assert main(["demo", "--clients", "2"]) == 2
    assert "clients must be >= 3" in capsys.readouterr().err


@pytest.mark.parametrize("mechanism", ["skellam", "ddg"])
def test_demo_with_distributed_dp_reports_every_layer_and_epsilon(capsys, mechanism):
    assert main(["demo", "--clients", "20", "--dim", "64", "--noise-multiplier", "0.5", "--mechanism", mechanism, "--bits", "20"]) == 0
    out = capsys.readouterr().out
    for layer in ("| secagg+ |", "| noise |", "| discretize |", "| rotation |", "| clip |"):
        assert layer in out
    assert "distributed DP this round: epsilon" in out
    result = run_demo(DemoConfig(clients=20, dim=64, noise_multiplier=0.5, mechanism=mechanism, bits=20))
    assert 0.3 < result.error < 0.8  # RMS error near the target stddev 0.5
