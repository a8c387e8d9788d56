"""Review 9 (E): the two-server guarantee's remaining sentence for an active S0 (round.py `_authentication`, README "What
this gives an active S0"): "S1 takes part only while at least min_clients distinct authenticated clients remain after
validation, so the rule runs on at least min_clients - c honest inputs". The inputs the rule runs on are those S0
holds shares of, which nothing authenticates after validation: S0 adds any vector to every one of them, undetected,
and so sets the output. Reuses review 8's harness (S0 adds `shift` to its share of every X_i after the range check)."""

import numpy as np
import pytest

from tests.protocols.test_review6_two_server_auth import BITS, N, _inputs, _plain_sum, _split
from tests.protocols.test_review8_active_s0 import _after_validation

SHIFT = np.array([1, 0, 0, 0], dtype=np.uint64)


@pytest.mark.xfail(strict=True, reason="stated (no MACs; guarantee and README: no output integrity against an active S0): S0 shifts its share of every input by (1, 0, 0, 0) after the range check: the round completes, "
                                       "nobody is rejected, and the norm-bounding output is the honest sum + N (1, 0, 0, 0): the rule ran "
                                       "on S0's inputs x_i + shift, not on the honest inputs (no output integrity against an active S0)")
def test_against_an_active_s0_the_rule_runs_on_the_honest_inputs(monkeypatch):
    _after_validation(monkeypatch, SHIFT)
    x = _inputs(2)
    out = _split(x, 2, rule="norm_bounding")
    assert out.included == tuple(range(N)) and not out.rejected
    assert np.array_equal(out.result.astype(np.int64) % (1 << BITS), _plain_sum(x, range(N))), "the output moved by N shift"


def test_control_the_shift_moves_the_output_by_exactly_n_shift(monkeypatch):
    """What S0 gets: an output of its choosing (here the honest sum plus N shift), from one undetected deviation."""
    _after_validation(monkeypatch, SHIFT)
    x = _inputs(2)
    out = _split(x, 2, rule="norm_bounding")
    assert out.included == tuple(range(N))
    assert np.array_equal(out.result.astype(np.int64) % (1 << BITS), (_plain_sum(x, range(N)) + N * SHIFT.astype(np.int64)) % (1 << BITS))
