"""The incremental accountant and the PLD route: against plain composition and the exact composed Gaussian."""

import logging
import math

import numpy as np
import pytest

from protocols.accounting import ORDERS, Accountant, Gaussian, Skellam, compose_epsilon, tightest_epsilon, to_epsilon
from tests.protocols.exact_divergences import gaussian_pair_epsilon


def test_incremental_accountant_matches_composition_after_every_round():
    rounds = [Skellam(local_mu=50.0, clients=n, dim=100, l2_sensitivity=10.0, l1_sensitivity=100.0) for n in (20, 18, 20, 15, 20)]
    acct = Accountant(delta=1e-5, sampling_rate=0.2)
    assert acct.epsilon == 0.0
    for t, m in enumerate(rounds, 1):
        assert acct.compose(m) is acct
        assert acct.epsilon == pytest.approx(compose_epsilon(rounds[:t], sampling_rate=0.2, delta=1e-5), rel=1e-12)
    assert acct.ledger == tuple(rounds)
    before = acct.rdp
    with pytest.raises(TypeError, match="no RDP curve"):
        acct.compose("not a mechanism")  # type: ignore[arg-type]
    assert np.array_equal(acct.rdp, before) and len(acct.ledger) == 5


@pytest.mark.parametrize("z, steps", [(1.0, 10), (2.0, 100), (0.8, 40)])
def test_pld_is_tighter_than_rdp_and_never_below_the_exact_composed_gaussian(z, steps):
    g = [Gaussian(noise_multiplier=z)] * steps
    exact = gaussian_pair_epsilon(math.sqrt(steps) / z, 1e-5)
    best = tightest_epsilon(g, delta=1e-5)
    assert best.accountant.startswith("pld")
    assert exact * (1 - 1e-9) <= best.value <= exact * 1.02
    assert best.value < compose_epsilon(g, delta=1e-5)


def test_pld_only_for_gaussian_poisson_runs():
    sk = Skellam(local_mu=50.0, clients=20, dim=100, l2_sensitivity=10.0, l1_sensitivity=100.0)
    assert tightest_epsilon([sk] * 3, delta=1e-5).accountant.startswith("rdp")
    g = Gaussian(noise_multiplier=1.0)
    wor = tightest_epsilon([g] * 3, delta=1e-5, sampling_rate=0.1, sampling="without_replacement")
    assert wor.accountant.startswith("rdp") and wor.value == compose_epsilon([g] * 3, delta=1e-5, sampling_rate=0.1, sampling="without_replacement")
    sampled = tightest_epsilon([g] * 20, delta=1e-5, sampling_rate=0.1)
    assert sampled.value <= compose_epsilon([g] * 20, delta=1e-5, sampling_rate=0.1)


def test_dp_accounting_warnings_go_to_logging_not_the_terminal(caplog, capfd):
    curve = np.full(len(ORDERS), -1e-3)  # a negative divergence makes dp_accounting warn
    with caplog.at_level(logging.DEBUG, logger="protocols.accounting.rdp"):
        assert to_epsilon(curve, 1e-5) == 0.0
    assert any("Negative Renyi divergence" in r.getMessage() and r.name == "protocols.accounting.rdp" for r in caplog.records)
    assert "Negative Renyi" not in capfd.readouterr().err
