"""Review 19: attacks on review 18's masking fix (choose_degree_and_threshold's active choice now also requires the natural
cut n**2 (gamma + delta)**k <= 2**-sigma). "Was a break": a strict xfail fixed since; the others held."""

import numpy as np
import pytest

from protocols import secure_sum
from protocols.masking.secagg import SecAggPlus

# ---------------------------------------------------------------------------------------------------------- breaks


def test_an_active_secagg_plus_report_states_the_natural_cut_it_was_chosen_for():
    """Was a break (review 19): the active report named only the claimed cut; it states the natural cut too, and the union of the conditions. The fix's own case (n = 54, gamma = 5/64, no dropout, active): the choice now rests on no two runs of k/2 graph
    positions being all dropped or corrupt (where the server learns each part's sum without claiming anything), yet the
    round's collusion sentence states only that no two runs each hold t - k/2 corrupt clients."""
    plus = SecAggPlus.for_clients(54, dropout=0.0, corrupt=5 / 64, active=True, bits=16)
    collusion = secure_sum(np.ones((54, 2), dtype=np.uint16), protocol=plus, seed=1).reports[0].guarantee.collusion
    assert "all dropped or corrupt" in collusion, collusion


# ---------------------------------------------------------------------------------------------------------- held


@pytest.mark.parametrize("n, active, grind, k, t, c", [(100, True, 0, 98, 64, 28), (100, False, 0, 40, 19, 18), (30, True, 0, 29, 23, 16),
                                                        (1000, True, 0, 110, 72, 31), (1000, True, 40, 136, 93, 47)])
def test_held_the_readmes_secagg_plus_figures_after_the_natural_cut_fix(n, active, grind, k, t, c):
    """README (SecAgg+ paragraph): the figures for_clients quotes at gamma = 5%, dropout 10%, still hold with the
    natural cut checked for an active server too."""
    plus = SecAggPlus.for_clients(n, active=active, grind_bits=grind)
    assert (plus.k, plus.t, plus.colluder_count(n, plus.k, plus.t)) == (k, t, c)
